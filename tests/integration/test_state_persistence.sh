#!/usr/bin/env bash
# The card's state survives `scripts/rig down` / `up` on the same DIR: a PIN
# retry spent before the restart stays spent, a key generated before it still
# signs (checked by openssl against the public key printed at generation).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

d="$tmp/rig"
rig_up "$d"
run "generate" Y -a generate -s 9a -A ECCP256 -o "$tmp/9a.pem"
run "generate" Y -a generate -s 9e -A RSA2048 -o "$tmp/9e.pem"
run_fails "wrong PIN" Y -a verify-pin -P 000000
expect_in "wrong PIN" "$out" "2 tries left"
serial=$(apdu 00F8000000)
ok "before the restart: ECCP256 in 9a, RSA2048 in 9e, one wrong PIN (2 tries left)"

rig_down "$d"
rig_up "$d"
expect_eq "serial after restart" "$(apdu 00F8000000)" "$serial"
run "status" Y -a status
expect_in "status after restart" "$out" "PIN tries left:	2"
expect_eq "empty VERIFY after restart" "$(apdu 0020008000)" 63C2
ok "after down/up: same serial, PIN retries still 2"

head -c 400 /dev/urandom >"$tmp/data"
for k in 9a:ECCP256 9e:RSA2048; do
    IFS=: read -r slot alg <<<"$k"
    run "sign with $slot" Y -a verify-pin --sign -s "$slot" -A "$alg" -H SHA256 -P "$DEFAULT_PIN" \
        -i "$tmp/data" -o "$tmp/sig-$slot"
    verify_sig "$tmp/$slot.pem" "$tmp/sig-$slot" "$tmp/data"
    ok "after down/up: the $alg key generated in $slot still signs (openssl verifies)"
done
run "status" Y -a status
expect_in "status after the right PIN" "$out" "PIN tries left:	3"
ok "the right PIN after the restart restores 3 tries"
