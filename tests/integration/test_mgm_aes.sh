#!/usr/bin/env bash
# AES management keys. Debian's yubico-piv-tool 2.2.0 knows only 3DES, so the
# host side is done two ways:
#  - uk-pcsc APDUs with the cryptography of `openssl enc` (always);
#  - ykman (yubikey-manager 4.0.9) when installed. ykman sends extended-length
#    APDUs to any PIV application reporting version >= 4 (as this card does),
#    so it needs a card provisioned with --ext-length; on a short-only card it
#    fails with 6700 on its first GET DATA, as a real short-only card would.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rig_up "$tmp/rig" --ext-length
keep_powered

# ---- uk-pcsc + openssl enc ------------------------------------------------
cur_alg=03
cur_key=$DEFAULT_MGM
expect_eq "mutual auth with the default 3DES key" "$(mgm_auth 03 "$DEFAULT_MGM")" 9000
ok "3DES mutual authentication (witness decrypted, challenge checked) with the default key"

for k in 08:16:AES128 0A:24:AES192 0C:32:AES256; do
    IFS=: read -r alg len name <<<"$k"
    key=$(openssl rand -hex "$len" | tr 'a-f' 'A-F')
    expect_eq "auth with the current key" "$(mgm_auth "$cur_alg" "$cur_key")" 9000
    expect_eq "SET MANAGEMENT KEY $name" "$(apdu_raw "00FFFFFF$(printf %02X $((len + 3)))${alg}9B$(printf %02X "$len")$key")" 9000
    expect_eq "auth with the old algorithm" "$(mgm_auth "$cur_alg" "$cur_key")" 6A80
    wrong=${key:0:-2}$(printf %02X $((16#${key: -2} ^ 1)))
    expect_eq "auth with a wrong $name key" "$(mgm_auth "$alg" "$wrong")" 6982
    # Unauthenticated, GENERATE is refused...
    expect_eq "GENERATE unauthenticated" "$(apdu_raw 0047008505AC03800111)" 6982
    # ...and with the new key it works.
    expect_eq "auth with the new $name key" "$(mgm_auth "$alg" "$key")" 9000
    r=$(apdu_raw 0047008505AC03800111)
    [[ $r == 7F49*9000 ]] || fail "GENERATE after $name auth: $r"
    meta=$(data_of "GET METADATA 9B" "$(apdu 00F7009B00)")
    expect_eq "metadata 9B algorithm" "$(tlv_get "$meta" 01)" "$alg"
    ok "SET MANAGEMENT KEY to $name; mutual auth with it works, old algorithm 6A80, wrong key 6982"
    cur_alg=$alg
    cur_key=$key
done

# ---- ykman ------------------------------------------------------------------
if ! command -v ykman >/dev/null; then
    ok "# SKIP ykman not installed (Debian package yubikey-manager); AES checked through uk-pcsc only"
    exit 0
fi
yk() {
    timeout 60 ykman --reader "$UK_RIG_READER" piv "$@"
}
run "ykman piv info" yk info
expect_in "ykman piv info" "$out" "Management key algorithm: AES256"
ok "ykman reads the card and reports the AES-256 management key set through uk-pcsc"

k2=$(openssl rand -hex 24 | tr 'a-f' 'A-F')
run "ykman change-management-key AES192" yk access change-management-key -a AES192 \
    -m "$cur_key" -n "$k2" -f
run "ykman piv info" yk info
expect_in "ykman piv info" "$out" "Management key algorithm: AES192"
ok "ykman access change-management-key -a AES192"

run "ykman generate with the AES-192 key" yk keys generate -a ECCP256 -m "$k2" 9a "$tmp/yk9a.pem"
got=$(tlv_get "$(tlv_get "$(data_of "GET METADATA" "$(apdu 00F7009A00)")" 04)" 86)
want=$(openssl pkey -pubin -in "$tmp/yk9a.pem" -outform DER | tail -c 65 | bin2hex)
expect_eq "ykman's public key vs GET METADATA" "$got" "$want"
run_fails "ykman generate with the old key" yk keys generate -a ECCP256 -m "$cur_key" 9a \
    "$tmp/x.pem"
expect_in "ykman with the old key" "$out" "Authentication with management key failed"
ok "ykman authenticates with the AES-192 key (generate in 9a) and not with the old AES-256 key"

# Our own AES-192 host side agrees with ykman's.
expect_eq "uk-pcsc auth with ykman's AES-192 key" "$(mgm_auth 0A "$k2")" 9000
ok "openssl-enc mutual auth accepts the key ykman set"
