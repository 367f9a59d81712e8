#!/usr/bin/env bash
# The token layer (uk_token + the PIV driver, in uk-token-watch) against the
# real pcscd + vpcd + virtual card of scripts/rig:
#   - a card present at start is INSERTED; certs cold, then warm with no APDU
#     (the card's own counters);
#   - `vpiv ctl remove` -> REMOVED, `insert` -> INSERTED (latency printed;
#     asserted only loosely, <= 3 s);
#   - the card dropped in the middle of a certificate read (`drop-after 3`)
#     -> CARD_REMOVED promptly, REMOVED, and the next insert works;
#   - another program holding the card exclusively (`uk-pcsc hold --exclusive`)
#     -> CARD_BUSY after the bounded retry (--busy-ms), success after release;
#   - 32 callers signing and 32 listing certificates at once: all answered;
#   - pcscd stopped and started again (`scripts/rig down` + `up` on the same
#     DIR: same socket path, same card state) -> the layer says NO_SERVICE,
#     does not poll while pcscd is away, then finds the token again by itself
#     and logs "pcscd is back";
#   - idle: the process sleeps (voluntary context switches while idle);
#   - quit: the loop closes cleanly (exit 0).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

watch=${UK_TOKEN_WATCH:-$repo/build/dev/tests/integration/uk-token-watch}
[[ -x $watch ]] || fail "uk-token-watch not built: $watch"
busy_ms=1500

rig_up "$tmp/rig"
note "reader: $UK_RIG_READER"

# ---- the program under test, fed through a FIFO ----------------------------
out="$tmp/watch.out"
err="$tmp/watch.err"
mkfifo "$tmp/watch.in"
"$watch" --busy-ms "$busy_ms" --debug <"$tmp/watch.in" >"$out" 2>"$err" &
wpid=$!
exec 7>"$tmp/watch.in"
mark=0

stop_watch() {
    exec 7>&- 2>/dev/null || true
    if [[ -n ${wpid:-} ]] && kill -0 "$wpid" 2>/dev/null; then
        kill "$wpid" 2>/dev/null || true
    fi
}
trap 'stop_watch; cleanup' EXIT

say() {
    echo "$*" >&7
}

# wait_for REGEX TIMEOUT_MS: the first line after the mark that matches; sets
# got (the line) and moves the mark past it.
wait_for() {
    local re=$1 deadline n
    deadline=$(($(now_ms) + $2))
    while :; do
        n=$(grep -nE -m1 "$re" < <(tail -n +"$((mark + 1))" "$out") | cut -d: -f1 || true)
        if [[ -n $n ]]; then
            mark=$((mark + n))
            got=$(sed -n "${mark}p" "$out")
            return 0
        fi
        kill -0 "$wpid" 2>/dev/null || fail "uk-token-watch exited; stderr:
$(tail -n 30 "$err")"
        (($(now_ms) < deadline)) || fail "no line matching '$re' within $2 ms; output:
$(tail -n 20 "$out")
stderr:
$(tail -n 30 "$err")"
        sleep 0.02
    done
}

apdus_in() {
    ctl counters | sed -n 's/.*apdus_in=\([0-9]*\).*/\1/p'
}

wait_for '^ready' 5000
wait_for '^event [0-9]+ INSERTED piv:' 10000
id=$(cut -d' ' -f4 <<<"$got" | cut -f1)
ok "card present at start: INSERTED $id"

say list
wait_for '^list ' 2000
expect_eq "list" "$got" "list OK 2"
wait_for '^token ' 1000
expect_in "list: the token" "$got" "$id	$UK_RIG_READER	piv	present	"

# ---- certificates: cold, then warm without a single APDU --------------------
say "certs $id"
wait_for '^certs ' 20000
read -r _ reason n ms <<<"$got"
expect_eq "cold certs" "$reason" OK
((n >= 2)) || fail "cold certs: $n certificates, want the two demo ones at least"
ok "cold certs: $n certificates in $ms ms"
before=$(apdus_in)
say "certs $id"
wait_for '^certs ' 2000
read -r _ reason n2 ms <<<"$got"
expect_eq "warm certs" "$reason" OK
expect_eq "warm certs count" "$n2" "$n"
expect_eq "APDUs for a warm certs" "$(($(apdus_in) - before))" 0
ok "warm certs: $n certificates in $ms ms, 0 APDUs"

# ---- removal and insertion ---------------------------------------------------
t0=$(now_ms)
ctl remove >/dev/null
wait_for "^event [0-9]+ REMOVED $id" 5000
t_rm=$(($(cut -d' ' -f2 <<<"$got") - t0))
((t_rm <= 3000)) || fail "REMOVED came $t_rm ms after vpiv ctl remove"
ok "REMOVED $t_rm ms after 'vpiv ctl remove' (pcscd polls presence every ~400 ms)"
say list
wait_for '^list ' 2000
wait_for '^token ' 1000
expect_in "list after removal" "$got" "	$UK_RIG_READER		absent	"

t0=$(now_ms)
ctl insert >/dev/null
wait_for "^event [0-9]+ INSERTED $id" 5000
t_in=$(($(cut -d' ' -f2 <<<"$got") - t0))
((t_in <= 3000)) || fail "INSERTED came $t_in ms after vpiv ctl insert"
ok "INSERTED $t_in ms after 'vpiv ctl insert' (the card reconnects to vpcd after >= 1 s out)"

# ---- dropped in the middle of an operation ----------------------------------
# The cache went with the removal: this read goes to the card and loses it
# after 3 answered APDUs.
ctl drop-after 3 >/dev/null
m0=$mark
say "certs $id"
wait_for '^certs ' 10000
m1=$mark
read -r _ reason _ ms <<<"$got"
expect_eq "certs when the card drops mid-read" "$reason" CARD_REMOVED
ok "card dropped mid-read: CARD_REMOVED after $ms ms"
mark=$m0 # the event may come before or after the answer
wait_for "^event [0-9]+ REMOVED $id" 5000
((mark > m1)) || mark=$m1
ok "and REMOVED"
ctl insert >/dev/null
wait_for "^event [0-9]+ INSERTED $id" 5000
say "certs $id"
wait_for '^certs ' 20000
read -r _ reason n3 _ <<<"$got"
expect_eq "certs after re-insertion" "$reason" OK
expect_eq "certs after re-insertion, count" "$n3" "$n"
ok "the next insert works: $n3 certificates"

# ---- another program holds the card exclusively -----------------------------
"$UK_PCSC" hold "$UK_RIG_READER" --exclusive 30 >"$tmp/hold.out" 2>&1 &
hpid=$!
for ((i = 0; i < 100; i++)); do
    grep -q '^held' "$tmp/hold.out" && break
    kill -0 "$hpid" 2>/dev/null || fail "uk-pcsc hold --exclusive: $(cat "$tmp/hold.out")"
    sleep 0.05
done
grep -q '^held' "$tmp/hold.out" || fail "uk-pcsc hold --exclusive did not get the card"
say "sign $id 9c $DEFAULT_PIN"
wait_for '^sign ' 10000
read -r _ reason _ _ ms <<<"$got"
expect_eq "sign while held exclusively" "$reason" CARD_BUSY
((ms >= busy_ms - 100 && ms < busy_ms + 3000)) || fail "CARD_BUSY after $ms ms (busy ${busy_ms} ms)"
grep -q "reader '$UK_RIG_READER' is held exclusively by another program" "$err" ||
    fail "the log does not name the reader held exclusively"
ok "held exclusively by another program: CARD_BUSY after $ms ms, the reader named in the log"
kill "$hpid"
wait "$hpid" || true
say "sign $id 9c $DEFAULT_PIN"
wait_for '^sign ' 10000
read -r _ reason _ siglen _ <<<"$got"
expect_eq "sign after the other program let go" "$reason" OK
((siglen > 0)) || fail "empty signature"
ok "after release: signed ($siglen bytes)"
# ---- 32 callers at once: every one answered, one transaction each ----------
m0=$mark
for ((i = 0; i < 32; i++)); do
    say "sign $id 9c $DEFAULT_PIN"
    say "certs $id"
done
deadline=$(($(now_ms) + 60000))
while :; do
    answers=$(tail -n +"$((m0 + 1))" "$out" | grep -cE '^(sign|certs) ' || true)
    ((answers >= 64)) && break
    (($(now_ms) < deadline)) || fail "32 concurrent callers: $answers of 64 answers in 60 s"
    sleep 0.05
done
bad=$(tail -n +"$((m0 + 1))" "$out" | grep -E '^(sign|certs) ' | grep -vE '^(sign|certs) OK ' || true)
[[ -z $bad ]] || fail "32 concurrent callers: not every answer is OK:
$bad"
mark=$(wc -l <"$out")
ok "32 callers signing and 32 listing at once: 64 answers, all OK"
grep -q "$DEFAULT_PIN" "$err" && fail "the PIN appears in the log"
ok "the PIN is not in the log"

# ---- idle: no wake-ups --------------------------------------------------------
ctxsw() {
    local f total=0 v
    for f in /proc/"$wpid"/task/*/status; do
        v=$(sed -n 's/^voluntary_ctxt_switches:\s*//p' "$f" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
sleep 1.5 # let pcscd power the card down (its own event) before measuring
s0=$(ctxsw)
sleep 3
s1=$(ctxsw)
wake=$((s1 - s0))
((wake <= 6)) || fail "$wake wake-ups in 3 s while idle"
ok "idle: $wake wake-ups in 3 s"

# ---- pcscd stopped and started again ------------------------------------------
rig_down "$tmp/rig"
wait_for "^event [0-9]+ REMOVED $id" 10000
ok "pcscd stopped: REMOVED"
say list
wait_for '^list ' 2000
expect_eq "list without pcscd" "$got" "list NO_SERVICE 0"
sleep 3.5 # past the quick retries: now it waits for pcscd's socket to appear
s0=$(ctxsw)
sleep 3
s1=$(ctxsw)
wake=$((s1 - s0))
((wake <= 6)) || fail "$wake wake-ups in 3 s while pcscd is away"
ok "pcscd away: $wake wake-ups in 3 s (no polling)"
t0=$(now_ms)
rig_up "$tmp/rig"
wait_for "^event [0-9]+ INSERTED $id" 15000
t_back=$(($(cut -d' ' -f2 <<<"$got") - t0))
grep -q "pcscd is back" "$err" || fail "no 'pcscd is back' in the log"
ok "pcscd started again: INSERTED $t_back ms after 'rig up' began, 'pcscd is back' logged"
say "certs $id"
wait_for '^certs ' 20000
read -r _ reason n4 _ <<<"$got"
expect_eq "certs after the pcscd restart" "$reason" OK
expect_eq "certs after the pcscd restart, count" "$n4" "$n"
ok "certs after the pcscd restart: $n4 certificates"

# ---- clean stop ------------------------------------------------------------------
say quit
exec 7>&-
rc=0
wait "$wpid" || rc=$?
wpid=""
((rc == 0)) || fail "uk-token-watch exited $rc after quit: $(tail -n 20 "$err")"
ok "quit: every thread joined, uv_loop_close() == 0"
