#!/usr/bin/env bash
# rig up -> card visible through PC/SC -> rig down -> nothing left: no
# recorded process, no vpcd port on the host, the system's /run/pcscd as it
# was, env file gone; `down` twice is fine.
# shellcheck disable=SC2153 # UK_RIG_* come from the env file
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

run_snapshot() { # the system's /run/pcscd, as far as we can see it
    if [[ -e /run/pcscd ]]; then
        stat -c '%i %Y %s' /run/pcscd
        ls -la --time-style=+%s /run/pcscd
    else
        echo absent
    fi
}
before=$(run_snapshot)

d="$tmp/rig"
rig_up "$d"
[[ -r $d/env ]] || fail "no $d/env"
# shellcheck source=/dev/null
. "$d/env"
for v in PCSCLITE_CSOCK_NAME UK_RIG_DIR UK_RIG_READER UK_RIG_CARD_CTL UK_RIG_CARD_STATE; do
    [[ -n ${!v:-} ]] || fail "$v missing from $d/env"
done
expect_eq UK_RIG_DIR "$UK_RIG_DIR" "$d"
expect_eq PCSCLITE_CSOCK_NAME "$PCSCLITE_CSOCK_NAME" "$d/run/pcscd.comm"
[[ -S $PCSCLITE_CSOCK_NAME ]] || fail "no pcscd socket at $PCSCLITE_CSOCK_NAME"
[[ -S $UK_RIG_CARD_CTL ]] || fail "no card control socket at $UK_RIG_CARD_CTL"
[[ -f $UK_RIG_CARD_STATE ]] || fail "no card state at $UK_RIG_CARD_STATE"
[[ -z ${UK_RIG_READER1:-} ]] || fail "one card asked, but UK_RIG_READER1 is set"

note "the reader and its card, through PC/SC"
list=$("$pcsc" list)
echo "$list"
grep -qF "$UK_RIG_READER"$'\tpresent' <<<"$list" ||
    fail "reader '$UK_RIG_READER' not listed as present"
[[ $UK_RIG_READER == "ukeyd rig "*" 00 00" ]] || fail "unexpected reader name '$UK_RIG_READER'"
expect_eq "reader count" "$(wc -l <<<"$list")" 2 # vpcd: two slots, one reader each
resp=$(apdu "$d" UK_RIG_READER "$APDU_SERIAL")
expect_sw "GET SERIAL" "$resp" 9000

note "remove and insert through the card's control socket"
"$vpiv" ctl "$UK_RIG_CARD_CTL" remove >/dev/null
"$pcsc" wait "$UK_RIG_READER" absent 5000 || fail "card still present after 'ctl remove'"
"$vpiv" ctl "$UK_RIG_CARD_CTL" insert >/dev/null
"$pcsc" wait "$UK_RIG_READER" present 5000 || fail "card not back after 'ctl insert'"

note "vpcd listens inside the rig's network namespace only"
port=$((16#$(sed -n 's/^CHANNELID *0x//p' "$d/reader.conf.d/vpcd")))
((port != 35963 && port != 35964)) || fail "rig uses vpcd's default port"
pcscd_pid=$(cut -d' ' -f1 "$d/pids/pcscd")
if command -v nsenter >/dev/null && [[ $EUID -eq 0 ]]; then
    nsenter -t "$pcscd_pid" -n ss -Hltn "sport = :$port" | grep -q . ||
        fail "vpcd is not listening on $port inside the rig"
fi
if ss -Hltn "( sport = :$port or sport = :$((port + 1)) )" | grep -q .; then
    fail "port $port is listening in the host's network namespace"
fi
[[ $(readlink "/proc/$pcscd_pid/ns/net") != "$(readlink /proc/self/ns/net)" ]] ||
    fail "the rig's pcscd runs in the host's network namespace"
[[ $(readlink "/proc/$pcscd_pid/ns/mnt") != "$(readlink /proc/self/ns/mnt)" ]] ||
    fail "the rig's pcscd runs in the host's mount namespace"

note "a second 'up' on a running rig is refused"
if "$rig" up "$d" 2>/dev/null; then
    fail "second 'rig up' on a running rig succeeded"
fi

note "down stops every recorded process"
pidfiles=("$d"/pids/*)
expect_eq "recorded processes" "${#pidfiles[@]}" 3 # supervisor, pcscd, card0
cp -r "$d/pids" "$tmp/pids"
"$rig" down "$d"
for f in "$tmp"/pids/*; do
    if recorded_running "$f"; then
        fail "${f##*/} (pid $(cut -d' ' -f1 "$f")) still runs after 'rig down'"
    fi
done
[[ ! -e $d/env ]] || fail "$d/env still there after down"
[[ ! -S $d/run/pcscd.comm ]] || fail "pcscd socket left behind"
if ss -Hltn "sport = :$port" | grep -q .; then
    fail "port $port listening after down"
fi
"$rig" down "$d" || fail "second 'rig down' failed"
"$rig" down "$tmp/never-up" || fail "'rig down' of a dir that never ran failed"

note "with UK_RIG_OWNER, the rig goes down by itself when its owner is gone"
sleep 600 &
owner=$!
d2="$tmp/owned"
UK_RIG_OWNER=$owner "$rig" up "$d2" >/dev/null 2>&1 || fail "rig up with an owner failed"
cp -r "$d2/pids" "$tmp/owned-pids"
kill "$owner"
wait "$owner" 2>/dev/null || true
for ((i = 0; i < 100; i++)); do
    left=0
    for f in "$tmp"/owned-pids/*; do
        recorded_running "$f" && left=1
    done
    ((left)) || break
    sleep 0.1
done
((left == 0)) || fail "the rig still runs 10 s after its owner was gone"
"$rig" down "$d2" || fail "'rig down' after the owner left failed"
if UK_RIG_OWNER=not-a-pid "$rig" up "$tmp/bad-owner" 2>/dev/null; then
    fail "rig up accepted UK_RIG_OWNER=not-a-pid"
fi

after=$(run_snapshot)
expect_eq "system /run/pcscd" "$after" "$before"
note "ok"
