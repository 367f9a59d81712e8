#!/usr/bin/env bash
# yubico-piv-tool as the judge of the card's identity and PIN/PUK handling:
# status, verify-pin (right, wrong, blocked), unblock-pin, change-pin,
# change-puk.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rig_up "$tmp/rig"

# ---- status -------------------------------------------------------------
run "status" Y -a status
status=$out
version=$(sed -n 's/^Version:\t//p' <<<"$status")
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "status: no version: $status"
ok "status reports version $version"

serial_hex=$(data_of "GET SERIAL" "$(apdu 00F8000000)")
serial=$((16#$serial_hex))
expect_eq "serial in status" "$(sed -n 's/^Serial Number:\t//p' <<<"$status")" "$serial"
expect_eq "serial the rig provisioned" "$(sed -n 's/^serial=//p' "$UK_RIG_DIR/card0/provisioned")" \
    "$serial"
ok "status reports serial $serial (= GET SERIAL = provisioned)"

# Both demo certificates are listed, with the fingerprint of what the card holds.
for slot in 9a:5FC105:RSA2048 9c:5FC10A:ECCP256; do
    IFS=: read -r s tag alg <<<"$slot"
    block=$(sed -n "/^Slot $s:/,/^[A-Z]/p" <<<"$status")
    expect_in "status slot $s" "$block" "Algorithm:	$alg"
    expect_in "status slot $s" "$block" "Issuer DN:	C=CN, O=NHSA, CN=ukeyd Demo CA"
    cert_der "$tag" "$tmp/$s.der"
    fp=$(openssl dgst -sha256 -r "$tmp/$s.der" | cut -d' ' -f1)
    expect_in "status slot $s fingerprint" "$block" "Fingerprint:	$fp"
    openssl verify -CAfile "$UK_RIG_CARD_DEMO/demo-ca.pem" <(openssl x509 -inform DER \
        -in "$tmp/$s.der") >/dev/null || fail "slot $s certificate not issued by the demo CA"
    ok "status lists slot $s ($alg) with the demo certificate (fingerprint $fp)"
done
expect_in "status" "$status" "PIN tries left:	3"
ok "status reports 3 PIN tries"

# ---- verify-pin ---------------------------------------------------------
run "verify-pin" Y -a verify-pin -P "$DEFAULT_PIN"
expect_in "verify-pin" "$out" "Successfully verified PIN"
ok "verify-pin with the right PIN"

run_fails "wrong PIN" Y -a verify-pin -P 000000
expect_in "wrong PIN" "$out" "2 tries left"
ok "wrong PIN: 2 tries left"
expect_eq "empty VERIFY after one wrong PIN" "$(apdu 0020008000)" 63C2
ok "empty VERIFY reports 63C2"
run_fails "wrong PIN" Y -a verify-pin -P 000000
expect_in "wrong PIN" "$out" "1 tries left"
ok "wrong PIN: 1 tries left"
run_fails "wrong PIN" Y -a verify-pin -P 000000
expect_in "third wrong PIN" "${out,,}" "blocked"
ok "third wrong PIN blocks: $(head -n 1 <<<"$out")"
run_fails "right PIN when blocked" Y -a verify-pin -P "$DEFAULT_PIN"
expect_in "right PIN when blocked" "${out,,}" "blocked"
expect_eq "empty VERIFY when blocked" "$(apdu 0020008000)" 6983
ok "blocked PIN refuses the right PIN too (6983)"

# ---- unblock-pin --------------------------------------------------------
run_fails "unblock with a wrong PUK" Y -a unblock-pin -P 00000000 -N 654321
expect_in "unblock with a wrong PUK" "$out" "2 tries left"
ok "unblock-pin with a wrong PUK: 2 PUK tries left"
run "unblock-pin" Y -a unblock-pin -P "$DEFAULT_PUK" -N 654321
expect_in "unblock-pin" "$out" "Successfully unblocked"
run "verify-pin after unblock" Y -a verify-pin -P 654321
run "status after unblock" Y -a status
expect_in "status after unblock" "$out" "PIN tries left:	3"
ok "unblock-pin with the PUK sets a new PIN that verifies (3 tries again)"

# ---- change-pin / change-puk --------------------------------------------
run "change-pin" Y -a change-pin -P 654321 -N 24681357
expect_in "change-pin" "$out" "Successfully changed the pin"
run_fails "old PIN after change" Y -a verify-pin -P 654321
expect_in "old PIN after change" "$out" "2 tries left"
run "new PIN" Y -a verify-pin -P 24681357
ok "change-pin: the old PIN fails, the new 8-digit PIN verifies"
run_fails "change-pin to 5 digits" Y -a change-pin -P 24681357 -N 12345
run "PIN unchanged" Y -a verify-pin -P 24681357
ok "change-pin to a 5-digit PIN is refused and changes nothing"

run_fails "change-puk with a wrong PUK" Y -a change-puk -P 11111111 -N 87654321
expect_in "change-puk with a wrong PUK" "$out" "tries left"
run "change-puk" Y -a change-puk -P "$DEFAULT_PUK" -N 87654321
expect_in "change-puk" "$out" "Successfully changed the puk"
run_fails "unblock with the old PUK" Y -a unblock-pin -P "$DEFAULT_PUK" -N 112233
run "unblock with the new PUK" Y -a unblock-pin -P 87654321 -N 112233
run "PIN set by the new PUK" Y -a verify-pin -P 112233
ok "change-puk: the old PUK fails, the new one unblocks"
