#!/usr/bin/env bash
# tests/package/test_package.sh: build the .deb, lint it, install it on this machine, run the
# installed ukeyd as a throw-away user (through its systemd user unit when a user manager can be
# started), call system.hello over the Unix socket, WSS and the native-messaging host, then
# remove and purge it and check what is left (docs/install.md, docs/testing.md).
#
#   tests/package/test_package.sh [BUILD_DIR]     (root; default BUILD_DIR: build/package)
#
# Needs root and a disposable machine (CI): it installs the package system-wide. Everything it
# changes is undone by a trap: purge, the user and its processes, its lingering, the cgroups it
# made; the trap then checks that nothing of it is left and fails otherwise. Exits 77 (ctest:
# skipped) when not root or when a package named ukeyd is already installed.
#
# Every failure says what it judged: the log, the command output or the daemon's log is printed
# above the FAIL line. Under `bash -x` the trace goes to the original stderr (BASH_XTRACEFD),
# never into the logs the script captures and judges.
set -Eeuo pipefail
if [[ $- == *x* ]]; then
    exec {xtrace_fd}>&2
    BASH_XTRACEFD=$xtrace_fd
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Absolute: apt-get installs a .deb given as a path, but takes "dir/x.deb" for a package name.
build=$(realpath -m -- "${1:-$repo/build/package}")
cd "$repo"
start=$SECONDS

say() { echo "package: $*" >&2; }
fail() {
    say "FAIL: $*"
    exit 1
}
skip() {
    say "SKIP: $*"
    exit 77
}
# show FILE [LABEL]: a log this script judged, framed, on stderr (the last 200 lines).
show() {
    local f=$1 label=${2:-$1}
    if [[ ! -e $f ]]; then
        say "---- $label: (no such file $f) ----"
        return 0
    fi
    say "---- $label ($(wc -l <"$f") lines$([[ $(wc -l <"$f") -gt 200 ]] && echo ', last 200')) ----"
    tail -n 200 "$f" >&2
    say "---- end of $label ----"
}
# A command that fails where no check of ours expected it (set -e) still says which and where.
trap 'rc=$?; say "FAIL: line $LINENO: \"$BASH_COMMAND\" returned $rc"' ERR

[[ $EUID -eq 0 ]] || skip "needs root (it installs the package on this machine); run as root on a disposable machine"
status=$(dpkg-query -W -f='${Status}' ukeyd 2>/dev/null || true)
if [[ $status == *' installed' ]]; then
    skip "a package named ukeyd is already installed here ($status); not touching it"
fi
for t in cmake cpack lintian dpkg-deb apt-get useradd userdel setpriv unshare node ss certutil timeout; do
    command -v "$t" >/dev/null || fail "$t is missing (scripts/setup installs it)"
done

tmp=$(mktemp -d /tmp/ukeyd-package.XXXXXX)
chmod 0755 "$tmp"
user=ukpkg$$
uid=
mgr_pid=
lingering=0
cgroups=()
installed=0
# apt and dpkg wait for a lock held by another apt (unattended upgrades, a set-up) instead of failing.
apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o DPkg::Lock::Timeout=60)

# The PIDs whose executable is one of the package's programs (a removed file: " (deleted)").
package_pids() {
    local d exe
    for d in /proc/[0-9]*; do
        exe=$(readlink "$d/exe" 2>/dev/null) || continue
        exe=${exe% (deleted)}
        case $exe in
            /usr/bin/ukeyd | /usr/bin/ukeyctl | /usr/bin/ukeyd-tray | /usr/libexec/ukeyd/*) echo "${d#/proc/}" ;;
        esac
    done
}

# What a failed run could leave on this machine; prints it, returns 1 if anything.
leftovers() {
    local out=$tmp/leftovers st
    : >"$out"
    st=$(dpkg-query -W -f='${Status}' ukeyd 2>/dev/null || true)
    [[ -z $st || $st == *not-installed ]] || echo "package ukeyd: $st" >>"$out"
    getent passwd "$user" >>"$out" || true
    if [[ -n $uid ]]; then
        pgrep -a -u "$uid" >>"$out" || true
        [[ -e /run/user/$uid ]] && echo "/run/user/$uid" >>"$out"
        [[ -e /var/lib/systemd/linger/$user ]] && echo "/var/lib/systemd/linger/$user" >>"$out"
    fi
    local c
    for c in "${cgroups[@]}"; do
        [[ -e $c ]] && echo "cgroup $c" >>"$out"
    done
    find /etc /usr /var/lib/systemd -name '*ukeyd*' >>"$out" 2>/dev/null || true
    [[ -s $out ]] || return 0
    say "left on this machine:"
    cat "$out" >&2
    return 1
}

cleanup() {
    local rc=$?
    trap - ERR
    set +e
    if ((lingering)); then
        loginctl disable-linger "$user" 2>/dev/null
        systemctl stop "user@$uid.service" 2>/dev/null
    fi
    if [[ -n $mgr_pid ]]; then
        kill -TERM "$mgr_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$mgr_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$mgr_pid" 2>/dev/null
        wait "$mgr_pid" 2>/dev/null
    fi
    if ((installed)); then
        "${apt[@]}" purge ukeyd >"$tmp/cleanup-purge.log" 2>&1 ||
            dpkg --purge ukeyd >>"$tmp/cleanup-purge.log" 2>&1 ||
            show "$tmp/cleanup-purge.log" "purge in the cleanup"
    fi
    if [[ -n $uid ]]; then
        # Only this user's processes, by PID, until there are none (userdel refuses otherwise).
        local p
        for _ in $(seq 50); do
            p=$(pgrep -u "$uid" || true)
            [[ -n $p ]] || break
            # shellcheck disable=SC2086 # one word per PID
            kill -KILL $p 2>/dev/null
            sleep 0.1
        done
        userdel -r "$user" >/dev/null 2>&1
        rm -rf "/run/user/$uid"
    fi
    local c
    for c in "${cgroups[@]}"; do
        [[ -e $c ]] || continue
        for _ in $(seq 50); do
            find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
            [[ -e $c ]] || break
            sleep 0.1
        done
    done
    if ! leftovers; then
        say "FAIL: the cleanup did not leave the machine as it found it (above)"
        ((rc)) || rc=1
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- build ---------------------------------------------------------------------------------------
say "building the package in $build (release preset, packaged programs only)"
cmake --preset release -B "$build" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON \
    "-DCMAKE_C_FLAGS=-ffile-prefix-map=$repo/=" >"$tmp/configure.log" 2>&1 ||
    { show "$tmp/configure.log" "cmake configure"; fail "configure"; }
cmake --build "$build" -j2 --target uk_package_programs >"$tmp/build.log" 2>&1 ||
    { show "$tmp/build.log" "cmake --build"; fail "build"; }
rm -f "$build"/ukeyd_*.deb
(cd "$build" && cpack -G DEB) >"$tmp/cpack.log" 2>&1 || { show "$tmp/cpack.log" cpack; fail "cpack"; }
debs=("$build"/ukeyd_*.deb)
deb=${debs[0]}
[[ -f $deb ]] || { show "$tmp/cpack.log" cpack; fail "no .deb in $build"; }
say "built $(basename "$deb") ($(stat -c %s "$deb") bytes) at $((SECONDS - start)) s"

# --- control fields and file list ------------------------------------------------------------------
dpkg-deb -f "$deb" >"$tmp/control-fields"
depends=$(dpkg-deb -f "$deb" Depends)
for d in pcscd libwebsockets-evlib-uv 'pinentry-gnome3 | pinentry' libwebsockets17 libpcsclite1 libuv1 libssl3 libcjson1; do
    [[ ", $depends," == *", $d"[\ ,]* ]] || fail "Depends lacks '$d': $depends"
done
[[ $(dpkg-deb -f "$deb" Package) == ukeyd ]] || { show "$tmp/control-fields" control; fail "package name"; }
[[ $(dpkg-deb -f "$deb" Recommends) == *libnss3-tools* ]] ||
    { show "$tmp/control-fields" control; fail "Recommends lacks libnss3-tools"; }
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$tmp/files"
for f in /usr/bin/ukeyd /usr/bin/ukeyctl /usr/libexec/ukeyd/ukeyd-nm /usr/libexec/ukeyd/ukeyd \
    /usr/libexec/ukeyd/ukeyd-session-start /usr/lib/systemd/user/ukeyd.service \
    /etc/xdg/autostart/ukeyd.desktop /etc/ukeyd/config.json \
    /etc/opt/chrome/native-messaging-hosts/io.ukeyd.host.json \
    /etc/chromium/native-messaging-hosts/io.ukeyd.host.json \
    /etc/opt/edge/native-messaging-hosts/io.ukeyd.host.json \
    /etc/opt/chrome/policies/managed/00-ukeyd.json /etc/chromium/policies/managed/00-ukeyd.json \
    /etc/opt/edge/policies/managed/00-ukeyd.json /usr/share/doc/ukeyd/copyright \
    /usr/share/doc/ukeyd/changelog.gz /usr/share/doc/ukeyd/install.md; do
    grep -qx -- "$f" "$tmp/files" || { show "$tmp/files" "the package's files"; fail "the package lacks $f"; }
done
if grep -vE '^/(etc|usr)/' "$tmp/files" >"$tmp/outside"; then
    fail "files outside /etc and /usr: $(tr '\n' ' ' <"$tmp/outside")"
fi
dpkg-deb -e "$deb" "$tmp/control"
while read -r f; do
    grep -qx -- "$f" "$tmp/control/conffiles" || { show "$tmp/control/conffiles" conffiles; fail "$f is not a conffile"; }
done < <(grep '^/etc/' "$tmp/files" | grep -v '/$')
# No path of this build machine in any file (compile-time __FILE__, RPATH, generated files).
mkdir "$tmp/root"
dpkg-deb -x "$deb" "$tmp/root"
if grep -rlaF -e "$repo" -e "$build" "$tmp/root" >"$tmp/leaks"; then
    while read -r f; do
        say "${f#"$tmp/root"}: $(grep -aoF -e "$repo" -e "$build" "$f" | sort -u | tr '\n' ' ' || true)"
    done <"$tmp/leaks"
    fail "build paths in the package's files (above)"
fi
manifest=$tmp/root/etc/chromium/native-messaging-hosts/io.ukeyd.host.json
ext_id=$(sed -n 's|.*"chrome-extension://\([a-p]\{32\}\)/".*|\1|p' "$manifest")
[[ -n $ext_id ]] || { show "$manifest"; fail "no extension ID in the host manifest"; }
grep -q "\"path\": \"/usr/libexec/ukeyd/ukeyd-nm\"" "$manifest" ||
    { show "$manifest"; fail "host manifest path is not /usr/libexec/ukeyd/ukeyd-nm"; }
say "control fields and $(grep -vc '/$' "$tmp/files") files ok; Depends: $depends"

# --- lintian ---------------------------------------------------------------------------------------
if ! lintian --info --pedantic --fail-on error,warning "$deb" >"$tmp/lintian.log" 2>&1; then
    show "$tmp/lintian.log" lintian
    fail "lintian"
fi
if grep -v 'running with root privileges' "$tmp/lintian.log" >"$tmp/lintian-remarks"; then
    show "$tmp/lintian.log" lintian
    fail "lintian has remarks"
fi
say "lintian --pedantic: clean (overrides: $(grep -c '^ukeyd:' "$tmp/root/usr/share/lintian/overrides/ukeyd"))"

# --- install ---------------------------------------------------------------------------------------
installed=1
"${apt[@]}" install --no-install-recommends "$deb" >"$tmp/install.log" 2>&1 ||
    { show "$tmp/install.log" "apt-get install"; fail "apt-get install"; }
[[ -L /etc/systemd/user/graphical-session.target.wants/ukeyd.service ]] ||
    { show "$tmp/install.log" "apt-get install"; fail "postinst did not enable the user unit for every user"; }
say "installed"

# --- a user with a browser profile's NSS database ---------------------------------------------------
useradd -m -s /bin/sh "$user"
uid=$(id -u "$user")
gid=$(id -g "$user")
home=$(getent passwd "$user" | cut -d: -f6)
rundir=/run/user/$uid
install -d -m 0700 -o "$uid" -g "$gid" "$rundir"
as_user() {
    setpriv --reuid="$uid" --regid="$gid" --init-groups env -i PATH=/usr/bin:/bin HOME="$home" \
        XDG_RUNTIME_DIR="$rundir" LANG=C.UTF-8 "$@"
}
as_user mkdir -p "$home/.pki/nssdb"
as_user certutil -N -d "sql:$home/.pki/nssdb" --empty-password
as_user systemd-analyze --user verify /usr/lib/systemd/user/ukeyd.service >"$tmp/verify.log" 2>&1 ||
    { show "$tmp/verify.log" "systemd-analyze --user verify"; fail "systemd-analyze --user verify"; }
if [[ -s $tmp/verify.log ]]; then
    show "$tmp/verify.log" "systemd-analyze --user verify"
    fail "systemd-analyze --user verify has remarks (above)"
fi
say "systemd-analyze --user verify: clean"

# A systemd user manager for the user. With systemd as PID 1: lingering. Without (containers, this
# CI): `systemd --user` in a private mount namespace where /run/systemd/system exists (its
# "booted with systemd" check), in cgroups delegated to the user. There is no journal in that
# namespace: the manager logs to the console and its services' output is inherited, all into
# $tmp/manager.log, the daemon's log this script shows when a check of it fails.
start_user_manager() {
    if [[ -d /run/systemd/system ]] && [[ $(ps -p 1 -o comm=) == systemd ]]; then
        lingering=1
        loginctl enable-linger "$user" && systemctl start "user@$uid.service" || return 1
        return 0
    fi
    local c
    if [[ -f /sys/fs/cgroup/unified/cgroup.procs ]]; then
        cgroups=(/sys/fs/cgroup/unified/"$user")
        [[ -d /sys/fs/cgroup/systemd ]] && cgroups+=(/sys/fs/cgroup/systemd/"$user")
    elif [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
        cgroups=(/sys/fs/cgroup/"$user")
    else
        return 1
    fi
    for c in "${cgroups[@]}"; do
        mkdir "$c" && chown -R "$uid:$gid" "$c" || return 1
    done
    cat >"$tmp/manager.sh" <<EOF
#!/bin/sh
set -e
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir /run/systemd/system /run/systemd/unit-root /run/systemd/user.conf.d
printf '[Manager]\nDefaultStandardOutput=inherit\n' >/run/systemd/user.conf.d/50-ukeyd-package-test.conf
for c in ${cgroups[*]}; do echo \$\$ >"\$c/cgroup.procs"; done
exec setpriv --reuid=$uid --regid=$gid --init-groups env -i HOME=$home XDG_RUNTIME_DIR=$rundir \
    LANG=C.UTF-8 SYSTEMD_LOG_TARGET=console /lib/systemd/systemd --user
EOF
    chmod 0755 "$tmp/manager.sh"
    unshare -m --propagation private "$tmp/manager.sh" >"$tmp/manager.log" 2>&1 &
    mgr_pid=$!
    local state
    for _ in $(seq 150); do
        state=$(as_user systemctl --user show -p SystemState --value 2>/dev/null || true)
        [[ $state == running || $state == degraded ]] && return 0
        kill -0 "$mgr_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    say "the user manager is '$state' after 15 s"
    return 1
}

# The daemon's log (and its manager's), into $tmp/daemon.log; shows it.
show_daemon_log() {
    if ((lingering)); then
        journalctl --no-pager -q "_UID=$uid" >"$tmp/daemon.log" 2>&1 || true
    elif ((via_unit)); then
        cp "$tmp/manager.log" "$tmp/daemon.log"
    else
        cp "$tmp/ukeyd.log" "$tmp/daemon.log" 2>/dev/null || : >"$tmp/daemon.log"
    fi
    if ((via_unit)); then
        as_user timeout 10 systemctl --user status --no-pager --full ukeyd.service >>"$tmp/daemon.log" 2>&1 || true
    fi
    show "$tmp/daemon.log" "ukeyd's log$( ((via_unit)) && echo ' (user manager, systemctl status)')"
}
# fail_daemon MESSAGE [FILE...]: the files that were judged, the daemon's log, then FAIL.
fail_daemon() {
    local msg=$1 f
    shift
    for f in "$@"; do show "$f"; done
    show_daemon_log
    fail "$msg"
}

sock=$rundir/ukeyd/ukeyd.sock
port_file=$rundir/ukeyd/wss-port
via_unit=0
if start_user_manager; then
    via_unit=1
    as_user timeout 30 systemctl --user start ukeyd.service >"$tmp/start.log" 2>&1 ||
        fail_daemon "systemctl --user start ukeyd.service" "$tmp/start.log"
    daemon_pid=$(as_user timeout 10 systemctl --user show -p MainPID --value ukeyd.service)
    how="its systemd user unit"
else
    show "$tmp/manager.log" "user manager"
    say "no systemd user manager could be started here: starting /usr/bin/ukeyd by hand (the unit is not exercised)"
    as_user /usr/bin/ukeyd 2>"$tmp/ukeyd.log" || fail_daemon "ukeyd did not start"
    daemon_pid=$(pgrep -u "$uid" -x ukeyd | head -n 1 || true)
    how="hand"
fi
# Ready: the socket listens and the WSS port file is written, after the TLS set-up (the socket
# alone exists from bind(), before listen() and before the local CA is in the NSS database).
for _ in $(seq 100); do
    [[ -S $sock && -s $port_file ]] && break
    sleep 0.1
done
[[ -S $sock ]] || fail_daemon "no socket $sock after 10 s"
[[ -s $port_file ]] || fail_daemon "no WSS port file $port_file after 10 s"
[[ -n $daemon_pid && $daemon_pid != 0 ]] || fail_daemon "no ukeyd process (MainPID '$daemon_pid')"
exe=$(readlink "/proc/$daemon_pid/exe" || true)
[[ $exe == /usr/bin/ukeyd ]] || fail_daemon "pid $daemon_pid is '$exe', not /usr/bin/ukeyd"
say "ukeyd started by $how (pid $daemon_pid)"
if ((via_unit)); then
    # The hardening of the unit is in force.
    grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$daemon_pid/status" ||
        fail_daemon "NoNewPrivs is not set" "/proc/$daemon_pid/status"
    grep -q '^Seccomp:[[:space:]]*2' "/proc/$daemon_pid/status" ||
        fail_daemon "no seccomp filter" "/proc/$daemon_pid/status"
fi

# --- system.hello: Unix socket -----------------------------------------------------------------------
as_user timeout 30 /usr/bin/ukeyctl call system.hello >"$tmp/hello-unix.log" 2>&1 ||
    fail_daemon "ukeyctl call system.hello" "$tmp/hello-unix.log"
grep -q '"version"' "$tmp/hello-unix.log" || fail_daemon "system.hello over the Unix socket" "$tmp/hello-unix.log"
say "Unix socket: system.hello ok"

# --- system.hello: WSS, trusted through the user's local CA ----------------------------------------
port=$(cat "$port_file")
ca=$home/.local/state/ukeyd/tls/ca.pem
[[ -f $ca ]] || fail_daemon "no local CA at $ca"
as_user certutil -L -d "sql:$home/.pki/nssdb" >"$tmp/nss.log" 2>&1 ||
    fail_daemon "certutil -L on the user's NSS database" "$tmp/nss.log"
grep -q 'ukeyd local CA' "$tmp/nss.log" || fail_daemon "the CA is not in the user's NSS database" "$tmp/nss.log"
mkdir -p "$tmp/node/node_modules"
cp -r "$repo/node_modules/ws" "$tmp/node/node_modules/"
cat >"$tmp/node/hello.js" <<'EOF'
// WSS system.hello as a page on a pairable origin would send it, verifying the local CA.
const fs = require('fs');
const WebSocket = require('ws');
const [port, ca] = process.argv.slice(2);
const ws = new WebSocket(`wss://127.0.0.1:${port}`, {
  origin: 'https://portal.example.cn', ca: fs.readFileSync(ca), rejectUnauthorized: true,
});
const timer = setTimeout(() => { console.error('timeout'); process.exit(2); }, 10000);
ws.on('open', () => ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'system.hello' })));
ws.on('message', (m) => { console.log(String(m)); clearTimeout(timer); ws.close(); });
ws.on('error', (e) => { console.error(String(e)); process.exit(1); });
EOF
cat >"$tmp/node/nm.js" <<'EOF'
// Native messaging as Chrome does it: start the host named by the manifest with the extension's
// origin, 4-byte native-endian length + JSON on stdin/stdout.
const fs = require('fs');
const { spawn } = require('child_process');
const [manifest, id] = process.argv.slice(2);
const host = JSON.parse(fs.readFileSync(manifest, 'utf8'));
const p = spawn(host.path, [`chrome-extension://${id}/`], { stdio: ['pipe', 'pipe', 'inherit'] });
const msg = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'system.hello' }));
const len = Buffer.alloc(4); len.writeUInt32LE(msg.length);
p.stdin.on('error', () => {}); // the host may refuse and exit before reading
p.stdin.write(Buffer.concat([len, msg]));
// 'close': the host exited and everything it wrote has been read.
p.on('close', (code, sig) => { console.error(`host exited (${code ?? sig}) without an answer`); process.exit(1); });
let buf = Buffer.alloc(0);
const timer = setTimeout(() => { console.error('timeout'); process.exit(2); }, 10000);
p.stdout.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32LE(0)) {
    const n = buf.readUInt32LE(0);
    const m = JSON.parse(buf.subarray(4, 4 + n)); buf = buf.subarray(4 + n);
    if (m.id === 7 || m.error) { console.log(JSON.stringify(m)); clearTimeout(timer); process.exit(0); }
  }
});
EOF
(cd "$tmp/node" && as_user node hello.js "$port" "$ca") >"$tmp/hello-wss.log" 2>&1 ||
    fail_daemon "WSS system.hello (port $port)" "$tmp/hello-wss.log"
grep -q '"version"' "$tmp/hello-wss.log" || fail_daemon "system.hello over WSS" "$tmp/hello-wss.log"
say "WSS wss://127.0.0.1:$port: system.hello ok (TLS verified with the user's local CA)"
(cd "$tmp/node" && as_user node nm.js /etc/chromium/native-messaging-hosts/io.ukeyd.host.json "$ext_id") \
    >"$tmp/hello-nm.log" 2>&1 || fail_daemon "native messaging system.hello" "$tmp/hello-nm.log"
grep -q '"version"' "$tmp/hello-nm.log" || fail_daemon "system.hello over native messaging" "$tmp/hello-nm.log"
say "native messaging (host manifest -> /usr/libexec/ukeyd/ukeyd-nm, extension $ext_id): system.hello ok"

# --- remove: nothing left running or listening ----------------------------------------------------------
"${apt[@]}" remove ukeyd >"$tmp/remove.log" 2>&1 || { show "$tmp/remove.log" "apt-get remove"; fail "apt-get remove"; }
sleep 3 # longer than RestartSec=: a unit that would restart has done so by now
pids=$(package_pids)
if [[ -n $pids ]]; then
    # shellcheck disable=SC2086 # one word per PID
    ps -o pid,user,lstart,args -p $pids >&2 || true
    fail_daemon "processes of the package left running after apt-get remove (above)" "$tmp/remove.log"
fi
# Anything listening on the port now must not be ukeyd's (a process of the package or of the
# test user); another program that took the free port since is not this test's business.
ss -Hltnp "sport = :$port" >"$tmp/listen.log" 2>&1 || true
{ grep -o 'pid=[0-9]*' "$tmp/listen.log" || true; } | cut -d= -f2 | sort -u >"$tmp/listen.pids"
while read -r p; do
    owner=$(stat -c %u "/proc/$p" 2>/dev/null || true)
    exe=$(readlink "/proc/$p/exe" 2>/dev/null || true)
    if [[ $owner == "$uid" || $exe == /usr/bin/ukeyd* || $exe == /usr/libexec/ukeyd/* ]]; then
        fail_daemon "ukeyd's WSS port $port still listens after apt-get remove (pid $p, $exe)" "$tmp/listen.log"
    fi
done <"$tmp/listen.pids"
if ((via_unit)); then
    state=$(as_user timeout 10 systemctl --user show -p ActiveState --value ukeyd.service)
    [[ $state == inactive || $state == failed ]] || fail_daemon "ukeyd.service is $state after remove" "$tmp/remove.log"
fi
left=$(dpkg -L ukeyd 2>/dev/null | grep -v '/$' | while read -r f; do if [[ -e $f && ! -d $f ]]; then echo "$f"; fi; done || true)
say "after remove: nothing running or listening; left (conffiles): $(tr '\n' ' ' <<<"$left")"

# --- purge: trust, conffiles, systemd state ------------------------------------------------------------
"${apt[@]}" purge ukeyd >"$tmp/purge.log" 2>&1 || { show "$tmp/purge.log" "apt-get purge"; fail "apt-get purge"; }
installed=0
grep -q "removed 'ukeyd local CA" "$tmp/purge.log" || { show "$tmp/purge.log" "apt-get purge"; fail "purge did not report removing the CA"; }
as_user certutil -L -d "sql:$home/.pki/nssdb" >"$tmp/nss-after.log" 2>&1 ||
    { show "$tmp/nss-after.log" "certutil -L"; fail "certutil -L on the user's NSS database after purge"; }
if grep -q 'ukeyd local CA' "$tmp/nss-after.log"; then
    show "$tmp/nss-after.log" "certutil -L"
    show "$tmp/purge.log" "apt-get purge"
    fail "the CA is still trusted after purge"
fi
if [[ -e $home/.local/state/ukeyd/tls ]]; then
    ls -la "$home/.local/state/ukeyd/tls" >&2 || true
    show "$tmp/purge.log" "apt-get purge"
    fail "tls/ is still in the home directory after purge"
fi
for f in /etc/ukeyd /etc/chromium/native-messaging-hosts/io.ukeyd.host.json \
    /etc/chromium/policies/managed/00-ukeyd.json /etc/opt/chrome/native-messaging-hosts/io.ukeyd.host.json \
    /etc/opt/edge/policies/managed/00-ukeyd.json /etc/xdg/autostart/ukeyd.desktop \
    /etc/systemd/user/graphical-session.target.wants/ukeyd.service /etc/systemd/user/ukeyd.service; do
    if [[ -e $f || -L $f ]]; then
        show "$tmp/purge.log" "apt-get purge"
        fail "$f is left after purge"
    fi
done
find /etc /usr /var/lib/systemd -name '*ukeyd*' >"$tmp/after-purge" 2>/dev/null || true
if [[ -s $tmp/after-purge ]]; then
    show "$tmp/purge.log" "apt-get purge"
    fail "left after purge: $(tr '\n' ' ' <"$tmp/after-purge")"
fi
# What ukeyd leaves in the home directory on purge, by design (docs/install.md); either directory
# may not exist.
remain=
for d in .local/state/ukeyd .config/ukeyd; do
    [[ -d $home/$d ]] && remain+=$(cd "$home" && find "$d" -mindepth 1 | sort | tr '\n' ' ')
done
say "after purge: no files of the package, CA removed from the NSS database; in the home directory: ${remain:-nothing}"
say "ok ($((SECONDS - start)) s; unit exercised: $([[ $via_unit == 1 ]] && echo yes || echo no))"
