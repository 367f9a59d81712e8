#!/usr/bin/env bash
# Local TLS in a real browser (Debian's chromium, headless, HOME in a temporary directory):
#   1. after `ensure`, Chromium trusts https://127.0.0.1:PORT and https://localhost:PORT served
#      with our server certificate, through the CA that ensure put in $HOME/.pki/nssdb;
#   2. Chromium enforces the CA's name constraints: a CA carrying the very nameConstraints bytes of
#      our ca.pem (the test keeps that CA's key; ours has none) cannot vouch for evil.test;
#   3. after `remove`, the same server is no longer trusted.
# Usage: test_tls_chromium.sh PATH/TO/tls_ensure      (exit 77 = skipped: no chromium or certutil)
set -euo pipefail

tool=${1:?usage: $0 PATH/TO/tls_ensure}
chromium=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $chromium ]] || ! command -v certutil >/dev/null || ! command -v openssl >/dev/null; then
    echo "SKIP: chromium, certutil or openssl missing"
    exit 77
fi

work=$(mktemp -d /tmp/uk-tls-chromium-XXXXXX)
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

export HOME=$work/home
unset XDG_DATA_HOME
mkdir -p "$HOME/.pki/nssdb"
certutil -N -d "sql:$HOME/.pki/nssdb" --empty-password

fail() {
    echo "FAIL: $*"
    exit 1
}

# Serve CERT/KEY on 127.0.0.1 (a port the kernel picks); sets server_pid and port. Each server
# logs to a file of its own: the background child opens (and truncates) its log only when it
# runs, so a shared file could still show the previous server's port.
servers=0
serve() {
    stop_server
    servers=$((servers + 1))
    local log=$work/server$servers.log
    openssl s_server -www -accept 127.0.0.1:0 -cert "$1" -key "$2" >"$log" 2>&1 &
    server_pid=$!
    port=
    for _ in $(seq 100); do
        # The child may not have created its log yet: sed then fails, which must not end the
        # script (set -e) before the loop tries again.
        port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log" 2>/dev/null || true)
        [[ -n $port ]] && return 0
        sleep 0.05
    done
    fail "openssl s_server did not start: $(cat "$log")"
}

stop_server() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}

# Load URL; prints the DOM on stdout, Chromium's log in $work/chrome.log.
run=0
load() {
    run=$((run + 1))
    timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$work/profile$run" --host-resolver-rules="MAP evil.test 127.0.0.1" \
        --dump-dom "$1" 2>"$work/chrome.log" || true
}

expect_trusted() {
    local dom
    dom=$(load "$1")
    [[ $dom == *"s_server"* ]] || fail "$1 was not loaded: $(grep -o 'ERR_[A-Z_]*' "$work/chrome.log" | sort -u | tr '\n' ' ')"
    echo "ok: $1 trusted"
}

expect_refused() { # URL ERROR
    local dom
    dom=$(load "$1")
    [[ $dom != *"s_server"* ]] || fail "$1 was loaded, expected $2"
    grep -q "$2" "$work/chrome.log" || fail "$1: expected $2, got $(grep -o 'ERR_[A-Z_]*' "$work/chrome.log" | sort -u | tr '\n' ' ')"
    echo "ok: $1 refused with $2"
}

# 1. Our set, trusted through the NSS database.
"$tool" ensure "$work/state" "$HOME" >"$work/ensure.out"
grep -qx 'trust=added' "$work/ensure.out" || fail "trust not added: $(cat "$work/ensure.out")"
tls=$work/state/tls
serve "$tls/server.pem" "$tls/server.key"
expect_trusted "https://127.0.0.1:$port/"
expect_trusted "https://localhost:$port/"

# 2. Name constraints: copy the extension's DER from our ca.pem into a test CA of our own.
nc_hex=$(openssl asn1parse -in "$tls/ca.pem" |
    awk '/X509v3 Name Constraints/ { found = 1; next } found && /OCTET STRING/ { sub(/.*HEX DUMP\]:/, ""); print; exit }')
[[ -n $nc_hex ]] || fail "no nameConstraints in ca.pem"
cat >"$work/ext.cnf" <<CNF
[ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
nameConstraints = critical,DER:$nc_hex
[evil]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:evil.test
[good]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
CNF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/tca.key" \
    -subj "/CN=test CA with ukeyd constraints" -days 2 -config "$work/ext.cnf" -extensions ca \
    -out "$work/tca.pem" 2>/dev/null
[[ $(openssl asn1parse -in "$work/tca.pem" | awk '/Name Constraints/ { f = 1; next } f && /OCTET/ { sub(/.*DUMP\]:/, ""); print; exit }') == "$nc_hex" ]] ||
    fail "test CA does not carry the same nameConstraints bytes"
for leaf in good evil; do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/$leaf.key" \
        -subj "/CN=$leaf" -out "$work/$leaf.csr" 2>/dev/null
    openssl x509 -req -in "$work/$leaf.csr" -CA "$work/tca.pem" -CAkey "$work/tca.key" \
        -set_serial 2 -days 1 -extfile "$work/ext.cnf" -extensions "$leaf" -out "$work/$leaf.pem" \
        2>/dev/null
done
certutil -A -d "sql:$HOME/.pki/nssdb" -n "test CA with ukeyd constraints" -t "C,," -i "$work/tca.pem"
# The control: the test CA itself is trusted and works for a name inside the constraints...
serve "$work/good.pem" "$work/good.key"
expect_trusted "https://localhost:$port/"
# ...so the refusal below is the constraints at work.
serve "$work/evil.pem" "$work/evil.key"
expect_refused "https://evil.test:$port/" "ERR_CERT_INVALID"

# 3. After remove, our server certificate is no longer trusted, and the other CA is still there.
"$tool" remove "$work/state" "$HOME"
[[ ! -e $tls ]] || fail "tls/ still there after remove"
certutil -L -d "sql:$HOME/.pki/nssdb" -n "test CA with ukeyd constraints" >/dev/null ||
    fail "remove touched another nickname"
"$tool" ensure "$work/state2" "" >/dev/null # a fresh set, not trusted anywhere
serve "$work/state2/tls/server.pem" "$work/state2/tls/server.key"
expect_refused "https://127.0.0.1:$port/" "ERR_CERT_AUTHORITY_INVALID"
echo "PASS"
