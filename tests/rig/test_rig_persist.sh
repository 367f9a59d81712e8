#!/usr/bin/env bash
# The card state in DIR survives `down`/`up`: same serial, same certificate,
# and a PIN retry counter spent before the restart stays spent. `--fresh`
# provisions a new card.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

d="$tmp/rig"
rig_up "$d"
serial=$(apdu "$d" UK_RIG_READER "$APDU_SERIAL")
cert=$(apdu "$d" UK_RIG_READER "$APDU_CERT_9A")
expect_sw "GET SERIAL" "$serial" 9000
expect_sw "GET DATA 9A" "$cert" 9000
((${#cert} > 400)) || fail "certificate object too short: $cert"
expect_eq "PIN retries at start" "$(apdu "$d" UK_RIG_READER "$APDU_PIN_RETRIES")" 63C3
# One wrong PIN (ASCII "000000" padded with FF).
wrong=$(apdu "$d" UK_RIG_READER 0020008008303030303030FFFF)
expect_eq "wrong PIN" "$wrong" 63C2

"$rig" down "$d"
rig_up "$d"
expect_eq "serial after restart" "$(apdu "$d" UK_RIG_READER "$APDU_SERIAL")" "$serial"
expect_eq "certificate after restart" "$(apdu "$d" UK_RIG_READER "$APDU_CERT_9A")" "$cert"
expect_eq "PIN retries after restart" "$(apdu "$d" UK_RIG_READER "$APDU_PIN_RETRIES")" 63C2

note "a different profile on existing state is refused"
"$rig" down "$d"
if "$rig" up "$d" --profile generic 2>"$tmp/err"; then
    fail "'up --profile generic' reused a yubico card"
fi
grep -q -- --fresh "$tmp/err" || fail "no hint at --fresh: $(cat "$tmp/err")"

note "--fresh provisions a new card"
rig_up "$d" --fresh
expect_eq "PIN retries on a fresh card" "$(apdu "$d" UK_RIG_READER "$APDU_PIN_RETRIES")" 63C3
fresh_cert=$(apdu "$d" UK_RIG_READER "$APDU_CERT_9A")
expect_sw "GET DATA 9A (fresh)" "$fresh_cert" 9000
[[ $fresh_cert != "$cert" ]] || fail "--fresh kept the old certificate"
note "ok"
