#!/usr/bin/env bash
# The rig as a normal user (user namespaces): run as root, this test drops to
# 'nobody' with setpriv; run as a normal user, the other rig tests already
# cover it and this one skips.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[[ $EUID -eq 0 ]] || skip "not root: the other rig tests already run unprivileged"
command -v setpriv >/dev/null || skip "no setpriv"
as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups --reset-env -- \
        env HOME="$tmp/nobody" PATH="$PATH" UK_VPIV="$vpiv" UK_PCSC="$pcsc" "$@"
}
as_nobody unshare --map-root-user --mount --net true 2>/dev/null ||
    skip "unprivileged user namespaces are not allowed here"
as_nobody test -x "$vpiv" -a -x "$pcsc" -a -r "$rig" ||
    skip "nobody cannot reach the build ($vpiv)"

chmod 755 "$tmp"
mkdir -p "$tmp/nobody"
chown 65534:65534 "$tmp/nobody"
d="$tmp/nobody/rig"
rigs+=("$d")
as_nobody "$rig" up "$d" --cards 2 || fail "rig up as nobody failed"
[[ $(stat -c %u "$d/run/pcscd.comm") == 65534 ]] || fail "pcscd socket not owned by nobody"
pid=$(cut -d' ' -f1 "$d/pids/pcscd")
[[ $(awk '/^Uid:/ {print $2}' "/proc/$pid/status") == 65534 ]] || fail "pcscd does not run as nobody"
# shellcheck disable=SC2016 # expands in nobody's shell
out=$(as_nobody bash -c '. "$1/env" && "$UK_PCSC" list && "$UK_PCSC" apdu "$UK_RIG_READER1" "$2" "$3"' \
    _ "$d" "$APDU_SELECT" "$APDU_SERIAL")
echo "$out"
[[ $(tail -n 1 <<<"$out") == *9000 ]] || fail "GET SERIAL through nobody's rig failed"
as_nobody "$rig" down "$d" || fail "rig down as nobody failed"
[[ ! -e $d/env ]] || fail "env left after down"
note "ok"
