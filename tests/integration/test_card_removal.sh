#!/usr/bin/env bash
# The card disappears in the middle of a long transfer (a 3 KiB certificate
# read in 61xx chunks): the client fails promptly with a removed-card/reader
# error instead of hanging; after re-insertion the read works again.
#
# What the client sees: vpcd turns the vanished card into an empty response
# with SCARD_S_SUCCESS (its vicc_transmit returns 0 bytes at EOF), so the
# APDU that was in flight fails as "response shorter than a status word"
# (uk-pcsc) / an empty response (yubico-piv-tool); the next transmit on that
# handle fails with SCARD_E_NOT_TRANSACTED or SCARD_W_REMOVED_CARD, and pcscd
# reports the reader empty on its next presence poll (~0.4 s).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rig_up "$tmp/rig"
make_test_ca "$tmp"
cert_der 5FC105 "$tmp/demo9a.der"
openssl x509 -inform DER -in "$tmp/demo9a.der" -noout -pubkey >"$tmp/demo9a.pub"
big_cert "$tmp/demo9a.pub" "$tmp/big.der" 3030
run "import the big certificate" Y -a import-certificate -s 9a -K DER -i "$tmp/big.der"
size=$(stat -c %s "$tmp/big.der")
ok "imported a $size-byte certificate into 9a"

GET_9A=00CB3FFF055C035FC10500
removed_pattern='SCARD_W_REMOVED_CARD|SCARD_E_NO_SMARTCARD|SCARD_E_NOT_TRANSACTED|SCARD_F_COMM_ERROR|SCARD_E_READER_UNAVAILABLE|SCARD_W_RESET_CARD|response shorter than a status word'
limit_ms=10000 # "promptly": far below the 20 s timeout, with room for slow machines

# timed CMD...: runs CMD under `timeout 20`; sets rc, out and ms.
timed() {
    local t0
    t0=$(now_ms)
    rc=0
    out=$(timeout 20 "$@" 2>&1) || rc=$?
    ms=$(($(now_ms) - t0))
}

reinsert_and_read() { # WHO
    wait_card absent
    expect_in "card state after the drop" "$(ctl status)" "removed"
    ctl insert >/dev/null
    wait_card present
    run "read after re-insertion" Y -a read-certificate -s 9a -K DER -o "$tmp/again.der"
    same_file "certificate after re-insertion" "$tmp/big.der" "$tmp/again.der"
    r=$(apdu "$GET_9A")
    [[ $r == 5382*9000 && ${#r} -gt $((2 * size)) ]] || fail "uk-pcsc read after re-insertion: ${r:0:16}...${r: -8}"
    ok "$1: after 'vpiv ctl insert' the card is back and the certificate reads in full"
}

# ---- uk-pcsc: SELECT and GET DATA answered, the first GET RESPONSE is not --
ctl drop-after 2 >/dev/null
timed "$UK_PCSC" apdu --auto-get-response "$UK_RIG_READER" "$APDU_SELECT" "$GET_9A"
((rc != 124)) || fail "uk-pcsc hung: killed by timeout after ${ms} ms"
((rc != 0)) || fail "uk-pcsc succeeded although the card was dropped: $out"
((ms < limit_ms)) || fail "uk-pcsc took ${ms} ms to notice the removal"
err=$(grep -E "$removed_pattern" <<<"$out") || fail "uk-pcsc: no removed-card/reader error in: $out"
ok "uk-pcsc fails in ${ms} ms with: $err"
reinsert_and_read "uk-pcsc"

# ---- yubico-piv-tool: its 4 set-up APDUs, GET DATA and one GET RESPONSE are
# answered; the card drops on the second GET RESPONSE.
ctl drop-after 6 >/dev/null
timed yubico-piv-tool -r "$UK_RIG_READER" -v1 -a read-certificate -s 9a -K DER -o "$tmp/partial.der"
((rc != 124)) || fail "yubico-piv-tool hung: killed by timeout after ${ms} ms"
((rc != 0)) || fail "yubico-piv-tool read a certificate from a card that was dropped: $out"
((ms < limit_ms)) || fail "yubico-piv-tool took ${ms} ms to notice the removal"
expect_in "yubico-piv-tool" "$out" "Failed fetching certificate"
err=$(grep -vE "^[<>]|^Connect|^Action|^Now processing" <<<"$out" | tr "\n" " ")
ok "yubico-piv-tool fails in ${ms} ms: $err"
reinsert_and_read "yubico-piv-tool"
