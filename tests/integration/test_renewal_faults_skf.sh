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

ROLE=rsa/sign
held() { containers; }
held_name() { echo "${1%/sign}"; }
old_held() { containers; }
finished_more() { :; }

commit_steps="cert_accepted committing cert_written written role_mapped activated old_key_deleted
old_cert_deleted done"
prepare_fresh
out=$(UK_RENEWAL_KILL_AT=none R commit "$id" "$tmp/f.der")
expect_eq "commit (no kill)" "$out" "commit OK done rsa/sign $staged"
finished "commit without a fault" "$staged"
ok "commit on the soft SKF module: the old container retired with the PIN"

# shellcheck disable=SC2086 # a list of words
commit_kill_loop ${UK_FAULT_STEPS:-$commit_steps}
ok "SIGKILL after each step of a commit: the role always signs, the journal ends done, the old container retired"

prepare_kill_loop
ok "SIGKILL after each step of a prepare: the role untouched and signs, the next prepare cleans, abort deletes"
