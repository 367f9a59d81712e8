# shellcheck shell=bash
# Shared set-up of the integration tests (sourced). Each test gets its own
# temp dir, a temp HOME and its own rig(s) (scripts/rig), taken down on exit
# whatever happens. The real tools (yubico-piv-tool, OpenSC, ykman, openssl)
# are the judges; uk-pcsc and `vpiv ctl` drive the card directly.
#
# Output: one `ok - ...` line per check; the first failure prints
# `not ok - ...` with the evidence and exits 1. Exit 77 = skipped (no root
# and no unprivileged user namespaces).
set -euo pipefail
shopt -s inherit_errexit

repo=${UK_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
rig="$repo/scripts/rig"
UK_VPIV=${UK_VPIV:-$repo/build/dev/tests/vcard/vpiv}
UK_PCSC=${UK_PCSC:-$repo/build/dev/tests/rig/uk-pcsc}
export UK_VPIV UK_PCSC
# shellcheck disable=SC2034 # used by the tests that source this file
{
    PKCS11_MODULE=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
    # PIV defaults of a freshly provisioned card.
    DEFAULT_PIN=123456
    DEFAULT_PUK=12345678
    DEFAULT_MGM=010203040506070801020304050607080102030405060708
    # SELECT of the PIV application (9-byte AID prefix, as OpenSC sends it).
    APDU_SELECT=00A4040009A0000003080000100000
}

skip() {
    echo "SKIP: $*"
    exit 77
}

fail() {
    echo "not ok - $*" >&2
    exit 1
}

ok() {
    echo "ok - $*"
}

note() {
    echo "# $*"
}

if [[ $EUID -eq 0 ]]; then
    unshare --mount --net true 2>/dev/null || skip "cannot create mount+network namespaces"
else
    unshare --map-root-user --mount --net true 2>/dev/null ||
        skip "not root and unprivileged user namespaces are not allowed here"
fi
[[ -x $UK_VPIV ]] || fail "vpiv not built: $UK_VPIV"
[[ -x $UK_PCSC ]] || fail "uk-pcsc not built: $UK_PCSC"
for t in yubico-piv-tool opensc-tool pkcs15-tool pkcs11-tool openssl timeout; do
    command -v "$t" >/dev/null || fail "'$t' not found: run scripts/setup"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/uk-it.XXXXXX")
export HOME="$tmp/home"
mkdir -p "$HOME"
rigs=()

cleanup() {
    local rc=$? d f
    trap - EXIT
    release_power
    for d in "${rigs[@]}"; do
        if ! "$rig" down "$d"; then
            echo "not ok - scripts/rig down $d reported a problem (see its logs below)" >&2
            rc=1
        fi
    done
    if ((rc != 0 && rc != 77)); then
        # The test's own logs (uk-renewal-drive's stderr, ...) and the rigs'.
        for d in "$tmp" "${rigs[@]}"; do
            for f in "$d"/*.log "$d"/log/*.log; do
                [[ -s $f ]] || continue
                echo "---- $f (last lines) ----" >&2
                tail -n 20 "$f" >&2
            done
        done
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

# rig_up DIR [OPTIONS...]: start a rig and load its env into this shell.
rig_up() {
    local d=$1
    [[ " ${rigs[*]} " == *" $d "* ]] || rigs+=("$d")
    UK_RIG_OWNER=$$ "$rig" up "$@" 2>"$tmp/rig-up.err" || fail "scripts/rig up $*: $(cat "$tmp/rig-up.err")"
    # shellcheck source=/dev/null
    . "$d/env"
}

rig_down() {
    "$rig" down "$1" || fail "scripts/rig down $1"
}

# run WHAT CMD...: runs CMD, output in $out; fails the test if CMD fails.
run() {
    local what=$1 rc=0
    shift
    out=$("$@" 2>&1) || rc=$?
    ((rc == 0)) || fail "$what: '$*' failed (exit status $rc):
$out"
}

# run_fails WHAT CMD...: CMD must fail; output in $out.
run_fails() {
    local what=$1
    shift
    if out=$("$@" 2>&1); then
        fail "$what: '$*' succeeded but must fail:
$out"
    fi
}

expect_in() { # WHAT HAYSTACK NEEDLE
    [[ $2 == *"$3"* ]] || fail "$1: '$3' not in:
$2"
}

expect_eq() { # WHAT GOT WANT
    [[ $2 == "$3" ]] || fail "$1: got '$2', want '$3'"
}

same_file() { # WHAT A B
    cmp -s "$2" "$3" || fail "$1: $2 and $3 differ ($(stat -c %s "$2") vs $(stat -c %s "$3") bytes)"
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# ---- the tools ----------------------------------------------------------

Y() {
    yubico-piv-tool -r "$UK_RIG_READER" "$@"
}

ctl() {
    "$UK_VPIV" ctl "$UK_RIG_CARD_CTL" "$@"
}

# apdu HEX...: SELECT PIV, then the APDUs (61xx followed); prints the last
# response (data and status word, upper-case hex).
apdu() {
    "$UK_PCSC" apdu --auto-get-response "$UK_RIG_READER" "$APDU_SELECT" "$@" | tail -n 1
}

# apdu_raw HEX...: exactly these APDUs, no SELECT; prints the last response.
apdu_raw() {
    "$UK_PCSC" apdu --auto-get-response "$UK_RIG_READER" "$@" | tail -n 1
}

# keep_powered: hold a shared connection to the card, so that pcscd does not
# power it down (~0.6-1 s after the last client leaves; the power-off resets
# the card and forgets the management-key authentication) between the
# uk-pcsc calls of a multi-step exchange such as mgm_auth + PUT DATA.
holder=""
keep_powered() {
    local i
    release_power
    "$UK_PCSC" hold "$UK_RIG_READER" --shared 600 >"$tmp/hold.out" 2>&1 &
    holder=$!
    for ((i = 0; i < 100; i++)); do
        grep -q '^held' "$tmp/hold.out" && return 0
        kill -0 "$holder" 2>/dev/null || fail "uk-pcsc hold: $(cat "$tmp/hold.out")"
        sleep 0.05
    done
    fail "uk-pcsc hold did not connect within 5 s"
}

release_power() {
    if [[ -n $holder ]]; then
        kill "$holder" 2>/dev/null || true
        wait "$holder" 2>/dev/null || true
        holder=""
    fi
}

wait_card() { # present|absent
    "$UK_PCSC" wait "$UK_RIG_READER" "$1" 10000 >/dev/null || fail "card not $1 within 10 s"
}

# ---- bytes, hex and BER-TLV -----------------------------------------------

hex2bin() {
    local h
    h=$(tr -d ' \n' | tr 'a-f' 'A-F')
    # shellcheck disable=SC2001,SC2059 # the format is the data here, by design
    printf "$(sed 's/../\\x&/g' <<<"$h")"
}

bin2hex() {
    od -An -v -tx1 | tr -d ' \n' | tr 'a-f' 'A-F'
}

hexlen() { # HEX -> bytes as 2-digit (or 82xxxx) BER length
    local n=$((${#1} / 2))
    if ((n < 128)); then
        printf '%02X' "$n"
    elif ((n < 256)); then
        printf '81%02X' "$n"
    else
        printf '82%04X' "$n"
    fi
}

# tlv_get HEX TAG: the value of the first TLV with TAG at the top level of HEX.
tlv_get() {
    local h=${1^^} want=${2^^} i=0 tag len lb b
    while ((i < ${#h})); do
        tag=${h:i:2}
        i=$((i + 2))
        if (((16#$tag & 0x1F) == 0x1F)); then
            while :; do
                b=${h:i:2}
                tag+=$b
                i=$((i + 2))
                ((16#$b & 0x80)) || break
            done
        fi
        len=$((16#${h:i:2}))
        i=$((i + 2))
        if ((len > 127)); then
            lb=$((len & 0x7F))
            len=$((16#${h:i:lb*2}))
            i=$((i + lb * 2))
        fi
        if [[ $tag == "$want" ]]; then
            echo "${h:i:len*2}"
            return 0
        fi
        i=$((i + len * 2))
    done
    return 1
}

# data_of WHAT RESPONSE: the response without its 9000, or the test fails.
data_of() { # WHAT RESPONSE
    [[ $2 == *9000 ]] || fail "$1: status is not 9000: $2"
    echo "${2%9000}"
}

# ---- PIV helpers ------------------------------------------------------------

# cert_der SLOT_OBJECT_TAG OUT: the certificate in the object, via GET DATA.
cert_der() {
    local r obj
    r=$(apdu "00CB3FFF055C03${1}00")
    obj=$(tlv_get "$(data_of "GET DATA $1" "$r")" 53)
    tlv_get "$obj" 70 | hex2bin >"$2"
}

# mgm_auth ALG KEYHEX: management-key mutual authentication through uk-pcsc,
# the host side computed with `openssl enc`. Prints the status word of the
# step that ended it (9000 when authenticated). Call keep_powered first: the
# steps are separate uk-pcsc calls.
mgm_auth() {
    local alg=$1 key=$2 cipher bl r witness chal expect sw
    case $alg in
    03) cipher=des-ede3 bl=8 ;;
    08) cipher=aes-128-ecb bl=16 ;;
    0A) cipher=aes-192-ecb bl=16 ;;
    0C) cipher=aes-256-ecb bl=16 ;;
    *) fail "mgm_auth: unknown algorithm $alg" ;;
    esac
    r=$(apdu "0087${alg}9B047C028000")
    if [[ $r != *9000 ]]; then
        echo "${r: -4}"
        return 0
    fi
    r=$(tlv_get "$(tlv_get "${r%9000}" 7C)" 80)
    witness=$(hex2bin <<<"$r" | openssl enc -d "-$cipher" -K "$key" -nopad | bin2hex)
    chal=$(openssl rand -hex "$bl" | tr 'a-f' 'A-F')
    expect=$(hex2bin <<<"$chal" | openssl enc "-$cipher" -K "$key" -nopad | bin2hex)
    local inner data
    inner="80$(hexlen "$witness")${witness}81$(hexlen "$chal")$chal"
    data="7C$(hexlen "$inner")$inner"
    r=$(apdu_raw "0087${alg}9B$(hexlen "$data")$data")
    sw=${r: -4}
    if [[ $sw == 9000 ]]; then
        expect_eq "card's answer to our challenge" "$(tlv_get "$(tlv_get "${r%9000}" 7C)" 82)" "$expect"
    fi
    echo "$sw"
}

# A test CA for certificates made host-side.
make_test_ca() { # DIR
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1/ca.key" \
        -out "$1/ca.pem" -subj "/CN=ukeyd integration test CA" -days 30 2>/dev/null ||
        fail "cannot make the test CA"
}

# cert_for_pubkey PUBKEY_PEM CN OUT_PEM [EXTFILE]: a certificate for a public
# key whose private key never leaves the card, signed by the test CA.
cert_for_pubkey() {
    local args=(x509 -new -subj "/CN=$2" -force_pubkey "$1" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key"
        -days 30 -out "$3")
    [[ -n ${4:-} ]] && args+=(-extfile "$4")
    openssl "${args[@]}" 2>"$tmp/x509.err" || fail "openssl x509 -new: $(cat "$tmp/x509.err")"
}

# big_cert PUBKEY_PEM OUT_DER TARGET_BYTES: a certificate of about TARGET
# bytes DER (long SAN list, padded with a URI), for chaining and 61xx.
big_cert() {
    local pad=200 i n size
    for i in 1 2 3; do
        {
            printf 'subjectAltName='
            for n in $(seq 1 40); do
                printf 'DNS:host-%02d.a-rather-long-subdomain-name.ukeyd.example,' "$n"
            done
            printf 'URI:https://ukeyd.example/%s\n' "$(head -c "$pad" /dev/zero | tr '\0' x)"
        } >"$tmp/big.ext"
        cert_for_pubkey "$1" "big certificate" "$tmp/big.pem" "$tmp/big.ext"
        openssl x509 -in "$tmp/big.pem" -outform DER -out "$2"
        size=$(stat -c %s "$2")
        ((size == $3)) && break
        pad=$((pad + $3 - size))
    done
}

# abort_prepared WHAT SLOT: after a "prepare RENEWAL_IN_PROGRESS" that follows a fault, the renewal
# whose journal record was written before the fault is aborted (R: the calling script's
# uk-renewal-drive runner).
abort_prepared() {
    run "list ($1)" R list
    local rid
    rid=$(awk '$1 == "rec" && $3 == "prepared" { print $2 }' <<<"$out")
    [[ -n $rid ]] || fail "$1: RENEWAL_IN_PROGRESS without a prepared renewal: $out"
    run "abort ($1)" R abort "$rid"
    expect_in "abort ($1)" "$out" "abort OK aborted $2"
}

# verify_sig PUBKEY_PEM SIG DATA: openssl must accept the SHA-256 signature.
verify_sig() {
    local r
    r=$(openssl dgst -sha256 -verify "$1" -signature "$2" "$3" 2>&1) ||
        fail "openssl dgst -verify rejects the signature $2: $r"
    expect_eq "openssl dgst -verify" "$r" "Verified OK"
}

# ---- Kill-and-recover loops of the module renewal tests (test_renewal_faults_p11.sh, _skf.sh) --
# The calling script sets ROLE (the role's key id: 01, rsa/sign), has made a test CA in $tmp, and
# defines: R (its uk-renewal-drive runner); fresh_token (a new token holding the role's old pair,
# its certificate in $tmp/old.der, and a new journal in $st); held (the names of what the token
# holds, sorted, each followed by a space); held_name KEY_ID (the name held shows for a key id);
# old_held (where the old pair is still seen while its retirement waits: a certificate goes last);
# finished_more WHAT STAGED (the token's own checks once a renewal is done).

# role_works WHAT: the role's certificate (as the token layer lists it, left in $tmp/role.der)
# and a signature by the role's key (through the token layer) that openssl verifies with it.
role_works() {
    rm -f "$tmp/role.der"
    run "$1: certs" R certs "$ROLE" "$tmp/role.der"
    [[ -s $tmp/role.der ]] || fail "$1: the role $ROLE has no certificate: $out"
    openssl x509 -inform DER -in "$tmp/role.der" -noout -pubkey >"$tmp/role.pub"
    echo "fault data $RANDOM" >"$tmp/data"
    openssl dgst -sha256 -binary "$tmp/data" >"$tmp/digest"
    run "$1: sign" R sign "$ROLE" "$PIN" "$tmp/digest" "$tmp/sig"
    expect_eq "$1: sign" "$out" "sign OK"
    verify_sig "$tmp/role.pub" "$tmp/sig" "$tmp/data"
}

# finished WHAT STAGED: the renewal is done, the role has the new pair, the old one is gone.
finished() {
    role_works "$1"
    same_file "$1: the role's certificate is the new one" "$tmp/role.der" "$tmp/f.der"
    expect_eq "$1: what the token holds" "$(held)" "$(held_name "$2") "
    finished_more "$1" "$2"
    run "$1: list" R list
    expect_eq "$1: unfinished renewals" "$(awk '$1 == "rec" && $3 != "done" && $3 != "aborted"' <<<"$out")" ""
}

# prepare_fresh: a fresh token, prepared; sets $id, $staged and the issued certificate f.der.
prepare_fresh() {
    fresh_token
    run "prepare" R prepare - "$ROLE" extend "$PIN" "$tmp/f.csr"
    [[ $out == "prepare OK "* ]] || fail "prepare: $out"
    read -r _ _ id staged <<<"$out"
    openssl x509 -req -in "$tmp/f.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -days 20 \
        -outform DER -out "$tmp/f.der" 2>/dev/null || fail "issue"
}

# commit_kill_loop STEP...: SIGKILL after each step of a commit (a state name comes after the
# journal write of that state), then a run that recovers without the PIN, as ukeyd does at start.
# After each: the role signs with a working pair; the journal is done, or prepared (commit again),
# or activated with the retirement waiting for the PIN (commit again finishes it), nothing else.
commit_kill_loop() {
    local passed=0 tried=0
    for step in "$@"; do
        tried=$((tried + 1))
        prepare_fresh
        out=$(UK_RENEWAL_KILL_AT=$step R commit "$id" "$tmp/f.der" || true)
        expect_eq "commit killed" "$out" "killed at $step"
        run "recover ($step)" R recover
        expect_eq "recovery after a commit killed at $step" "$out" "recover OK"
        role_works "commit killed at $step"
        run "status ($step)" R status "$id"
        case $out in
        "status OK done $ROLE "*) ;;
        "status OK prepared $ROLE "* | "status OK activated $ROLE "*)
            if [[ $out == *activated* ]]; then
                same_file "activated after $step: the role is the new pair" "$tmp/role.der" "$tmp/f.der"
                expect_in "activated after $step: the old pair is still there" "$(old_held)" \
                    "$(held_name "$ROLE") "
            fi
            run "commit again ($step)" R commit "$id" "$tmp/f.der"
            expect_eq "commit after a kill at $step" "$out" "commit OK done $ROLE $staged"
            ;;
        *) fail "state after a kill at $step: $out" ;;
        esac
        finished "commit killed at $step" "$staged"
        passed=$((passed + 1))
        note "commit killed after $step: recovered, done, old pair retired"
    done
    note "kill during commit: $passed of $tried steps passed"
    ((passed == tried)) || fail "kill during commit: only $passed of $tried"
}

# prepare_kill_loop: SIGKILL after each step of a prepare; recovery (no PIN) leaves the role
# untouched and what it cannot delete recorded, and the next prepare (with the PIN) deletes it.
prepare_kill_loop() {
    local rid
    for step in staging_recorded key_generated csr_signed prepared staged_marked; do
        fresh_token
        out=$(UK_RENEWAL_KILL_AT=$step R prepare - "$ROLE" extend "$PIN" "$tmp/p.csr" || true)
        expect_eq "prepare killed" "$out" "killed at $step"
        run "recover ($step)" R recover
        expect_eq "recovery after a prepare killed at $step" "$out" "recover OK"
        role_works "prepare killed at $step"
        same_file "$ROLE untouched by a prepare killed at $step" "$tmp/role.der" "$tmp/old.der"
        run "prepare again ($step)" R prepare - "$ROLE" extend "$PIN" "$tmp/p.csr"
        if [[ $out == "prepare RENEWAL_IN_PROGRESS -1" ]]; then
            abort_prepared "$step" "$ROLE"
            run "prepare after abort ($step)" R prepare - "$ROLE" extend "$PIN" "$tmp/p.csr"
        fi
        [[ $out == "prepare OK "* ]] || fail "prepare after a kill at $step: $out"
        read -r _ _ rid staged <<<"$out"
        expect_eq "held after a prepare killed at $step and a new one" "$(held)" \
            "$(printf '%s\n' "$(held_name "$ROLE")" "$(held_name "$staged")" | sort | tr '\n' ' ')"
        run "abort ($step)" R abort "$rid"
        expect_eq "held after the abort ($step)" "$(held)" "$(held_name "$ROLE") "
        note "prepare killed after $step: the role untouched, the leftover deleted by the next prepare"
    done
}
