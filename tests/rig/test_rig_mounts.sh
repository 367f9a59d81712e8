#!/usr/bin/env bash
# The two ways the rig gives pcscd its own /run/pcscd, each inside an outer
# private mount namespace so the host is never changed:
#  - the host has /run/pcscd (as with a system pcscd): bound over, and the
#    host's directory keeps its content;
#  - DIR lies under /run (XDG_RUNTIME_DIR): the tmpfs over /run in the rig
#    must still show DIR, and the host's other /run entries.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[[ $EUID -eq 0 ]] || skip "needs root for the outer mount namespace"

# nsenter -r: entering a mount namespace resets the root to that namespace's root, which in a
# chroot (tests/fresh) is not the process's own root; -r takes the target's root.
# shellcheck disable=SC2016 # the scripts expand in the inner shells
inner_common='
set -euo pipefail
d=$1
trap '"'"'"$rig" down "$d" >/dev/null 2>&1 || true'"'"' EXIT
"$rig" up "$d" >/dev/null 2>&1 || { echo "up failed"; cat "$d"/log/*.log; exit 1; }
. "$d/env"
"$UK_PCSC" wait "$UK_RIG_READER" present 0 || { echo "card not present"; exit 1; }
pid=$(cut -d" " -f1 "$d/pids/pcscd")
'

note "host has /run/pcscd"
export rig pcsc
# shellcheck disable=SC2016
unshare --mount --propagation private bash -c '
mount -n -t tmpfs outer /run
mkdir /run/pcscd /run/other
echo sentinel >/run/pcscd/sentinel
'"$inner_common"'
[[ $(nsenter -t "$pid" -m -r cat /run/pcscd/pcscd.pid | tr -cd 0-9) == "$pid" ]] || { echo "pcscd.pid wrong"; exit 1; }
[[ $(ls /run/pcscd) == sentinel ]] || { echo "host /run/pcscd changed: $(ls /run/pcscd)"; exit 1; }
"$rig" down "$d" || exit 1
[[ $(cat /run/pcscd/sentinel) == sentinel ]] || exit 1
' _ "$tmp/rig-a" || fail "rig with a host /run/pcscd"

note "DIR under /run/user/0, host without /run/pcscd"
# shellcheck disable=SC2016
unshare --mount --propagation private bash -c '
mount -n -t tmpfs outer /run/user
mkdir -p /run/user/0
'"$inner_common"'
[[ ! -e /run/pcscd ]] || { echo "/run/pcscd appeared on the host"; exit 1; }
view=$(nsenter -t "$pid" -m -r ls /run)
for e in $(ls /run) pcscd; do
    grep -qx "$e" <<<"$view" || { echo "/run/$e missing in the rig: $view"; exit 1; }
done
nsenter -t "$pid" -m -r test -S "$d/run/pcscd.comm" || { echo "DIR not visible in the rig"; exit 1; }
"$rig" down "$d" || exit 1
' _ /run/user/0/rig || fail "rig with DIR under /run"
note "ok"
