#!/usr/bin/env bash
# Fault injection into renewal.commit (uk_renewal through uk-renewal-drive) against the rig: the
# whole commit is run once to count its APDUs (N, the new process's identification and recovery
# check included), then for k = 1, 1+STEP, 1+2*STEP, ... <= N (UK_FAULT_STEP, default 20; 1 for
# every k) on a fresh card: prepare, card removed exactly at APDU k of the commit (`drop-after k`),
# card inserted again, a new run recovers. After each k: the renewal is done, or prepared again and
# then commits; and 9a's key signs with 9a's certificate (openssl verifies). Prints N and how many
# k passed; all must pass.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

drive=${UK_RENEWAL_DRIVE:-$repo/build/dev/tests/integration/uk-renewal-drive}
[[ -x $drive ]] || fail "uk-renewal-drive not built: $drive"
step=${UK_FAULT_STEP:-20}
pstep=$(((step + 1) / 2))
make_test_ca "$tmp"

R() { "$drive" "$st" "$@" 2>>"$tmp/drive.log"; }
counter() { ctl counters | tr ' ' '\n' | sed -n "s/^$1=//p"; }

signs_9a() {
    Y -a read-certificate -s 9a -K DER -o "$tmp/cur.der" 2>/dev/null || fail "$1: no certificate in 9a"
    openssl x509 -inform DER -in "$tmp/cur.der" -noout -pubkey >"$tmp/cur.pub"
    echo "fault data $RANDOM" >"$tmp/data"
    run "$1: sign" Y -a verify-pin --sign -s 9a -A RSA2048 -H SHA256 -P "$DEFAULT_PIN" \
        -i "$tmp/data" -o "$tmp/sig"
    verify_sig "$tmp/cur.pub" "$tmp/sig" "$tmp/data"
}

# fresh: a new card and a new journal; prepares 9a, issues; sets $id.
n_fresh=0
fresh() {
    n_fresh=$((n_fresh + 1))
    if ((n_fresh > 1)); then rig_down "$tmp/rig"; fi
    rig_up "$tmp/rig" --fresh
    st="$tmp/state$n_fresh"
    mkdir -m 0700 "$st"
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
note "N = $n APDUs in a commit run (step $step)"

passed=0 tried=0
for ((k = 1; k <= n; k += step)); do
    tried=$((tried + 1))
    fresh
    run "drop-after $k" ctl drop-after "$k"
    out=$(R commit "$id" "$tmp/f.der" || true)
    # A k beyond this run's APDUs drops nothing: then the commit simply finished.
    "$UK_PCSC" wait "$UK_RIG_READER" absent 3000 >/dev/null 2>&1 || true
    run "insert" ctl insert
    wait_card present
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
    Y -a read-certificate -s 9a -K DER -o "$tmp/now.der" 2>/dev/null
    same_file "9a holds the new certificate (fault at $k)" "$tmp/now.der" "$tmp/f.der"
    signs_9a "fault at $k"
    passed=$((passed + 1))
done
note "fault injection: N = $n, $passed of $tried k passed"
((passed == tried)) || fail "fault injection: only $passed of $tried"
ok "card removed at APDU k of a commit (k = 1..$n step $step): recovered, 9a signs every time"

# The same during prepare: the working pair is never touched, and a renewal can start again.
rig_down "$tmp/rig"
rig_up "$tmp/rig" --fresh
st="$tmp/state-p0"
mkdir -m 0700 "$st"
run "counters-reset" ctl counters-reset
run "prepare (count)" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/p.csr"
np=$(counter apdus_in)
note "N = $np APDUs in a prepare run (step $pstep)"
passed=0 tried=0
for ((k = 1; k <= np; k += pstep)); do
    tried=$((tried + 1))
    rig_down "$tmp/rig"
    rig_up "$tmp/rig" --fresh
    st="$tmp/state-p$k"
    mkdir -m 0700 "$st"
    Y -a read-certificate -s 9a -K DER -o "$tmp/before.der" 2>/dev/null
    run "drop-after $k" ctl drop-after "$k"
    out=$(R prepare - 9a extend "$DEFAULT_PIN" "$tmp/p.csr" || true)
    "$UK_PCSC" wait "$UK_RIG_READER" absent 3000 >/dev/null 2>&1 || true
    run "insert" ctl insert
    wait_card present
    Y -a read-certificate -s 9a -K DER -o "$tmp/now.der" 2>/dev/null
    same_file "9a untouched by an interrupted prepare (fault at $k)" "$tmp/now.der" "$tmp/before.der"
    signs_9a "prepare fault at $k"
    run "prepare again ($k)" R prepare - 9a extend "$DEFAULT_PIN" "$tmp/p.csr"
    [[ $out == "prepare OK "* || $out == "prepare RENEWAL_IN_PROGRESS -1" ]] ||
        fail "prepare after a fault at $k: $out"
    passed=$((passed + 1))
done
note "fault injection (prepare): N = $np, $passed of $tried k passed"
((passed == tried)) || fail "fault injection (prepare): only $passed of $tried"
ok "card removed at APDU k of a prepare (k = 1..$np step $pstep): 9a untouched and signs, prepare works again"
