#!/usr/bin/env bash
# A ~3 KiB certificate (3030 bytes DER; yubico-piv-tool 2.2.0 refuses objects
# over about 3052 bytes) through both tools: written by yubico-piv-tool
# (command chaining), read back by yubico-piv-tool and pkcs15-tool (61xx +
# GET RESPONSE). Then again on a card provisioned with --ext-length, where an
# extended APDU gets the whole object at once.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

make_test_ca "$tmp"
counter() { # NAME: one field of `vpiv ctl counters`
    ctl counters | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# Extended GET DATA of the 9A certificate object, Le = 0000 (up to 65536).
APDU_EXT_CERT_9A=00CB3FFF0000055C035FC1050000

for mode in short ext; do
    opts=()
    [[ $mode == ext ]] && opts=(--ext-length)
    rig_up "$tmp/rig-$mode" "${opts[@]}"
    if [[ $mode == short ]]; then
        # The certificate's key does not matter for the transfer; use 9A's.
        cert_der 5FC105 "$tmp/demo9a.der"
        openssl x509 -inform DER -in "$tmp/demo9a.der" -noout -pubkey >"$tmp/demo9a.pub"
        big_cert "$tmp/demo9a.pub" "$tmp/big.der" 3030
        size=$(stat -c %s "$tmp/big.der")
        ((size >= 3000 && size <= 3050)) || fail "big certificate is $size bytes, want 3000-3050"
        ok "made a $size-byte certificate"
    fi

    ctl counters-reset >/dev/null
    run "import-certificate (3 KiB)" Y -a import-certificate -s 9a -K DER -i "$tmp/big.der"
    n=$(counter apdus_in)
    bytes=$(counter bytes_in)
    ((bytes > size && n >= size / 255)) ||
        fail "import of $size bytes took $n APDUs / $bytes bytes: no chaining?"
    ok "$mode: yubico-piv-tool wrote $size bytes in $n APDUs ($bytes bytes in: chained)"

    run "read-certificate" Y -a read-certificate -s 9a -K DER -o "$tmp/ypt-$mode.der"
    same_file "yubico-piv-tool read-back ($mode)" "$tmp/big.der" "$tmp/ypt-$mode.der"
    ok "$mode: yubico-piv-tool reads it back byte for byte"

    ctl counters-reset >/dev/null
    run "pkcs15-tool --read-certificate 01" pkcs15-tool --read-certificate 01 \
        -o "$tmp/p15-$mode.pem"
    n=$(counter apdus_in)
    openssl x509 -in "$tmp/p15-$mode.pem" -outform DER -out "$tmp/p15-$mode.der"
    same_file "pkcs15-tool read-back ($mode)" "$tmp/big.der" "$tmp/p15-$mode.der"
    ok "$mode: pkcs15-tool --read-certificate 01 byte for byte ($n APDUs)"

    # The same object by hand: short APDUs see 61xx chunks of 256 bytes.
    r=$("$UK_PCSC" apdu "$UK_RIG_READER" "$APDU_SELECT" 00CB3FFF055C035FC10500 | tail -n 1)
    expect_eq "first chunk of GET DATA (bytes)" $((${#r} / 2 - 2)) 256
    [[ $r == *6100 ]] || fail "first chunk does not end in 6100: ...${r: -8}"
    ok "$mode: a short GET DATA answers 256 bytes + 6100, the rest via GET RESPONSE"

    if [[ $mode == short ]]; then
        expect_eq "extended APDU on a short-only card" "$(apdu "$APDU_EXT_CERT_9A")" 6700
        ok "short: an extended-length GET DATA is refused with 6700"
        if command -v ykman >/dev/null; then
            run_fails "ykman on a short-only card" timeout 60 ykman --reader "$UK_RIG_READER" \
                piv certificates export -F DER 9a "$tmp/yk.der"
            expect_in "ykman on a short-only card" "$out" "SW=0x6700"
            ok "short: ykman (which sends extended APDUs to PIV >= 4.0) gets 6700"
        fi
    else
        ctl counters-reset >/dev/null
        r=$(apdu "$APDU_EXT_CERT_9A")
        expect_eq "APDUs for the extended GET DATA (SELECT + 1)" "$(counter apdus_in)" 2
        obj=$(tlv_get "$(data_of "extended GET DATA" "$r")" 53)
        tlv_get "$obj" 70 | hex2bin >"$tmp/ext.der"
        same_file "extended GET DATA" "$tmp/big.der" "$tmp/ext.der"
        ok "ext: one extended GET DATA returns the whole $size-byte certificate, no 61xx"
        # OpenSC 0.23's PIV driver never sets SC_CARD_CAP_APDU_EXT, so it
        # stays with short APDUs on this card too; say what it did.
        note "OpenSC used $n APDUs for the read on the extended-length card"
        if command -v ykman >/dev/null; then
            # ykman uses extended APDUs (it failed with 6700 on the short card).
            run "ykman certificates export" timeout 60 ykman --reader "$UK_RIG_READER" piv \
                certificates export -F DER 9a "$tmp/yk.der"
            same_file "ykman export" "$tmp/big.der" "$tmp/yk.der"
            ok "ext: ykman (extended APDUs) exports the certificate byte for byte"
        else
            ok "# SKIP ykman not installed: no extended-length client besides uk-pcsc"
        fi
    fi
    rig_down "$tmp/rig-$mode"
done
