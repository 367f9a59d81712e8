# shellcheck shell=bash
# OpenSC checks shared by test_opensc.sh and test_generic_profile.sh
# (sourced after lib.sh, which sets tmp and out).
# shellcheck disable=SC2154

# opensc_checks LABEL: the OpenSC checks against the rig in the environment.
opensc_checks() {
    local label=$1
    run "opensc-tool -n" opensc-tool -n
    expect_in "opensc-tool -n" "$out" "Personal Identity Verification Card"
    ok "$label: opensc-tool -n names a PIV card"

    run "pkcs15-tool --list-certificates" pkcs15-tool --list-certificates
    local list=$out
    expect_in "certificate list" "$list" "Certificate for PIV Authentication"
    expect_in "certificate list" "$list" "Certificate for Digital Signature"
    grep -Eq 'ID +: 01$' <<<"$list" || fail "no certificate with ID 01: $list"
    grep -Eq 'ID +: 02$' <<<"$list" || fail "no certificate with ID 02: $list"
    ok "$label: pkcs15-tool lists the 9A (01) and 9C (02) demo certificates"

    head -c 700 /dev/urandom >"$tmp/data"
    local id slot mech fmt
    for x in 01:9a:SHA256-RSA-PKCS 02:9c:ECDSA-SHA256; do
        IFS=: read -r id slot mech <<<"$x"
        run "pkcs15-tool --read-certificate $id" pkcs15-tool --read-certificate "$id" \
            -o "$tmp/p15-$id.pem"
        openssl x509 -in "$tmp/p15-$id.pem" -outform DER -out "$tmp/p15-$id.der"
        run "yubico-piv-tool read-certificate $slot" Y -a read-certificate -s "$slot" -K DER \
            -o "$tmp/ypt-$slot.der"
        same_file "pkcs15-tool vs yubico-piv-tool ($id/$slot)" "$tmp/p15-$id.der" \
            "$tmp/ypt-$slot.der"
        openssl verify -CAfile "$UK_RIG_CARD_DEMO/demo-ca.pem" "$tmp/p15-$id.pem" >/dev/null ||
            fail "certificate $id does not chain to the demo CA"
        ok "$label: pkcs15-tool --read-certificate $id = yubico-piv-tool read-certificate $slot (byte for byte)"

        fmt=()
        [[ $mech == ECDSA* ]] && fmt=(--signature-format openssl)
        run "pkcs11-tool --sign $mech on $id" pkcs11-tool --module "$PKCS11_MODULE" --login \
            --pin "$DEFAULT_PIN" --sign --id "$id" -m "$mech" "${fmt[@]}" -i "$tmp/data" \
            -o "$tmp/sig-$id"
        openssl x509 -in "$tmp/p15-$id.pem" -noout -pubkey >"$tmp/pub-$id.pem"
        verify_sig "$tmp/pub-$id.pem" "$tmp/sig-$id" "$tmp/data"
        ok "$label: pkcs11-tool --login --sign $mech with id $id verifies with openssl"
    done
}
