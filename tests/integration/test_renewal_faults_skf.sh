#!/usr/bin/env bash
# Fault injection into renewals on an SKF token (the soft SKF module of tests/skf, driver skf)
# through uk-renewal-drive, as test_renewal_faults_p11.sh does for PKCS#11: the process is killed
# (SIGKILL, the step hook of uk_renewal_testing.h) after each step of a commit and of a prepare,
# then a new run recovers (as ukeyd does at start) without the PIN. The token holds an RSA-2048
# pair and certificate in container "rsa" (role rsa/sign; the drive tool signs RSA PKCS#1). After
# each kill:
#   - the role has a certificate whose key signs through the token layer (openssl verifies): a
#     working pair at every point;
#   - the journal is done, or prepared (commit again), or activated with the old container's
#     deletion waiting for the PIN (commit again finishes it) - nothing else;
#   - at the end only the new container is left (the soft module's state file says so);
#   - after a killed prepare, the role is untouched and a prepare works again, deleting what the
#     killed one left.
# The card-pull and failing-call faults at every SKF call are in tests/daemon/renewal_skf.test.js.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

drive=${UK_RENEWAL_DRIVE:-$repo/build/dev/tests/integration/uk-renewal-drive}
[[ -x $drive ]] || fail "uk-renewal-drive not built: $drive"
[[ -n ${UKSKF_MODULE:-} && -n ${UKSKF_TOOL:-} ]] || skip "UKSKF_MODULE and UKSKF_TOOL are not set"
set -E
trap 'echo "not ok - line $LINENO: \"$BASH_COMMAND\" returned $? (step ${step:-none})" >&2' ERR

PIN=123456
export UK_SKF_MODULE=$UKSKF_MODULE UK_RENEWAL_PIN=$PIN
# No pcscd: the module is the only source of tokens.
export PCSCLITE_CSOCK_NAME=$tmp/no-pcscd/pcscd.comm
make_test_ca "$tmp"

R() { "$drive" "$st" "$@" 2>>"$tmp/drive.log"; }

# fresh_token: a new soft SKF device (own UKSKF_DIR) with an RSA-2048 pair and certificate in
# container "rsa" (old.der), and a new journal in $st.
n_fresh=0
fresh_token() {
    n_fresh=$((n_fresh + 1))
    export UKSKF_DIR="$tmp/skf$n_fresh"
    mkdir -p "$UKSKF_DIR"
    run "old pair" openssl req -x509 -newkey rsa:2048 -nodes -keyout "$UKSKF_DIR/k.pem" \
        -out "$UKSKF_DIR/c.pem" -subj "/CN=skf faults" -days 30
    run "der" openssl x509 -in "$UKSKF_DIR/c.pem" -outform DER -out "$tmp/old.der"
    run "provision" "$UKSKF_TOOL" provision --dir "$UKSKF_DIR" --device ukey0 --serial SKF-F \
        --retries 9 --container rsa --key "$UKSKF_DIR/k.pem" --cert "$UKSKF_DIR/c.pem"
    st="$tmp/state$n_fresh"
    mkdir -m 0700 "$st"
}

# containers: the device's container names, sorted (from the soft module's own state file).
containers() {
    local hex
    awk '$1 == "container" { print $2 }' "$UKSKF_DIR/ukey0.dev" | while read -r hex; do
        # shellcheck disable=SC2001 # every byte pair becomes a \xNN escape
        printf '%b\n' "$(sed 's/../\\x&/g' <<<"$hex")"
    done | sort | tr '\n' ' '
}

# role_works WHAT: the role's certificate (as the token layer lists it) and a signature by the
# role's key (through the token layer) that openssl verifies with it, in $tmp/role.der.
role_works() {
    rm -f "$tmp/role.der"
    run "$1: certs" R certs rsa/sign "$tmp/role.der"
    [[ -s $tmp/role.der ]] || fail "$1: the role rsa/sign has no certificate: $out"
    openssl x509 -inform DER -in "$tmp/role.der" -noout -pubkey >"$tmp/role.pub"
    echo "fault data $RANDOM" >"$tmp/data"
    openssl dgst -sha256 -binary "$tmp/data" >"$tmp/digest"
    run "$1: sign" R sign rsa/sign "$PIN" "$tmp/digest" "$tmp/sig"
    expect_eq "$1: sign" "$out" "sign OK"
    verify_sig "$tmp/role.pub" "$tmp/sig" "$tmp/data"
}

# finished WHAT STAGED: the renewal is done, the role has the new pair, only its container is left.
finished() {
    role_works "$1"
    same_file "$1: the role's certificate is the new one" "$tmp/role.der" "$tmp/f.der"
    expect_eq "$1: containers" "$(containers)" "${2%/sign} "
    run "$1: list" R list
    expect_eq "$1: unfinished renewals" "$(awk '$1 == "rec" && $3 != "done" && $3 != "aborted"' <<<"$out")" ""
}

# prepare_fresh: a fresh token, prepared; sets $id, $staged and the issued certificate f.der.
prepare_fresh() {
    fresh_token
    run "prepare" R prepare - rsa/sign extend "$PIN" "$tmp/f.csr"
    [[ $out == "prepare OK "* ]] || fail "prepare: $out"
    read -r _ _ id staged <<<"$out"
    openssl x509 -req -in "$tmp/f.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -days 20 \
        -outform DER -out "$tmp/f.der" 2>/dev/null || fail "issue"
}

commit_steps="cert_accepted committing cert_written written role_mapped activated old_key_deleted
old_cert_deleted done"
prepare_fresh
out=$(UK_RENEWAL_KILL_AT=none R commit "$id" "$tmp/f.der")
expect_eq "commit (no kill)" "$out" "commit OK done rsa/sign $staged"
finished "commit without a fault" "$staged"
ok "commit on the soft SKF module: the old container retired with the PIN"

passed=0 tried=0
for step in ${UK_FAULT_STEPS:-$commit_steps}; do
    tried=$((tried + 1))
    prepare_fresh
    out=$(UK_RENEWAL_KILL_AT=$step R commit "$id" "$tmp/f.der" || true)
    expect_eq "commit killed" "$out" "killed at $step"
    run "recover ($step)" R recover
    expect_eq "recovery after a commit killed at $step" "$out" "recover OK"
    role_works "commit killed at $step"
    run "status ($step)" R status "$id"
    case $out in
    "status OK done rsa/sign "*) ;;
    "status OK prepared rsa/sign "* | "status OK activated rsa/sign "*)
        if [[ $out == *activated* ]]; then
            same_file "activated after $step: the role is the new pair" "$tmp/role.der" "$tmp/f.der"
            expect_in "activated after $step: the old container is still there" "$(containers)" "rsa "
        fi
        run "commit again ($step)" R commit "$id" "$tmp/f.der"
        expect_eq "commit after a kill at $step" "$out" "commit OK done rsa/sign $staged"
        ;;
    *) fail "state after a kill at $step: $out" ;;
    esac
    finished "commit killed at $step" "$staged"
    passed=$((passed + 1))
    note "commit killed after $step: recovered, done, old container retired"
done
((passed == tried)) || fail "kill during commit: only $passed of $tried"
ok "SIGKILL after each step of a commit: the role always signs, the journal ends done, the old container retired"

for step in staging_recorded key_generated csr_signed prepared staged_marked; do
    fresh_token
    out=$(UK_RENEWAL_KILL_AT=$step R prepare - rsa/sign extend "$PIN" "$tmp/p.csr" || true)
    expect_eq "prepare killed" "$out" "killed at $step"
    run "recover ($step)" R recover
    expect_eq "recovery after a prepare killed at $step" "$out" "recover OK"
    role_works "prepare killed at $step"
    same_file "rsa/sign untouched by a prepare killed at $step" "$tmp/role.der" "$tmp/old.der"
    run "prepare again ($step)" R prepare - rsa/sign extend "$PIN" "$tmp/p.csr"
    if [[ $out == "prepare RENEWAL_IN_PROGRESS -1" ]]; then
        abort_prepared "$step" rsa/sign
        run "prepare after abort ($step)" R prepare - rsa/sign extend "$PIN" "$tmp/p.csr"
    fi
    [[ $out == "prepare OK "* ]] || fail "prepare after a kill at $step: $out"
    read -r _ _ rid staged <<<"$out"
    expect_eq "containers after a prepare killed at $step and a new one" "$(containers)" \
        "$(printf '%s\n' rsa "${staged%/sign}" | sort | tr '\n' ' ')"
    run "abort ($step)" R abort "$rid"
    expect_eq "containers after the abort ($step)" "$(containers)" "rsa "
    note "prepare killed after $step: the role untouched, the leftover deleted by the next prepare"
done
ok "SIGKILL after each step of a prepare: the role untouched and signs, the next prepare cleans, abort deletes"
