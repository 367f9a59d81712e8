#!/usr/bin/env bash
# A card with the generic profile (no vendor extensions): OpenSC works fully,
# yubico-piv-tool still reads it, every vendor INS answers 6D00.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=opensc_checks.sh
. "$(dirname "$0")/opensc_checks.sh"

rig_up "$tmp/rig" --profile generic

for ins in FD F8 F7 FE FF F6 FB FA; do
    expect_eq "vendor INS $ins" "$(apdu "00${ins}0000")" 6D00
    expect_eq "vendor INS $ins with data" "$(apdu "00${ins}FFFF03039B00")" 6D00
done
ok "generic profile: vendor INS FD F8 F7 FE FF F6 FB FA all answer 6D00"

opensc_checks "generic profile"

# yubico-piv-tool 2.2.0 on a generic PIV card: GET VERSION and GET SERIAL
# fail (6D00) and status shows "No data available" for them, but it still
# reads and lists the certificates and verifies the PIN.
run "yubico-piv-tool status" Y -a status
status=$out
expect_in "status" "$status" "Version:	No data available"
expect_in "status" "$status" "Serial Number:	No data available"
expect_in "status" "$status" "Slot 9a:"
expect_in "status" "$status" "Slot 9c:"
expect_in "status" "$status" "Issuer DN:	C=CN, O=NHSA, CN=ukeyd Demo CA"
ok "yubico-piv-tool status lists 9a and 9c (version and serial: 'No data available')"
run "verify-pin" Y -a verify-pin -P "$DEFAULT_PIN"
run_fails "wrong PIN" Y -a verify-pin -P 000000
expect_in "wrong PIN" "$out" "2 tries left"
ok "yubico-piv-tool verify-pin works on the generic card"

# Key generation and signing without the vendor commands.
run "generate" Y -a generate -s 9e -A ECCP256 -o "$tmp/9e.pem"
head -c 100 /dev/urandom >"$tmp/data9e"
run "sign with 9e" Y -a verify-pin --sign -s 9e -A ECCP256 -H SHA256 -P "$DEFAULT_PIN" \
    -i "$tmp/data9e" -o "$tmp/sig9e"
verify_sig "$tmp/9e.pem" "$tmp/sig9e" "$tmp/data9e"
ok "yubico-piv-tool generate + sign in 9e on the generic card verifies with openssl"
