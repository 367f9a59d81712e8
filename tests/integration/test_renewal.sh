#!/usr/bin/env bash
# The renewal service (uk_renewal, in uk-renewal-drive: one operation per run, so every step is
# also a restart of the service and the journal carries the renewal) against the rig's card:
#   - extend 9a (RSA-2048) and 9c (EC P-256): the CSR verifies (`openssl req -verify`, its output
#     read: OpenSSL 3.0 exits 0 on failure), a test CA issues, commit puts the new certificate in
#     the working slot, the old pair is retired (no retired slot holds its key or certificate, the
#     card record keeps no entry for it), yubico-piv-tool and pkcs15-tool read the new
#     certificate, a signature with the new key verifies with it, the old certificate is in
#     state_dir/backup;
#   - wrong certificates at commit (another key, garbage, expired) -> clear errors and the card's
#     certificate objects unchanged;
#   - two prepares on one slot -> RENEWAL_IN_PROGRESS; abort frees the staging slot;
#   - repair of an expired certificate;
#   - a certificate valid only in a few seconds: written to the staging slot, the old pair active,
#     activated by the first recovery after its not_before, and only then the old key retired;
#   - SIGKILL after every step of a commit (the retirement's included), then recovery: finished or
#     rolled back, 9a signs, the old key retired;
#   - an explicit subject (repair of a slot with no certificate at all): in the CSR;
#   - a chain at commit: a good one accepted, a wrong one (or a CA bundle that does not hold the
#     issuer) CHAIN_INVALID with the card unchanged;
#   - a renewal waiting in WRITTEN for its not-yet-valid certificate is aborted: the staged key
#     and certificate go, the old pair stays active (both kinds of card);
#   - a card without MOVE KEY (--profile generic): the new key stays in the staging slot, the
#     token layer lists it under 9a (cert.list), the old pair stays in 9A; a second renewal starts
#     from it and retires it (its certificate and record entry go, the slot is free again);
#   - no free staging slot: NO_STAGING_SLOT, nothing changed.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

drive=${UK_RENEWAL_DRIVE:-$repo/build/dev/tests/integration/uk-renewal-drive}
[[ -x $drive ]] || fail "uk-renewal-drive not built: $drive"
command -v pkcs15-tool >/dev/null || skip "pkcs15-tool not installed"
python3 -c 'import cryptography' 2>/dev/null || skip "python3-cryptography not installed"

rig_up "$tmp/rig"
st="$tmp/state"
mkdir -m 0700 "$st"
R() { "$drive" "$st" "$@" 2>>"$tmp/drive.log"; }
make_test_ca "$tmp"

# card_certs: every certificate object as yubico-piv-tool reads them (hash of the DER per slot).
card_certs() {
    local s
    for s in 9a 9c 9d 9e $(seq -f %.0f $((0x82)) $((0x95)) | xargs printf '%x '); do
        if Y -a read-certificate -s "$s" -K DER -o "$tmp/cc.der" 2>/dev/null; then
            echo "$s $(sha256sum <"$tmp/cc.der" | cut -c1-16)"
        fi
    done
}

# retired_keys: the retired slots (82..95) that hold a key (GET METADATA answers 9000; one
# connection).
retired_keys() {
    local n=$((0x82)) r cmds=()
    for ((; n <= 0x95; n++)); do cmds+=("$(printf '00F700%02X00' "$n")"); done
    n=$((0x82))
    while read -r r; do
        if [[ $r == *9000 ]]; then printf '%02x ' "$n"; fi
        n=$((n + 1))
    done < <("$UK_PCSC" apdu --auto-get-response "$UK_RIG_READER" "$APDU_SELECT" "${cmds[@]}" |
        tail -n 20)
}
# record_keeps SLOT: whether the card record keeps SLOT (a C0 entry).
record_keeps() {
    local rec
    rec=$(Y -a read-object --id 0x5FFF55 -f hex 2>/dev/null || true)
    [[ ${rec,,} == *"c002$(printf '%s' "$1" | od -An -tx1 | tr -d ' \n')"* ]]
}
# retired OLD_DER KEYS_BEFORE WHAT: the old pair is gone: no certificate object holds OLD_DER, the
# retired slots holding a key are KEYS_BEFORE's, and the card record keeps none of the others.
retired() {
    local h n s
    h=$(sha256sum <"$1" | cut -c1-16)
    [[ $(card_certs) != *" $h"* ]] || fail "$3: the old certificate is still on the card: $(card_certs)"
    expect_eq "$3: retired slots holding a key" "$(retired_keys)" "$2"
    for n in $(seq $((0x82)) $((0x95))); do
        s=$(printf '%02x' "$n")
        [[ " $2 " == *" $s "* ]] && continue
        if record_keeps "$s"; then fail "$3: the card record still keeps $s"; fi
    done
}

# issue CSR OUT_DER [DAYS]: the test CA signs the request (its own key).
issue() {
    openssl x509 -req -in "$1" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -days "${3:-20}" \
        -outform DER -out "$2" 2>"$tmp/x509.err" || fail "openssl x509 -req: $(cat "$tmp/x509.err")"
}

# cert_dated PUB_SPKI_PEM OUT_DER NOT_BEFORE NOT_AFTER: days relative to now (may be < 0), or
# seconds with an "s" suffix ("5s").
cert_dated() {
    python3 - "$1" "$2" "$3" "$4" "$tmp/ca.key" "$tmp/ca.pem" <<'PY'
import sys, datetime
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
pub = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
cakey = serialization.load_pem_private_key(open(sys.argv[5], "rb").read(), None)
ca = x509.load_pem_x509_certificate(open(sys.argv[6], "rb").read())
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
def rel(v):
    return datetime.timedelta(seconds=int(v[:-1])) if v.endswith("s") else datetime.timedelta(days=int(v))
c = (x509.CertificateBuilder()
     .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "renewal test")]))
     .issuer_name(ca.subject).public_key(pub).serial_number(x509.random_serial_number())
     .not_valid_before(now + rel(sys.argv[3]))
     .not_valid_after(now + rel(sys.argv[4]))
     .sign(cakey, hashes.SHA256()))
open(sys.argv[2], "wb").write(c.public_bytes(serialization.Encoding.DER))
PY
}

# signs SLOT YALG CERT_DER: yubico-piv-tool signs with the slot's key, openssl verifies with CERT.
signs() {
    echo "renewal test data $RANDOM" >"$tmp/data"
    run "sign with $1" Y -a verify-pin --sign -s "$1" -A "$2" -H SHA256 -P "$DEFAULT_PIN" \
        -i "$tmp/data" -o "$tmp/sig"
    openssl x509 -inform DER -in "$3" -noout -pubkey >"$tmp/sigpub.pem"
    verify_sig "$tmp/sigpub.pem" "$tmp/sig" "$tmp/data"
}

csr_ok() { # CSR
    local v
    v=$(openssl req -in "$1" -noout -verify 2>&1 || true)
    [[ $v == *"verify OK"* || $v == *"signature ok"* ]] || fail "CSR does not verify: $v"
    [[ $v != *"failure"* ]] || fail "CSR does not verify: $v"
}

# renew SLOT ALG: extend, issue, commit, check.
renew() {
    local slot=$1 alg=$2 yalg=$3 id staged before keys
    Y -a read-certificate -s "$slot" -K DER -o "$tmp/old-$slot.der" 2>/dev/null
    keys=$(retired_keys)
    run "prepare $slot" R prepare - "$slot" extend "$DEFAULT_PIN" "$tmp/$slot.csr"
    [[ $out == "prepare OK "* ]] || fail "prepare $slot: $out"
    read -r _ _ id staged <<<"$out"
    csr_ok "$tmp/$slot.csr"
    openssl req -in "$tmp/$slot.csr" -noout -text | grep -q "$alg" || fail "CSR key is not $alg"
    # The working pair is untouched by prepare.
    Y -a read-certificate -s "$slot" -K DER -o "$tmp/now.der" 2>/dev/null
    same_file "working certificate after prepare" "$tmp/now.der" "$tmp/old-$slot.der"
    run "status $slot" R status "$id"
    expect_in "status after a restart" "$out" "status OK prepared $slot $staged"

    # Wrong certificates: nothing on the card changes.
    before=$(card_certs)
    openssl req -in "$tmp/$slot.csr" -pubkey -noout >"$tmp/staged.pub"
    openssl pkey -in "$tmp/ca.key" -pubout -out "$tmp/other.pub"
    cert_dated "$tmp/other.pub" "$tmp/other.der" -1 10
    run "commit other key" R commit "$id" "$tmp/other.der"
    expect_eq "commit with another key" "$out" "commit CERT_KEY_MISMATCH -1"
    head -c 700 /dev/urandom >"$tmp/garbage.der"
    run "commit garbage" R commit "$id" "$tmp/garbage.der"
    expect_eq "commit garbage" "$out" "commit CERT_INVALID -1"
    cert_dated "$tmp/staged.pub" "$tmp/expired.der" -20 -2
    run "commit expired" R commit "$id" "$tmp/expired.der"
    expect_eq "commit expired" "$out" "commit CERT_EXPIRED -1"
    expect_eq "card certificates after refused commits" "$(card_certs)" "$before"

    issue "$tmp/$slot.csr" "$tmp/new-$slot.der"
    run "commit $slot" R commit "$id" "$tmp/new-$slot.der"
    expect_eq "commit $slot" "$out" "commit OK done $slot $staged"
    Y -a read-certificate -s "$slot" -K DER -o "$tmp/now.der" 2>/dev/null
    same_file "yubico-piv-tool reads the new certificate in $slot" "$tmp/now.der" "$tmp/new-$slot.der"
    signs "$slot" "$yalg" "$tmp/new-$slot.der"
    local backups=("$st/backup/"*"-$slot-"*.der)
    [[ -f ${backups[0]} ]] || fail "no backup of the old $slot certificate"
    same_file "backup of the old $slot certificate" "${backups[0]}" "$tmp/old-$slot.der"
    retired "$tmp/old-$slot.der" "$keys" "extend $slot"
    ok "extend $slot ($alg): CSR verifies, refused certificates change nothing, commit, backup, old key retired"
}

renew 9a "rsaEncryption" RSA2048
renew 9c "id-ecPublicKey" ECCP256

run "pkcs15-tool" pkcs15-tool --reader "$UK_RIG_READER" --read-certificate 01
openssl x509 -inform DER -in "$tmp/new-9a.der" -out "$tmp/new-9a.pem"
[[ $out == "$(cat "$tmp/new-9a.pem")"* ]] || fail "pkcs15-tool does not read the new 9a certificate: $out"
ok "pkcs15-tool reads the renewed 9a certificate"

# Two prepares on one slot; abort frees the staging slot.
run "prepare 1" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/p1.csr"
read -r _ _ id1 staged1 <<<"$out"
run "prepare 2" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/p2.csr"
expect_eq "second prepare on 9a" "$out" "prepare RENEWAL_IN_PROGRESS -1"
run "abort" R abort "$id1"
expect_eq "abort" "$out" "abort OK aborted 9a $staged1"
run "prepare after abort" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/p3.csr"
read -r _ _ id3 staged3 <<<"$out"
expect_eq "staging slot freed by abort" "$staged3" "$staged1"
run "abort 3" R abort "$id3"
ok "two prepares on one slot: RENEWAL_IN_PROGRESS; abort frees the staging slot"

# Extend of a valid certificate is the only mode on a valid one.
run "repair of a valid cert" R prepare - 9c repair "$DEFAULT_PIN" "$tmp/x.csr"
expect_eq "repair of a valid certificate" "$out" "prepare RENEWAL_STATE -1"

# Repair: an expired certificate on 9c's key.
Y -a read-certificate -s 9c -K PEM -o "$tmp/9c.pem" 2>/dev/null
openssl x509 -in "$tmp/9c.pem" -pubkey -noout >"$tmp/9c.pub"
cert_dated "$tmp/9c.pub" "$tmp/9c-expired.der" -40 -5
run "import expired" Y -a import-certificate -s 9c -K DER -i "$tmp/9c-expired.der"
run "extend of an expired cert" R prepare - 9c extend "$DEFAULT_PIN" "$tmp/x.csr"
expect_eq "extend of an expired certificate" "$out" "prepare RENEWAL_STATE -1"
run "repair prepare" R prepare - 9c repair "$DEFAULT_PIN" "$tmp/r.csr"
read -r _ _ rid _ <<<"$out"
csr_ok "$tmp/r.csr"
issue "$tmp/r.csr" "$tmp/r.der"
run "repair commit" R commit "$rid" "$tmp/r.der"
expect_in "repair commit" "$out" "commit OK done 9c"
Y -a read-certificate -s 9c -K DER -o "$tmp/now.der" 2>/dev/null
same_file "repaired 9c certificate" "$tmp/now.der" "$tmp/r.der"
signs 9c ECCP256 "$tmp/r.der"
ok "repair of an expired 9c certificate"

# A certificate valid only in a few seconds: written to the staging slot, the old pair stays
# active; the next recovery after its not_before (here: the next run) activates it.
Y -a read-certificate -s 9a -K DER -o "$tmp/before-delay.der" 2>/dev/null
keys=$(retired_keys)
run "prepare (delayed)" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/d.csr"
read -r _ _ did dstaged <<<"$out"
openssl req -in "$tmp/d.csr" -pubkey -noout >"$tmp/d.pub"
cert_dated "$tmp/d.pub" "$tmp/d.der" 4s 30
run "commit (delayed)" R commit "$did" "$tmp/d.der"
expect_eq "commit of a not yet valid certificate" "$out" "commit OK written 9a $dstaged"
Y -a read-certificate -s 9a -K DER -o "$tmp/now.der" 2>/dev/null
same_file "9a keeps the old certificate until the new one is valid" "$tmp/now.der" "$tmp/before-delay.der"
signs 9a RSA2048 "$tmp/now.der"
Y -a read-certificate -s "$dstaged" -K DER -o "$tmp/now.der" 2>/dev/null
same_file "the new certificate waits in the staging slot" "$tmp/now.der" "$tmp/d.der"
run "recover too early" R recover
run "status (early)" R status "$did"
expect_in "still waiting" "$out" "status OK written 9a"
Y -a read-certificate -s 9a -K DER -o "$tmp/now.der" 2>/dev/null
same_file "the old pair stays until activation" "$tmp/now.der" "$tmp/before-delay.der"
signs 9a RSA2048 "$tmp/now.der"
sleep 5
run "recover when due" R recover
run "status (due)" R status "$did"
expect_in "activated when due" "$out" "status OK done 9a"
Y -a read-certificate -s 9a -K DER -o "$tmp/now.der" 2>/dev/null
same_file "9a holds the new certificate once it is valid" "$tmp/now.der" "$tmp/d.der"
signs 9a RSA2048 "$tmp/d.der"
retired "$tmp/before-delay.der" "$keys" "delayed activation"
ok "a not yet valid certificate waits in the staging slot, the old pair active, until it is valid; then the old key is retired"

# SIGKILL after every step of a commit, then recovery (as on the next start or insert): the
# renewal is finished or back to PREPARED (and then commits), and 9a's key signs with 9a's
# certificate every time.
for step in cert_accepted committing written old_key_moved old_cert_moved new_key_moved \
    new_cert_in_slot staging_freed key_history activated old_key_unrecorded old_key_deleted \
    old_cert_deleted retired_key_history; do
    Y -a read-certificate -s 9a -K DER -o "$tmp/k-old.der" 2>/dev/null
    keys=$(retired_keys)
    run "prepare ($step)" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/k.csr"
    read -r _ _ kid _ <<<"$out"
    issue "$tmp/k.csr" "$tmp/k.der"
    out=$(UK_RENEWAL_KILL_AT=$step "$drive" "$st" commit "$kid" "$tmp/k.der" 2>>"$tmp/drive.log" || true)
    expect_eq "commit killed" "$out" "killed at $step"
    run "recover ($step)" R recover
    expect_eq "recovery after $step" "$out" "recover OK"
    run "status ($step)" R status "$kid"
    if [[ $out == "status OK prepared "* ]]; then
        sleep 1 # a later second: the backup made by the first try is kept, not made again
        run "commit again ($step)" R commit "$kid" "$tmp/k.der"
        expect_in "commit after rollback" "$out" "commit OK done 9a"
        note "killed after $step: rolled back to prepared, committed again"
    else
        expect_in "status after recovery" "$out" "status OK done 9a"
        note "killed after $step: finished by recovery"
    fi
    Y -a read-certificate -s 9a -K DER -o "$tmp/now.der" 2>/dev/null
    same_file "9a certificate after kill at $step" "$tmp/now.der" "$tmp/k.der"
    signs 9a RSA2048 "$tmp/now.der"
    retired "$tmp/k-old.der" "$keys" "killed at $step"
done
ok "SIGKILL after each commit step: recovery finishes or rolls back, 9a always signs, the old key is retired"

# certs_line KEY: the token layer's entry for KEY ("cert KEY TAIL"), as cert.list lists it.
certs_line() {
    run "certs" R certs
    grep -E "^cert $1( |\$)" <<<"$out" || true
}
# tail_of DER: the last 8 bytes in hex, as uk-renewal-drive prints them.
tail_of() { tail -c 8 "$1" | od -An -tx1 | tr -d ' \n'; }

# An explicit subject: repair of a slot with no certificate at all (9c's certificate deleted; its
# key stays), the CSR carries the subject in certificate order. Aborted again; 9c restored.
Y -a read-certificate -s 9c -K DER -o "$tmp/9c-keep.der" 2>/dev/null
run "delete 9c certificate" Y -a delete-certificate -s 9c
run "repair without certificate, no subject" R prepare - 9c repair "$DEFAULT_PIN" "$tmp/s.csr"
expect_eq "repair of a slot without certificate needs a subject" "$out" "prepare CERT_NOT_FOUND -1"
out=$(UK_RENEWAL_SUBJECT="/C=CN/O=Test Org/OU=Unit 7/CN=张三 repair/emailAddress=z@example.cn" \
    "$drive" "$st" prepare - 9c repair "$DEFAULT_PIN" "$tmp/s.csr" 2>>"$tmp/drive.log")
[[ $out == "prepare OK "* ]] || fail "repair with a subject: $out"
read -r _ _ sid _ <<<"$out"
csr_ok "$tmp/s.csr"
subj=$(openssl req -in "$tmp/s.csr" -noout -subject -nameopt RFC2253,-esc_msb)
expect_eq "CSR subject" "$subj" "subject=emailAddress=z@example.cn,CN=张三 repair,OU=Unit 7,O=Test Org,C=CN"
run "abort subject renewal" R abort "$sid"
run "restore 9c certificate" Y -a import-certificate -s 9c -K DER -i "$tmp/9c-keep.der"
ok "explicit subject: repair of a slot without certificate, subject in the CSR"

# A chain at commit: without a CA bundle the chain must lead up (signatures, validity); with one,
# to a CA of the bundle. Refusals change nothing on the card.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/root.key" \
    -out "$tmp/root.pem" -subj "/CN=chain root" -days 30 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/int.key" \
    -out "$tmp/int.csr" -subj "/CN=chain intermediate" 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$tmp/ca.ext"
openssl x509 -req -in "$tmp/int.csr" -CA "$tmp/root.pem" -CAkey "$tmp/root.key" -days 20 \
    -extfile "$tmp/ca.ext" -out "$tmp/int.pem" 2>/dev/null || fail "intermediate"
openssl x509 -in "$tmp/int.pem" -outform DER -out "$tmp/int.der"
openssl x509 -in "$tmp/root.pem" -outform DER -out "$tmp/root.der"
openssl x509 -in "$tmp/ca.pem" -outform DER -out "$tmp/ca.der"
run "prepare (chain)" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/c.csr"
read -r _ _ cid cstaged <<<"$out"
openssl x509 -req -in "$tmp/c.csr" -CA "$tmp/int.pem" -CAkey "$tmp/int.key" -days 10 \
    -outform DER -out "$tmp/c.der" 2>/dev/null || fail "issue (chain)"
before=$(card_certs)
run "commit, chain of another CA" R commit "$cid" "$tmp/c.der" "$tmp/ca.der"
expect_eq "commit with a chain that does not lead up" "$out" "commit CHAIN_INVALID -1"
run "commit, root without intermediate" R commit "$cid" "$tmp/c.der" "$tmp/root.der"
expect_eq "commit with a chain that skips the issuer" "$out" "commit CHAIN_INVALID -1"
out=$(UK_RENEWAL_CA_BUNDLE="$tmp/ca.pem" "$drive" "$st" commit "$cid" "$tmp/c.der" "$tmp/int.der" \
    "$tmp/root.der" 2>>"$tmp/drive.log")
expect_eq "commit with a CA bundle that does not hold the root" "$out" "commit CHAIN_INVALID -1"
expect_eq "card certificates after refused chains" "$(card_certs)" "$before"
out=$(UK_RENEWAL_CA_BUNDLE="$tmp/root.pem" "$drive" "$st" commit "$cid" "$tmp/c.der" \
    "$tmp/int.der" 2>>"$tmp/drive.log")
expect_eq "commit with a chain to the CA bundle" "$out" "commit OK done 9a $cstaged"
ok "chain: a wrong chain or bundle is CHAIN_INVALID and changes nothing; a good one commits"

# abort_written STAGED_BEFORE: a renewal waiting in WRITTEN (certificate valid tomorrow) is aborted;
# the old pair stays active and signs, the staging slot is empty and free again.
abort_written() {
    local wid wstaged
    Y -a read-certificate -s 9a -K DER -o "$tmp/w-before.der" 2>/dev/null
    run "prepare (to abort when written)" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/w.csr"
    read -r _ _ wid wstaged <<<"$out"
    openssl req -in "$tmp/w.csr" -pubkey -noout >"$tmp/w.pub"
    cert_dated "$tmp/w.pub" "$tmp/w.der" 1 30
    run "commit (valid tomorrow)" R commit "$wid" "$tmp/w.der"
    expect_eq "commit of a certificate valid tomorrow" "$out" "commit OK written 9a $wstaged"
    run "abort written" R abort "$wid"
    expect_eq "abort of a written renewal" "$out" "abort OK aborted 9a $wstaged"
    Y -a read-certificate -s 9a -K DER -o "$tmp/now.der" 2>/dev/null
    same_file "9a keeps the old certificate after the abort" "$tmp/now.der" "$tmp/w-before.der"
    signs 9a RSA2048 "$tmp/w-before.der"
    if Y -a read-certificate -s "$wstaged" -K DER -o "$tmp/cc.der" 2>/dev/null; then
        fail "the staging slot $wstaged still holds a certificate after the abort"
    fi
    run "recover after abort" R recover
    run "status after abort" R status "$wid"
    expect_in "still aborted after a recovery" "$out" "status OK aborted 9a"
    run "prepare after the abort" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/w2.csr"
    read -r _ _ wid2 wstaged2 <<<"$out"
    expect_eq "staging slot free again after aborting a written renewal" "$wstaged2" "$wstaged"
    run "abort it" R abort "$wid2"
}
abort_written
ok "a renewal waiting in WRITTEN is aborted: old pair active, staged key and certificate gone"

# A card without MOVE KEY: the new key stays in the staging slot.
rig_up "$tmp/rig2" --profile generic
st="$tmp/state2"
mkdir -m 0700 "$st"
Y -a read-certificate -s 9a -K DER -o "$tmp/g0.der" 2>/dev/null
run "generic prepare" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/g.csr"
read -r _ _ gid gstaged <<<"$out"
csr_ok "$tmp/g.csr"
issue "$tmp/g.csr" "$tmp/g.der"
run "generic commit" R commit "$gid" "$tmp/g.der"
expect_eq "generic commit" "$out" "commit OK done 9a $gstaged"
Y -a read-certificate -s "$gstaged" -K DER -o "$tmp/now.der" 2>/dev/null
same_file "new certificate in the staging slot" "$tmp/now.der" "$tmp/g.der"
signs "$gstaged" RSA2048 "$tmp/g.der"
# Retirement keeps the old pair in 9A: other tools read only the standard slot.
Y -a read-certificate -s 9a -K DER -o "$tmp/now.der" 2>/dev/null
same_file "the old pair stays in 9A" "$tmp/now.der" "$tmp/g0.der"
signs 9a RSA2048 "$tmp/g0.der"
record_keeps "$gstaged" || fail "the card record does not keep the active slot $gstaged"
ok "card without MOVE KEY: new key and certificate stay in $gstaged, the old pair in 9A"

# The token layer (cert.list) follows the role: the new certificate under 9a, not again under the
# staging slot.
expect_eq "cert.list: 9a after the renewal" "$(certs_line 9a)" "cert 9a $(tail_of "$tmp/g.der")"
expect_eq "cert.list: the staging slot is not listed twice" "$(certs_line "$gstaged")" ""
ok "card without MOVE KEY: cert.list shows the renewed certificate under 9a"

# A second renewal of 9a starts from the active pair (the one in $gstaged): its certificate is the
# one backed up and replaced; the role then maps to the new staging slot.
rm -f "$st/backup/"*
run "generic prepare 2" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/g2.csr"
read -r _ _ gid2 gstaged2 <<<"$out"
[[ $gstaged2 != "$gstaged" ]] || fail "second renewal staged over the active key in $gstaged"
issue "$tmp/g2.csr" "$tmp/g2.der"
run "generic commit 2" R commit "$gid2" "$tmp/g2.der"
expect_eq "generic commit 2" "$out" "commit OK done 9a $gstaged2"
backups=("$st/backup/"*"-9a-"*.der)
same_file "the second renewal replaced the active (first renewed) certificate" "${backups[0]}" "$tmp/g.der"
expect_eq "cert.list: 9a after the second renewal" "$(certs_line 9a)" "cert 9a $(tail_of "$tmp/g2.der")"
expect_eq "cert.list: the new staging slot not listed twice" "$(certs_line "$gstaged2")" ""
signs "$gstaged2" RSA2048 "$tmp/g2.der"
ok "card without MOVE KEY: a second renewal starts from the active pair and moves the role"

# ... and retires it: the first renewed certificate and its record entry go (the card cannot delete
# the key: the next key generated there overwrites it), 9A keeps the original pair, and the slot
# is free again for the next renewal.
if Y -a read-certificate -s "$gstaged" -K DER -o "$tmp/cc.der" 2>/dev/null; then
    fail "the retired slot $gstaged still holds a certificate"
fi
if record_keeps "$gstaged"; then fail "the card record still keeps the retired slot $gstaged"; fi
record_keeps "$gstaged2" || fail "the card record does not keep the active slot $gstaged2"
Y -a read-certificate -s 9a -K DER -o "$tmp/now.der" 2>/dev/null
same_file "9A keeps the original pair" "$tmp/now.der" "$tmp/g0.der"
signs 9a RSA2048 "$tmp/g0.der"
expect_eq "cert.list: the retired slot is not listed" "$(certs_line "$gstaged")" ""
run "generic prepare 3" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/g3.csr"
read -r _ _ gid3 gstaged3 <<<"$out"
expect_eq "the retired slot is free again" "$gstaged3" "$gstaged"
run "generic abort 3" R abort "$gid3"
expect_eq "generic abort 3" "$out" "abort OK aborted 9a $gstaged"
ok "card without MOVE KEY: the second renewal retires the first renewed pair; 9A keeps the original"

abort_written
ok "card without MOVE KEY: a renewal waiting in WRITTEN is aborted"

# No free staging slot: every retired slot taken (a certificate in each) -> NO_STAGING_SLOT and
# nothing on the card changes.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/filler.key" \
    -out "$tmp/filler.pem" -subj "/CN=filler" -days 5 2>/dev/null
for n in $(seq $((0x82)) $((0x95))); do
    s=$(printf '%02x' "$n")
    if ! Y -a read-certificate -s "$s" -K DER -o "$tmp/cc.der" 2>/dev/null; then
        run "fill $s" Y -a import-certificate -s "$s" -i "$tmp/filler.pem"
    fi
done
before=$(card_certs)
run "prepare without a free slot" R prepare - 9c extend "$DEFAULT_PIN" "$tmp/n.csr"
expect_eq "prepare without a free staging slot" "$out" "prepare NO_STAGING_SLOT -1"
expect_eq "card certificates after NO_STAGING_SLOT" "$(card_certs)" "$before"
ok "no free staging slot: NO_STAGING_SLOT, nothing changed"
