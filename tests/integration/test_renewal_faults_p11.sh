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

ROLE=01
held() { ids privkey; }
held_name() { echo "$1"; }
old_held() { ids cert; }
# finished_more WHAT STAGED: the public key and the certificate are the new pair's only.
finished_more() {
    expect_eq "$1: public keys" "$(ids pubkey)" "$2 "
    expect_eq "$1: certificates" "$(ids cert)" "$2 "
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

# shellcheck disable=SC2086 # a list of words
commit_kill_loop ${UK_FAULT_STEPS:-$commit_steps}
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

prepare_kill_loop
ok "SIGKILL after each step of a prepare: 01 untouched and signs, the next prepare cleans, abort deletes"
