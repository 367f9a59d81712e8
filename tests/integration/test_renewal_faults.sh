#!/usr/bin/env bash
# Fault injection into renewal.commit (uk_renewal through uk-renewal-drive) against the rig: the
# whole commit is run once to count its APDUs (N, the new process's identification and recovery
# check included), then for k = 1, 1+STEP, 1+2*STEP, ... <= N (UK_FAULT_STEP, default 20; 1 for
# every k) on a fresh card: prepare, card removed exactly at APDU k of the commit (`drop-after k`),
# card inserted again, a new run recovers. The commit's APDUs include the retirement of the old key
# (record entry, DELETE KEY, certificate object, Key History), so N counts them and the every-k
# run removes the card in each. After each k: the renewal is done, or prepared again and then
# commits; 9a's key signs with 9a's certificate (openssl verifies); and the old key is retired (no
# retired slot holds a key or the old certificate, the card record keeps no retired slot). Prints
# N and how many k passed; all must pass.
# The same for a prepare (card removed at APDU k, k step (STEP+1)/2), and the process killed
# (SIGKILL) after each step of a prepare (card record entry, key generated, CSR signed, journal
# record written, staged key marked on the card): 9a is untouched and signs, and recovery removes
# what the prepare left (a staged key and record entry without a journal record), so the next
# prepare gets the same staging slot again (on this card a slot holding a key is not free).
# `UK_FAULT_STEP=1` (ctest integration_renewal_faults_full, label slow) runs every k.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

drive=${UK_RENEWAL_DRIVE:-$repo/build/dev/tests/integration/uk-renewal-drive}
[[ -x $drive ]] || fail "uk-renewal-drive not built: $drive"
step=${UK_FAULT_STEP:-20}
# UK_FAULT_FROM / UK_FAULT_PFROM: the first k of the commit / prepare run (default 1), to look again
# at a failing range.
from=${UK_FAULT_FROM:-1}
# Any command that fails outside a check says which one and at which k (set -e alone exits
# silently, which once hid a failure of the full run).
set -E
trap 'echo "not ok - line $LINENO: \"$BASH_COMMAND\" returned $? (k = ${k:-none})" >&2' ERR
pstep=$(((step + 1) / 2))
make_test_ca "$tmp"

R() { "$drive" "$st" "$@" 2>>"$tmp/drive.log"; }
counter() { ctl counters | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# read_9a FILE WHAT: 9a's certificate into FILE, or fail saying why.
read_9a() {
    Y -a read-certificate -s 9a -K DER -o "$1" 2>"$tmp/y.err" ||
        fail "no certificate readable in 9a $2: $(cat "$tmp/y.err")"
}

# settle K: after an operation run with "drop after K", wait for the card to leave; when it did not
# (the operation sent no APDU K+1, as at K = N), take the armed drop back so that it does not hit
# the checks that follow. Then the card is inserted again.
settle() {
    if ! "$UK_PCSC" wait "$UK_RIG_READER" absent 3000 >/dev/null 2>&1; then
        run "disarm ($1)" ctl drop-after 1000000000
    fi
    run "insert" ctl insert
    wait_card present
}

signs_9a() {
    Y -a read-certificate -s 9a -K DER -o "$tmp/cur.der" 2>/dev/null || fail "$1: no certificate in 9a"
    openssl x509 -inform DER -in "$tmp/cur.der" -noout -pubkey >"$tmp/cur.pub"
    echo "fault data $RANDOM" >"$tmp/data"
    run "$1: sign" Y -a verify-pin --sign -s 9a -A RSA2048 -H SHA256 -P "$DEFAULT_PIN" \
        -i "$tmp/data" -o "$tmp/sig"
    verify_sig "$tmp/cur.pub" "$tmp/sig" "$tmp/data"
}

# retired WHAT: the old pair (old.der, 9a's before the renewal) is retired: no retired slot (82..95)
# holds a key (GET METADATA, one connection; a fresh card has none) or the old certificate, and the
# card record keeps no retired slot (no C0 entry "8x"/"9x").
retired() {
    local r n=0 rec
    local cmds=()
    for ((r = 0x82; r <= 0x95; r++)); do cmds+=("$(printf '00F700%02X00' "$r")"); done
    while read -r r; do
        n=$((n + 1))
        [[ $r == *6A82 ]] || fail "$1: retired slot $((n + 0x81)) answers GET METADATA with $r"
    done < <("$UK_PCSC" apdu --auto-get-response "$UK_RIG_READER" "$APDU_SELECT" "${cmds[@]}" |
        tail -n 20)
    ((n == 20)) || fail "$1: GET METADATA of the retired slots: $n answers"
    for r in 82 83; do
        if Y -a read-certificate -s "$r" -K DER -o "$tmp/ret.der" 2>/dev/null &&
            cmp -s "$tmp/ret.der" "$tmp/old.der"; then
            fail "$1: the old certificate is still in $r"
        fi
    done
    rec=$(Y -a read-object --id 0x5FFF55 -f hex 2>/dev/null || true)
    [[ ${rec,,} != *c00238* && ${rec,,} != *c00239* ]] || fail "$1: the card record keeps a retired slot: $rec"
}

# fresh: a new card and a new journal; prepares 9a, issues; sets $id.
n_fresh=0
fresh() {
    n_fresh=$((n_fresh + 1))
    if ((n_fresh > 1)); then rig_down "$tmp/rig"; fi
    rig_up "$tmp/rig" --fresh
    st="$tmp/state$n_fresh"
    mkdir -m 0700 "$st"
    Y -a read-certificate -s 9a -K DER -o "$tmp/old.der" 2>/dev/null || fail "no certificate in 9a"
    run "prepare" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/f.csr"
    [[ $out == "prepare OK "* ]] || fail "prepare: $out"
    read -r _ _ id _ <<<"$out"
    openssl x509 -req -in "$tmp/f.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -days 20 \
        -outform DER -out "$tmp/f.der" 2>/dev/null || fail "issue"
}

fresh
run "counters-reset" ctl counters-reset
run "commit (count)" R commit "$id" "$tmp/f.der"
expect_eq "commit" "${out% 9a *}" "commit OK done"
n=$(counter apdus_in)
retired "commit (count)"
note "N = $n APDUs in a commit run (step $step)"

passed=0 tried=0
for ((k = from; k <= n; k += step)); do
    tried=$((tried + 1))
    fresh
    run "drop-after $k" ctl drop-after "$k"
    out=$(R commit "$id" "$tmp/f.der" || true)
    # At k = N nothing drops: the commit simply finished.
    settle "$k"
    run "recover ($k)" R recover
    run "status ($k)" R status "$id"
    case $out in
    "status OK done 9a "*) ;;
    "status OK prepared 9a "*)
        run "commit again ($k)" R commit "$id" "$tmp/f.der"
        expect_in "commit after the fault at $k" "$out" "commit OK done 9a"
        ;;
    *) fail "state after a fault at APDU $k: $out" ;;
    esac
    read_9a "$tmp/now.der" "after the fault at $k"
    same_file "9a holds the new certificate (fault at $k)" "$tmp/now.der" "$tmp/f.der"
    signs_9a "fault at $k"
    retired "fault at $k"
    passed=$((passed + 1))
done
note "fault injection: N = $n, $passed of $tried k passed"
((passed == tried)) || fail "fault injection: only $passed of $tried"
ok "card removed at APDU k of a commit (k = 1..$n step $step): recovered, 9a signs, the old key retired every time"

# The same during prepare: the working pair is never touched, and a renewal can start again.
rig_down "$tmp/rig"
rig_up "$tmp/rig" --fresh
st="$tmp/state-p0"
mkdir -m 0700 "$st"
run "counters-reset" ctl counters-reset
run "prepare (count)" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/p.csr"
read -r _ _ _ first_staged <<<"$out"
np=$(counter apdus_in)
note "N = $np APDUs in a prepare run (step $pstep); staging slot $first_staged"

# prepare_again WHAT: after an interrupted prepare and a recovery, a prepare gets $first_staged
# (what the interrupted one left was removed, or its journal record is aborted first).
prepare_again() {
    run "prepare again ($1)" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/p.csr"
    if [[ $out == "prepare RENEWAL_IN_PROGRESS -1" ]]; then
        # The journal record was written before the fault: the renewal is there, abort it.
        abort_prepared "$1" 9a
        run "prepare after abort ($1)" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/p.csr"
    fi
    [[ $out == "prepare OK "* ]] || fail "prepare after $1: $out"
    local staged
    read -r _ _ _ staged <<<"$out"
    expect_eq "staging slot after $1 (cleaned by recovery)" "$staged" "$first_staged"
}

passed=0 tried=0
for ((k = ${UK_FAULT_PFROM:-1}; k <= np; k += pstep)); do
    tried=$((tried + 1))
    rig_down "$tmp/rig"
    rig_up "$tmp/rig" --fresh
    st="$tmp/state-p$k"
    mkdir -m 0700 "$st"
    wait_card present
    read_9a "$tmp/before.der" "before the prepare fault at $k"
    run "drop-after $k" ctl drop-after "$k"
    out=$(R prepare - 9a extend "$DEFAULT_PIN" "$tmp/p.csr" || true)
    settle "$k"
    read_9a "$tmp/now.der" "after the prepare fault at $k"
    same_file "9a untouched by an interrupted prepare (fault at $k)" "$tmp/now.der" "$tmp/before.der"
    signs_9a "prepare fault at $k"
    prepare_again "a fault at APDU $k"
    passed=$((passed + 1))
done
note "fault injection (prepare): N = $np, $passed of $tried k passed"
((passed == tried)) || fail "fault injection (prepare): only $passed of $tried"
ok "card removed at APDU k of a prepare (k = 1..$np step $pstep): 9a untouched and signs, recovery cleans, prepare works again"

# SIGKILL after each step of a prepare (the card record entry, the key, the CSR, the journal record,
# the card's mark), then recovery (the next run's, as on the next start of ukeyd).
rig_down "$tmp/rig"
rig_up "$tmp/rig" --fresh
Y -a read-certificate -s 9a -K DER -o "$tmp/before.der" 2>/dev/null
for step in staging_recorded key_generated csr_signed prepared staged_marked; do
    st="$tmp/state-k-$step"
    mkdir -m 0700 "$st"
    out=$(UK_RENEWAL_KILL_AT=$step "$drive" "$st" prepare - 9a extend "$DEFAULT_PIN" "$tmp/p.csr" \
        2>>"$tmp/drive.log" || true)
    expect_eq "prepare killed" "$out" "killed at $step"
    run "recover ($step)" R recover
    expect_eq "recovery after a prepare killed at $step" "$out" "recover OK"
    # Before the journal record, recovery itself removed the card record's entry (C0 "82").
    entry="c002$(printf '%s' "$first_staged" | od -An -tx1 | tr -d ' \n')"
    rec=$(Y -a read-object --id 0x5FFF55 -f hex 2>/dev/null || true)
    case $step in
    staging_recorded | key_generated | csr_signed)
        [[ $rec != *"$entry"* ]] || fail "recovery left the staging entry of $step: $rec" ;;
    *) [[ $rec == *"$entry"* ]] || fail "recovery removed the entry of a recorded renewal ($step): $rec" ;;
    esac
    Y -a read-certificate -s 9a -K DER -o "$tmp/now.der" 2>/dev/null
    same_file "9a untouched by a prepare killed at $step" "$tmp/now.der" "$tmp/before.der"
    signs_9a "prepare killed at $step"
    prepare_again "SIGKILL at $step"
    run "abort ($step)" R list
    rid=$(awk '$1 == "rec" && $3 == "prepared" { print $2 }' <<<"$out")
    run "abort ($step)" R abort "$rid"
    note "prepare killed after $step: cleaned, prepared again in $first_staged"
done
ok "SIGKILL after each step of a prepare: 9a untouched and signs, recovery cleans, prepare works again"
