#!/usr/bin/env bash
# Two rigs up at once, different cards: each client sees only its own
# readers and its own card; removing one rig's card leaves the other alone.
# shellcheck disable=SC2016 # bash -c scripts expand in the rig env
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

a="$tmp/rig-a"
b="$tmp/rig-b"
# Start both together to exercise parallel start-up.
rig_up "$a" &
pa=$!
rig_up "$b" --cards 2 &
pb=$!
rigs+=("$a" "$b") # the subshells' arrays do not reach us
wait "$pa" || fail "rig up $a failed"
wait "$pb" || fail "rig up $b failed"

list_a=$(in_rig "$a" "$pcsc" list)
list_b=$(in_rig "$b" "$pcsc" list)
echo "A:"$'\n'"$list_a"
echo "B:"$'\n'"$list_b"
reader_a=$(in_rig "$a" printenv UK_RIG_READER)
reader_b=$(in_rig "$b" printenv UK_RIG_READER)
reader_b1=$(in_rig "$b" printenv UK_RIG_READER1)
[[ $reader_a != "$reader_b" ]] || fail "both rigs use the reader name '$reader_a'"
base_a=${reader_a% 00 00}
base_b=${reader_b% 00 00}
# Every reader a client sees belongs to its own rig.
while IFS=$'\t' read -r name _; do
    [[ $name == "$base_a "* ]] || fail "rig A's client sees a foreign reader '$name'"
done <<<"$list_a"
while IFS=$'\t' read -r name _; do
    [[ $name == "$base_b "* ]] || fail "rig B's client sees a foreign reader '$name'"
done <<<"$list_b"
grep -qF "$reader_a"$'\tpresent' <<<"$list_a" || fail "A's card not present"
grep -qF "$reader_b"$'\tpresent' <<<"$list_b" || fail "B's card 0 not present"
grep -qF "$reader_b1"$'\tpresent' <<<"$list_b" || fail "B's card 1 not present"
in_rig "$a" bash -c '"$UK_PCSC" list' | grep -qF "$base_b" && fail "A sees B"

note "different cards: different serials"
sa=$(apdu "$a" UK_RIG_READER "$APDU_SERIAL")
sb=$(apdu "$b" UK_RIG_READER "$APDU_SERIAL")
sb1=$(apdu "$b" UK_RIG_READER1 "$APDU_SERIAL")
for s in "$sa" "$sb" "$sb1"; do expect_sw "GET SERIAL" "$s" 9000; done
echo "serials: A=$sa B0=$sb B1=$sb1"
[[ $sa != "$sb" && $sa != "$sb1" && $sb != "$sb1" ]] || fail "serials are not distinct"

note "removing A's card does not touch B"
in_rig "$a" bash -c '"$UK_VPIV" ctl "$UK_RIG_CARD_CTL" remove' >/dev/null
in_rig "$a" bash -c '"$UK_PCSC" wait "$UK_RIG_READER" absent 5000' || fail "A's card still present"
in_rig "$b" bash -c '"$UK_PCSC" wait "$UK_RIG_READER" present 0' || fail "B's card vanished with A's"
expect_eq "B serial after A's removal" "$(apdu "$b" UK_RIG_READER "$APDU_SERIAL")" "$sb"
in_rig "$a" bash -c '"$UK_VPIV" ctl "$UK_RIG_CARD_CTL" insert' >/dev/null

note "A down, B still serves"
"$rig" down "$a"
expect_eq "B serial after A's down" "$(apdu "$b" UK_RIG_READER1 "$APDU_SERIAL")" "$sb1"
note "ok"
