#!/usr/bin/env bash
# tests/package/test_package.sh: build the .deb, lint it, install it on this machine, run the
# installed ukeyd as a throw-away user (through its systemd user unit when a user manager can be
# started), call system.hello over the Unix socket, WSS and the native-messaging host, then
# remove and purge it and check what is left (docs/install.md, docs/testing.md).
#
#   tests/package/test_package.sh [BUILD_DIR]     (root; default BUILD_DIR: build/package)
#
# Needs root and a disposable machine (CI): it installs the package system-wide. Everything it
# changes is undone by a trap: purge, the user and its processes, the cgroups it made. Exits 77
# (ctest: skipped) when not root or when a package named ukeyd is already installed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$repo/build/package}
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

[[ $EUID -eq 0 ]] || skip "needs root (it installs the package on this machine); run as root on a disposable machine"
if dpkg-query -W -f='${Status}' ukeyd 2>/dev/null | grep -q 'installed'; then
    skip "a package named ukeyd is already installed here; not touching it"
fi
for t in cmake cpack lintian dpkg-deb apt-get useradd setpriv node ss certutil; do
    command -v "$t" >/dev/null || fail "$t is missing (scripts/setup installs it)"
done

tmp=$(mktemp -d /tmp/ukeyd-package.XXXXXX)
chmod 0755 "$tmp"
user=ukpkg$$
uid=
mgr_pid=
cgroups=()
installed=0

cleanup() {
    local rc=$?
    set +e
    if [[ -n $mgr_pid ]]; then
        kill -TERM "$mgr_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$mgr_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$mgr_pid" 2>/dev/null
        wait "$mgr_pid" 2>/dev/null
    fi
    if ((installed)); then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq ukeyd >/dev/null 2>&1 ||
            dpkg --purge ukeyd >/dev/null 2>&1
    fi
    if [[ -n $uid ]]; then
        # Only this user's processes, by PID.
        for p in $(pgrep -u "$uid"); do kill -KILL "$p" 2>/dev/null; done
        sleep 0.2
        userdel -r "$user" >/dev/null 2>&1
        rm -rf "/run/user/$uid"
    fi
    local c
    for c in "${cgroups[@]}"; do
        find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- build ---------------------------------------------------------------------------------------
say "building the package in $build (release preset, packaged programs only)"
cmake --preset release -B "$build" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON \
    "-DCMAKE_C_FLAGS=-ffile-prefix-map=$repo/=" >"$tmp/configure.log" 2>&1 ||
    { cat "$tmp/configure.log" >&2; fail "configure"; }
cmake --build "$build" -j2 --target uk_package_programs >"$tmp/build.log" 2>&1 ||
    { tail -n 40 "$tmp/build.log" >&2; fail "build"; }
rm -f "$build"/ukeyd_*.deb
(cd "$build" && cpack -G DEB) >"$tmp/cpack.log" 2>&1 || { cat "$tmp/cpack.log" >&2; fail "cpack"; }
debs=("$build"/ukeyd_*.deb)
deb=${debs[0]}
[[ -f $deb ]] || fail "no .deb in $build"
say "built $(basename "$deb") ($(stat -c %s "$deb") bytes) at $((SECONDS - start)) s"

# --- control fields and file list ------------------------------------------------------------------
depends=$(dpkg-deb -f "$deb" Depends)
for d in pcscd libwebsockets-evlib-uv 'pinentry-gnome3 | pinentry' libwebsockets17 libpcsclite1 libuv1 libssl3 libcjson1; do
    [[ ", $depends," == *", $d"[\ ,]* ]] || fail "Depends lacks '$d': $depends"
done
[[ $(dpkg-deb -f "$deb" Package) == ukeyd ]] || fail "package name"
[[ $(dpkg-deb -f "$deb" Recommends) == *libnss3-tools* ]] || fail "Recommends lacks libnss3-tools"
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
    grep -qx -- "$f" "$tmp/files" || fail "the package lacks $f"
done
if grep -vE '^/(etc|usr)/' "$tmp/files" | grep -q .; then
    fail "files outside /etc and /usr: $(grep -vE '^/(etc|usr)/' "$tmp/files" | tr '\n' ' ')"
fi
dpkg-deb -e "$deb" "$tmp/control"
while read -r f; do
    grep -qx -- "$f" "$tmp/control/conffiles" || fail "$f is not a conffile"
done < <(grep '^/etc/' "$tmp/files" | grep -v '/$')
# No path of this build machine in any file (compile-time __FILE__, RPATH, generated files).
mkdir "$tmp/root"
dpkg-deb -x "$deb" "$tmp/root"
if grep -rlaF -e "$repo" -e "$build" "$tmp/root" >"$tmp/leaks"; then
    while read -r f; do
        say "${f#"$tmp/root"}: $(grep -aoE "($repo|$build)[^[:space:][:cntrl:]\"]*" "$f" | sort -u | tr '\n' ' ')"
    done <"$tmp/leaks"
    fail "build paths in the package's files (above)"
fi
ext_id=$(sed -n 's|.*"chrome-extension://\([a-p]\{32\}\)/".*|\1|p' "$tmp/root/etc/chromium/native-messaging-hosts/io.ukeyd.host.json")
[[ -n $ext_id ]] || fail "no extension ID in the host manifest"
grep -q "\"path\": \"/usr/libexec/ukeyd/ukeyd-nm\"" "$tmp/root/etc/chromium/native-messaging-hosts/io.ukeyd.host.json" ||
    fail "host manifest path is not /usr/libexec/ukeyd/ukeyd-nm"
say "control fields and $(grep -vc '/$' "$tmp/files") files ok; Depends: $depends"

# --- lintian ---------------------------------------------------------------------------------------
if ! lintian --info --pedantic --fail-on error,warning "$deb" >"$tmp/lintian.log" 2>&1; then
    cat "$tmp/lintian.log" >&2
    fail "lintian"
fi
grep -v 'running with root privileges' "$tmp/lintian.log" | grep -q . &&
    { cat "$tmp/lintian.log" >&2; fail "lintian has remarks"; }
say "lintian --pedantic: clean (overrides: $(grep -c '^ukeyd:' "$tmp/root/usr/share/lintian/overrides/ukeyd"))"

# --- install ---------------------------------------------------------------------------------------
installed=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "apt-get install"; }
[[ -L /etc/systemd/user/graphical-session.target.wants/ukeyd.service ]] ||
    fail "postinst did not enable the user unit for every user"
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
    { cat "$tmp/verify.log" >&2; fail "systemd-analyze --user verify"; }
grep -q . "$tmp/verify.log" && { cat "$tmp/verify.log" >&2; fail "systemd-analyze --user verify has remarks"; }
say "systemd-analyze --user verify: clean"

# A systemd user manager for the user. With systemd as PID 1: lingering. Without (containers, this
# CI): `systemd --user` in a private mount namespace where /run/systemd/system exists (its
# "booted with systemd" check), in cgroups delegated to the user.
start_user_manager() {
    if [[ -d /run/systemd/system ]] && [[ $(ps -p 1 -o comm=) == systemd ]]; then
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
mkdir /run/systemd/system /run/systemd/unit-root
for c in ${cgroups[*]}; do echo \$\$ >"\$c/cgroup.procs"; done
exec setpriv --reuid=$uid --regid=$gid --init-groups env -i HOME=$home XDG_RUNTIME_DIR=$rundir \
    LANG=C.UTF-8 /lib/systemd/systemd --user
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

sock=$rundir/ukeyd/ukeyd.sock
via_unit=0
if start_user_manager; then
    via_unit=1
    as_user systemctl --user start ukeyd.service || {
        as_user systemctl --user status ukeyd.service >&2
        fail "systemctl --user start ukeyd.service"
    }
    daemon_pid=
    for _ in $(seq 100); do
        [[ -S $sock ]] && break
        sleep 0.1
    done
    daemon_pid=$(as_user systemctl --user show -p MainPID --value ukeyd.service)
    say "ukeyd started by its systemd user unit (pid $daemon_pid)"
else
    say "no systemd user manager could be started here: starting /usr/bin/ukeyd by hand (the unit is not exercised)"
    [[ -s $tmp/manager.log ]] && tail -n 5 "$tmp/manager.log" >&2
    as_user /usr/bin/ukeyd 2>"$tmp/ukeyd.log" || { cat "$tmp/ukeyd.log" >&2; fail "ukeyd did not start"; }
    daemon_pid=$(pgrep -u "$uid" -x ukeyd | head -n 1)
fi
[[ -S $sock ]] || fail "no socket $sock"
[[ -n $daemon_pid && $daemon_pid != 0 ]] || fail "no ukeyd process"
[[ $(readlink "/proc/$daemon_pid/exe") == /usr/bin/ukeyd ]] || fail "pid $daemon_pid is not /usr/bin/ukeyd"
if ((via_unit)); then
    # The hardening of the unit is in force.
    grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$daemon_pid/status" || fail "NoNewPrivs is not set"
    grep -q '^Seccomp:[[:space:]]*2' "/proc/$daemon_pid/status" || fail "no seccomp filter"
fi

# --- system.hello: Unix socket -----------------------------------------------------------------------
hello=$(as_user /usr/bin/ukeyctl call system.hello) || fail "ukeyctl call system.hello"
grep -q '"version"' <<<"$hello" || fail "system.hello over the Unix socket: $hello"
say "Unix socket: system.hello ok"

# --- system.hello: WSS, trusted through the user's local CA ----------------------------------------
port=$(cat "$rundir/ukeyd/wss-port")
ca=$home/.local/state/ukeyd/tls/ca.pem
[[ -f $ca ]] || fail "no local CA at $ca"
as_user certutil -L -d "sql:$home/.pki/nssdb" | grep -q 'ukeyd local CA' || fail "the CA is not in the user's NSS database"
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
p.on('exit', (code) => setTimeout(() => { console.error(`host exited (${code}) without an answer`); process.exit(1); }, 200));
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
wss=$(cd "$tmp/node" && as_user node hello.js "$port" "$ca") || fail "WSS system.hello (port $port)"
grep -q '"version"' <<<"$wss" || fail "system.hello over WSS: $wss"
say "WSS wss://127.0.0.1:$port: system.hello ok (TLS verified with the user's local CA)"
nm=$(cd "$tmp/node" && as_user node nm.js /etc/chromium/native-messaging-hosts/io.ukeyd.host.json "$ext_id") ||
    fail "native messaging system.hello"
grep -q '"version"' <<<"$nm" || fail "system.hello over native messaging: $nm"
say "native messaging (host manifest -> /usr/libexec/ukeyd/ukeyd-nm, extension $ext_id): system.hello ok"

# --- remove: nothing left running or listening ----------------------------------------------------------
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq ukeyd >"$tmp/remove.log" 2>&1 ||
    { cat "$tmp/remove.log" >&2; fail "apt-get remove"; }
sleep 3 # longer than RestartSec=: a unit that would restart has done so by now
if pgrep -f /usr/bin/ukeyd >/dev/null || pgrep -f /usr/libexec/ukeyd/ >/dev/null; then
    pgrep -af ukeyd >&2
    fail "processes left running after apt-get remove"
fi
if ss -Hltn "sport = :$port" | grep -q .; then
    fail "something still listens on $port"
fi
if ((via_unit)); then
    state=$(as_user systemctl --user show -p ActiveState --value ukeyd.service)
    [[ $state == inactive || $state == failed ]] || fail "ukeyd.service is $state after remove"
fi
left=$(dpkg -L ukeyd 2>/dev/null | grep -v '/$' | while read -r f; do [[ -e $f && ! -d $f ]] && echo "$f"; done || true)
say "after remove: nothing running or listening; left (conffiles): $(tr '\n' ' ' <<<"$left")"

# --- purge: trust, conffiles, systemd state ------------------------------------------------------------
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq ukeyd >"$tmp/purge.log" 2>&1 ||
    { cat "$tmp/purge.log" >&2; fail "apt-get purge"; }
installed=0
grep -q "removed 'ukeyd local CA" "$tmp/purge.log" || { cat "$tmp/purge.log" >&2; fail "purge did not report removing the CA"; }
as_user certutil -L -d "sql:$home/.pki/nssdb" | grep -q 'ukeyd local CA' && fail "the CA is still trusted after purge"
[[ -e $home/.local/state/ukeyd/tls ]] && fail "tls/ is still in the home directory after purge"
for f in /etc/ukeyd /etc/chromium/native-messaging-hosts/io.ukeyd.host.json \
    /etc/chromium/policies/managed/00-ukeyd.json /etc/opt/chrome/native-messaging-hosts/io.ukeyd.host.json \
    /etc/opt/edge/policies/managed/00-ukeyd.json /etc/xdg/autostart/ukeyd.desktop \
    /etc/systemd/user/graphical-session.target.wants/ukeyd.service /etc/systemd/user/ukeyd.service; do
    [[ -e $f || -L $f ]] && fail "$f is left after purge"
done
if find /etc /usr /var/lib/systemd -name '*ukeyd*' 2>/dev/null | grep -q .; then
    fail "left after purge: $(find /etc /usr /var/lib/systemd -name '*ukeyd*' | tr '\n' ' ')"
fi
remain=$(cd "$home" && find .local/state/ukeyd .config/ukeyd -mindepth 1 2>/dev/null | sort | tr '\n' ' ')
say "after purge: no files of the package, CA removed from the NSS database; in the home directory: ${remain:-nothing}"
say "ok ($((SECONDS - start)) s; unit exercised: $([[ $via_unit == 1 ]] && echo yes || echo no))"
