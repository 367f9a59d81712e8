#!/usr/bin/env bash
# tests/fresh/run-in-debootstrap.sh: the README's two commands on a fresh Debian 12 root.
#
#   tests/fresh/run-in-debootstrap.sh [--full] [--keep] [DIR]
#
# Makes a Debian 12 (bookworm) root with debootstrap in DIR (default /var/tmp/ukeyd-fresh,
# made anew each run), clones this repository into it (`git clone`: the committed HEAD, as a
# new user would get it; the working tree's uncommitted changes are not part of the check),
# and in a chroot, as root, runs:
#
#   ./scripts/setup                                    (what both README commands start with)
#   cmake --preset dev && cmake --build --preset dev   (the build of ./scripts/run)
#   ./scripts/run --fresh                              (until it is up: system.hello and a key
#                                                       through ukeyctl, the portal answers;
#                                                       then Ctrl-C, and nothing may be left)
#   ./scripts/test                                     (only with --full: takes long on 2 cores)
#
# /proc, /sys, /dev, /dev/pts and a fresh /tmp are mounted inside a private mount namespace,
# so nothing stays mounted when it ends. What a chroot cannot do: run systemd (the package's
# user unit is checked by tests/package instead), or give the tests a real pcscd of the
# host (the rig starts its own, which works as root). The host's local CAs
# (/usr/local/share/ca-certificates) are copied in: this CI reaches npm through a re-signing
# proxy. Mirror: the first Debian URI in the
# host's /etc/apt/sources.list{,.d/*} (override: MIRROR=...). Not part of ./scripts/test (it
# downloads and installs a whole system: ~10 minutes); its last result is in docs/testing.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
full=0
keep=0
dir=/var/tmp/ukeyd-fresh
for a in "$@"; do
    case "$a" in
    --full) full=1 ;;
    --keep) keep=1 ;;
    -h | --help)
        sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*)
        echo "unknown option $a" >&2
        exit 2
        ;;
    *) dir=$a ;;
    esac
done

say() { echo "fresh: $*" >&2; }
[[ $EUID -eq 0 ]] || {
    say "needs root (debootstrap, chroot)"
    exit 77
}
command -v debootstrap >/dev/null || {
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

mirror=${MIRROR:-}
if [[ -z $mirror ]]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -oE 'https?://[^ ]*/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
case "$dir" in /var/tmp/* | /tmp/* | /srv/*) ;; *)
    say "refusing to use $dir (only under /var/tmp, /tmp or /srv, since it is deleted first)"
    exit 2
    ;;
esac

start=$SECONDS
log=$dir.log
rm -rf "$dir"
mkdir -p "$dir"
: >"$log"
say "debootstrap bookworm from $mirror into $dir (log: $log)"
debootstrap --include=git,ca-certificates bookworm "$dir" "$mirror" >>"$log" 2>&1 || {
    tail -n 30 "$log" >&2
    say "debootstrap failed"
    exit 1
}
say "debootstrap done ($((SECONDS - start)) s)"
# The host's apt sources (the same mirror and snapshot) and DNS.
cp /etc/resolv.conf "$dir/etc/resolv.conf"
rm -f "$dir/etc/apt/sources.list"
cp /etc/apt/sources.list.d/debian.sources "$dir/etc/apt/sources.list.d/" 2>/dev/null ||
    echo "deb $mirror bookworm main" >"$dir/etc/apt/sources.list"
# Local CAs of the host (on this CI: the egress proxy's, which re-signs https): a fresh machine
# on the same network needs them too, or npm cannot reach its registry.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/"
    chroot "$dir" update-ca-certificates >>"$log" 2>&1
fi
git clone -q "$repo" "$dir/root/ukeyd"
say "cloned $(git -C "$repo" rev-parse --short HEAD) into $dir/root/ukeyd"

# shellcheck disable=SC2016 # expanded inside the chroot
steps='set -e
cd /root/ukeyd
export HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
t=$SECONDS; ./scripts/setup -v; echo "fresh: scripts/setup ok ($((SECONDS - t)) s)" >&2
t=$SECONDS; cmake --preset dev >/dev/null && cmake --build --preset dev -j2 >/dev/null
echo "fresh: dev build ok ($((SECONDS - t)) s)" >&2
./build/dev/daemon/main/ukeyd --version
# The first README command whole: ./scripts/run (no real key here: the rig and the demo
# portal), checked from outside as a user would, then Ctrl-C (SIGINT to the script).
t=$SECONDS; port=$((18000 + RANDOM % 2000))
# A background job of a shell without job control starts with SIGINT ignored, and a script
# cannot trap a signal ignored at its start: give it back the default, as at a terminal.
PORTAL_PORT=$port setsid env --default-signal=INT ./scripts/run --fresh >/tmp/run.out 2>&1 &
run_pid=$!
for _ in $(seq 600); do grep -q "Press Ctrl-C" /tmp/run.out && break; kill -0 $run_pid || break; sleep 0.5; done
grep -q "Press Ctrl-C" /tmp/run.out || { cat /tmp/run.out >&2; echo "fresh: scripts/run did not come up" >&2; exit 1; }
ctl="./build/dev/tray/ukeyctl --config .rig-demo/ukeyd/config.json"
$ctl call system.hello | grep -q "\"protocol\"" || { echo "fresh: system.hello failed" >&2; exit 1; }
$ctl call token.list | grep -q "\"present\": *true" || { echo "fresh: no key in token.list" >&2; exit 1; }
node -e "fetch(\"http://127.0.0.1:$port/login.html\").then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))" ||
    { echo "fresh: the demo portal does not answer" >&2; exit 1; }
kill -INT $run_pid
for _ in $(seq 100); do kill -0 $run_pid 2>/dev/null || break; sleep 0.2; done
! kill -0 $run_pid 2>/dev/null || { echo "fresh: scripts/run ignored Ctrl-C" >&2; exit 1; }
left=$(pgrep -f "/root/ukeyd/(build|examples)" || true)
[ -z "$left" ] || { ps -o pid,args -p $left >&2; echo "fresh: processes left after Ctrl-C" >&2; exit 1; }
echo "fresh: scripts/run ok: ukeyd, the virtual key and the portal came up and stopped on Ctrl-C ($((SECONDS - t)) s)" >&2'
if ((full)); then
    steps="$steps
t=\$SECONDS; ./scripts/test; echo \"fresh: scripts/test ok (\$((SECONDS - t)) s)\" >&2"
fi

# Mounts live in a private namespace: gone when it exits, whatever happens.
rc=0
# shellcheck disable=SC2016 # \$1 and \$2 are the inner shell's
unshare -m --propagation private bash -c '
    set -e
    d=$1
    # The root a machine boots is a mount point; a debootstrap folder is not, and then
    # `unshare --mount` inside (the rig) cannot make "/" private (EINVAL).
    mount --bind "$d" "$d"
    mount -t proc proc "$d/proc"
    mount --rbind /sys "$d/sys"
    mount --rbind /dev "$d/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$d/tmp"
    mount -t tmpfs -o mode=0755 tmpfs "$d/run"
    exec chroot "$d" /bin/bash -c "$2"
' fresh "$dir" "$steps" 2>&1 | tee -a "$log" || rc=$?
# Whatever a failed step left running in the root (a rig, a daemon) goes with it.
for p in /proc/[0-9]*; do
    [[ $(readlink "$p/root" 2>/dev/null) == "$dir" ]] && kill -KILL "${p#/proc/}" 2>/dev/null
done
if ((rc == 0)); then
    say "PASS: the README's commands work on a fresh Debian 12 root ($((SECONDS - start)) s; log $log)"
else
    say "FAIL (exit $rc; log $log)"
fi
((keep)) || rm -rf "$dir"
exit "$rc"
