#!/usr/bin/env bash
# Fault injection into renewals on a PKCS#11 token (SoftHSM2, driver p11) through
# uk-renewal-drive: the process is killed (SIGKILL, the step hook of uk_renewal_testing.h, as in
# test_renewal_faults.sh) after each step of a commit and of a prepare, then a new run recovers
# (as ukeyd does at start) without the PIN. After each:
#   - the role (CKA_ID 01) has a certificate whose key signs through the token layer (openssl
#     verifies the signature with that certificate): a working pair at every point;
#   - the journal is consistent: the renewal is done, or prepared (commit again), or activated
#     with its retirement waiting for the PIN (step old_key_pending; commit again with the PIN
#     finishes it) - never anything else, and nothing is reported gone that is still there;
#   - at the end the old pair is retired (no object with CKA_ID 01, private keys included, seen
#     with a login), and only the new pair and ukeyd's record object remain;
#   - after a killed prepare, a prepare works again and deletes what the killed one left (a staged
#     key without a journal record: recovery has no PIN, the next prepare has it).
# UK_FAULT_STEPS="a b ...": only these steps of the commit (default: every step; the whole run
# takes some 20 s, so ctest integration_renewal_faults_p11 runs every step).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

drive=${UK_RENEWAL_DRIVE:-$repo/build/dev/tests/integration/uk-renewal-drive}
[[ -x $drive ]] || fail "uk-renewal-drive not built: $drive"
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so
[[ -f $SOFTHSM ]] || skip "SoftHSM2 is not installed ($SOFTHSM)"
command -v softhsm2-util >/dev/null || skip "softhsm2-util not found"
set -E
trap 'echo "not ok - line $LINENO: \"$BASH_COMMAND\" returned $? (step ${step:-none})" >&2' ERR

LABEL=ukeyd-faults
PIN=123456
export UK_P11_MODULE=$SOFTHSM UK_RENEWAL_PIN=$PIN
# No pcscd: the module is the only source of tokens.
export PCSCLITE_CSOCK_NAME=$tmp/no-pcscd/pcscd.comm
make_test_ca "$tmp"

R() { "$drive" "$st" "$@" 2>>"$tmp/drive.log"; }
P() { pkcs11-tool --module "$SOFTHSM" --token-label "$LABEL" "$@"; }

# fresh_token: a new SoftHSM2 token (own SOFTHSM2_CONF) with an RSA-2048 key and certificate
# under CKA_ID 01 (old.der), and a new journal in $st.
n_fresh=0
fresh_token() {
    n_fresh=$((n_fresh + 1))
    local d="$tmp/hsm$n_fresh"
    mkdir -p "$d/tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$d/tokens" >"$d/conf"
    export SOFTHSM2_CONF="$d/conf"
    run "init token" softhsm2-util --init-token --free --label "$LABEL" --so-pin 12345678 --pin "$PIN"
    run "old pair" openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/k.pem" -out "$d/c.pem" \
        -subj "/CN=p11 faults" -days 30
    run "pkcs8" openssl pkcs8 -topk8 -nocrypt -in "$d/k.pem" -out "$d/k.p8"
    run "der" openssl x509 -in "$d/c.pem" -outform DER -out "$tmp/old.der"
    run "import key" softhsm2-util --import "$d/k.p8" --token "$LABEL" --label old --id 01 --pin "$PIN"
    run "import cert" P --login --pin "$PIN" --write-object "$tmp/old.der" --type cert --id 01
    st="$tmp/state$n_fresh"
    mkdir -m 0700 "$st"
}

# ids CLASS: the CKA_IDs of the token's objects of that class (privkey, pubkey, cert), sorted.
ids() {
    local class=$1
    P --login --pin "$PIN" --list-objects --type "$class" 2>/dev/null |
        sed -n 's/^[[:space:]]*ID:[[:space:]]*\([0-9a-f]*\)$/\1/p' | sort | tr '\n' ' '
}

# role_works WHAT: the role 01's certificate (as the token layer lists it) and a signature by the
# role's key (through the token layer) that openssl verifies with it. The certificate is left in
# $tmp/role.der.
role_works() {
    rm -f "$tmp/role.der"
    run "$1: certs" R certs 01 "$tmp/role.der"
    [[ -s $tmp/role.der ]] || fail "$1: the role 01 has no certificate: $out"
    openssl x509 -inform DER -in "$tmp/role.der" -noout -pubkey >"$tmp/role.pub"
    echo "fault data $RANDOM" >"$tmp/data"
    openssl dgst -sha256 -binary "$tmp/data" >"$tmp/digest"
    run "$1: sign" R sign 01 "$PIN" "$tmp/digest" "$tmp/sig"
    expect_eq "$1: sign" "$out" "sign OK"
    verify_sig "$tmp/role.pub" "$tmp/sig" "$tmp/data"
}

# finished WHAT STAGED: the renewal is done, 01 holds the new pair, the old pair is gone.
finished() {
    role_works "$1"
    same_file "$1: the role's certificate is the new one" "$tmp/role.der" "$tmp/f.der"
    expect_eq "$1: private keys" "$(ids privkey)" "$2 "
    expect_eq "$1: public keys" "$(ids pubkey)" "$2 "
    expect_eq "$1: certificates" "$(ids cert)" "$2 "
    run "$1: list" R list
    expect_eq "$1: unfinished renewals" "$(awk '$1 == "rec" && $3 != "done" && $3 != "aborted"' <<<"$out")" ""
}

# prepare_fresh: a fresh token, prepared; sets $id, $staged and the issued certificate f.der.
prepare_fresh() {
    fresh_token
    run "prepare" R prepare - 01 extend "$PIN" "$tmp/f.csr"
    [[ $out == "prepare OK "* ]] || fail "prepare: $out"
    read -r _ _ id staged <<<"$out"
    openssl x509 -req -in "$tmp/f.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -days 20 \
        -outform DER -out "$tmp/f.der" 2>/dev/null || fail "issue"
}

# The steps of a commit on this token, in order (the step hook's names; a state name comes
# after the journal write of that state).
commit_steps="cert_accepted committing cert_written written role_mapped key_history activated
old_key_deleted old_cert_deleted done"
prepare_fresh
out=$(UK_RENEWAL_KILL_AT=none R commit "$id" "$tmp/f.der")
expect_eq "commit (no kill)" "$out" "commit OK done 01 $staged"
finished "commit without a fault" "$staged"
run "status" R status "$id"
ok "commit on SoftHSM2: the old pair (key and certificate 01) retired with the PIN"

passed=0 tried=0
for step in ${UK_FAULT_STEPS:-$commit_steps}; do
    tried=$((tried + 1))
    prepare_fresh
    out=$(UK_RENEWAL_KILL_AT=$step R commit "$id" "$tmp/f.der" || true)
    expect_eq "commit killed" "$out" "killed at $step"
    # The next run recovers (no PIN), as ukeyd does at start.
    run "recover ($step)" R recover
    expect_eq "recovery after a commit killed at $step" "$out" "recover OK"
    role_works "commit killed at $step"
    run "status ($step)" R status "$id"
    case $out in
    "status OK done 01 "*) ;;
    "status OK prepared 01 "* | "status OK activated 01 "*)
        # Rolled back (commit again), or retirement waiting for the PIN (commit again finishes).
        if [[ $out == *activated* ]]; then
            same_file "activated after $step: the role is the new pair" "$tmp/role.der" "$tmp/f.der"
            # Its certificate goes last: until then the old pair is found by it.
            expect_in "activated after $step: the old certificate is still there" "$(ids cert)" "01 "
        fi
        run "commit again ($step)" R commit "$id" "$tmp/f.der"
        expect_eq "commit after a kill at $step" "$out" "commit OK done 01 $staged"
        ;;
    *) fail "state after a kill at $step: $out" ;;
    esac
    finished "commit killed at $step" "$staged"
    passed=$((passed + 1))
    note "commit killed after $step: recovered, done, old pair retired"
done
note "kill during commit: $passed of $tried steps passed"
((passed == tried)) || fail "kill during commit: only $passed of $tried"
ok "SIGKILL after each step of a commit (${UK_FAULT_STEPS:-every step}): the role always signs, the journal ends done, the old pair retired"

# A pending retirement is also finished by the next prepare of the role (it has the PIN).
prepare_fresh
out=$(UK_RENEWAL_KILL_AT=old_key_deleted R commit "$id" "$tmp/f.der" || true)
expect_eq "commit killed" "$out" "killed at old_key_deleted"
run "recover" R recover
run "status" R status "$id"
expect_eq "retirement waits for the PIN" "$out" "status OK activated 01 $staged"
run "prepare" R prepare - 01 extend "$PIN" "$tmp/g.csr"
[[ $out == "prepare OK "* ]] || fail "prepare with a pending retirement: $out"
read -r _ _ id2 staged2 <<<"$out"
run "status" R status "$id"
expect_eq "the prepare finished the retirement" "$out" "status OK done 01 $staged"
expect_eq "private keys after the prepare" "$(ids privkey)" "$(printf '%s\n' "$staged" "$staged2" | sort | tr '\n' ' ')"
run "abort" R abort "$id2"
expect_eq "abort" "$out" "abort OK aborted 01 $staged2"
expect_eq "private keys after the abort" "$(ids privkey)" "$staged "
ok "a retirement left pending by a recovery is finished by the next prepare; abort deletes the staged key"

# SIGKILL after each step of a prepare; recovery (no PIN) leaves what it cannot delete recorded,
# the next prepare (with the PIN) deletes it.
for step in staging_recorded key_generated csr_signed prepared staged_marked; do
    fresh_token
    out=$(UK_RENEWAL_KILL_AT=$step R prepare - 01 extend "$PIN" "$tmp/p.csr" || true)
    expect_eq "prepare killed" "$out" "killed at $step"
    run "recover ($step)" R recover
    expect_eq "recovery after a prepare killed at $step" "$out" "recover OK"
    role_works "prepare killed at $step"
    same_file "01 untouched by a prepare killed at $step" "$tmp/role.der" "$tmp/old.der"
    run "prepare again ($step)" R prepare - 01 extend "$PIN" "$tmp/p.csr"
    if [[ $out == "prepare RENEWAL_IN_PROGRESS -1" ]]; then
        abort_prepared "$step" 01
        run "prepare after abort ($step)" R prepare - 01 extend "$PIN" "$tmp/p.csr"
    fi
    [[ $out == "prepare OK "* ]] || fail "prepare after a kill at $step: $out"
    read -r _ _ rid staged <<<"$out"
    expect_eq "private keys after a prepare killed at $step and a new one" "$(ids privkey)" \
        "$(printf '%s\n' 01 "$staged" | sort | tr '\n' ' ')"
    run "abort ($step)" R abort "$rid"
    expect_eq "private keys after the abort ($step)" "$(ids privkey)" "01 "
    note "prepare killed after $step: 01 untouched, the leftover deleted by the next prepare"
done
ok "SIGKILL after each step of a prepare: 01 untouched and signs, the next prepare cleans, abort deletes"
