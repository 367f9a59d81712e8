#!/usr/bin/env bash
# The card's fault and timing controls (`vpiv ctl`) seen through PC/SC:
# next-sw, latency (lower bounds only: test machines are noisy), counters and
# counters-reset, drop-after N executed (a write that happened although the
# client never got the answer) and drop-after N (one that did not).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rig_up "$tmp/rig"

counter() { # NAME: one field of `vpiv ctl counters`
    ctl counters | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# ---- next-sw ----------------------------------------------------------------
run "next-sw" ctl next-sw 6A82
expect_eq "APDU after next-sw 6A82" "$(apdu_raw "$APDU_SELECT")" 6A82
r=$(apdu_raw "$APDU_SELECT")
[[ $r == 61*9000 ]] || fail "the APDU after that is answered normally: $r"
ok "next-sw 6A82: the next APDU answers 6A82, the one after it normally"

# ---- latency ------------------------------------------------------------------
run "latency" ctl latency 50000 0
t0=$(now_ms)
expect_eq "VERIFY with latency" "$(apdu_raw 0020008000)" 63C3
ms=$(($(now_ms) - t0))
((ms >= 50)) || fail "an APDU with 50 ms latency took ${ms} ms"
ok "latency 50000 0: one APDU took ${ms} ms (>= 50)"
run "latency" ctl latency 0 1000
# 15 bytes in + 57 out at 1 ms per byte: at least 72 ms.
t0=$(now_ms)
r=$(apdu_raw "$APDU_SELECT")
ms=$(($(now_ms) - t0))
n=$((15 + ${#r} / 2))
((ms >= n)) || fail "an APDU of $n bytes at 1 ms per byte took ${ms} ms"
ok "latency 0 1000: an APDU of $n bytes took ${ms} ms (>= $n)"
run "latency off" ctl latency 0 0

# ---- counters -----------------------------------------------------------------
run "counters-reset" ctl counters-reset
expect_eq "counters after reset" "$(ctl counters)" "ok apdus_in=0 apdus_out=0 bytes_in=0 bytes_out=0"
ok "counters-reset zeroes every counter"
cmds=("$APDU_SELECT" 0020008000 00F8000000 00CB3FFF055C035FC10200 00FD000000)
run "five APDUs" "$UK_PCSC" apdu "$UK_RIG_READER" "${cmds[@]}"
mapfile -t resps <<<"$out"
in=0
for c in "${cmds[@]}"; do in=$((in + ${#c} / 2)); done
outb=0
for r in "${resps[@]}"; do outb=$((outb + ${#r} / 2)); done
expect_eq "counters" "$(ctl counters)" \
    "ok apdus_in=5 apdus_out=5 bytes_in=$in bytes_out=$outb"
ok "counters: exactly the 5 APDUs uk-pcsc sent ($in bytes in, $outb bytes out)"
run "counters-reset" ctl counters-reset
expect_eq "counters after reset" "$(counter apdus_in) $(counter bytes_out)" "0 0"
ok "counters-reset zeroes them again"

# ---- drop-after N executed / drop-after N ---------------------------------------
# put_apdu OBJECT_TAG VALUE_HEX: PUT DATA of a retired-key certificate
# object (no PIN needed to read it back) on an authenticated card.
put_apdu() {
    local body
    body="5C03${1}53$(hexlen "$2")$2"
    echo "00DB3FFF$(hexlen "$body")$body"
}
drop_write() { # MODE(executed|"") OBJECT VALUE
    keep_powered
    expect_eq "mutual auth" "$(mgm_auth 03 "$DEFAULT_MGM")" 9000
    if [[ -n $1 ]]; then
        run "drop-after 0 executed" ctl drop-after 0 executed
    else
        run "drop-after 0" ctl drop-after 0
    fi
    if r=$(apdu_raw "$(put_apdu "$2" "$3")" 2>&1); then
        fail "PUT DATA answered although the card dropped: $r"
    fi
    wait_card absent
    release_power
    ctl insert >/dev/null
    wait_card present
}
v1=$(openssl rand -hex 24 | tr 'a-f' 'A-F')
drop_write executed 5FC10D "$v1"
expect_eq "object written before the drop" "$(apdu 00CB3FFF055C035FC10D00)" "53$(hexlen "$v1")${v1}9000"
ok "drop-after 0 executed: the client saw an error, the PUT DATA happened (visible after re-insert)"
v2=$(openssl rand -hex 24 | tr 'a-f' 'A-F')
drop_write "" 5FC10E "$v2"
expect_eq "object not written" "$(apdu 00CB3FFF055C035FC10E00)" 6A82
ok "drop-after 0: the client saw an error and the PUT DATA did not happen"
