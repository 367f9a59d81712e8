#!/bin/sh
# Installs the native-messaging host manifest io.ukeyd.host for Google Chrome, Chromium and
# Microsoft Edge, so that the ukeyd extension can start ukeyd-nm.
#
#   install.sh [--system|--user] [--nm PATH] [--uninstall] [--dry-run]
#
#   --user     (default) ~/.config/google-chrome/NativeMessagingHosts,
#              ~/.config/chromium/NativeMessagingHosts, ~/.config/microsoft-edge/NativeMessagingHosts
#   --system   /etc/opt/chrome/native-messaging-hosts, /etc/chromium/native-messaging-hosts,
#              /etc/opt/edge/native-messaging-hosts (run as root)
#   --nm PATH  the ukeyd-nm binary (default: the one on PATH, else /usr/libexec/ukeyd/ukeyd-nm)
#
# Browsers installed as Snap or Flatpak cannot start native hosts: portals use WSS there.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
template="$here/io.ukeyd.host.json.in"
scope=user
nm=
action=install
dry=0
while [ $# -gt 0 ]; do
    case "$1" in
        --user) scope=user ;;
        --system) scope=system ;;
        --nm) shift; nm=${1:?--nm needs a path} ;;
        --nm=*) nm=${1#--nm=} ;;
        --uninstall) action=uninstall ;;
        --dry-run) dry=1 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if [ -z "$nm" ]; then
    nm=$(command -v ukeyd-nm 2>/dev/null || true)
    [ -n "$nm" ] || nm=/usr/libexec/ukeyd/ukeyd-nm
fi
case "$nm" in
    /*) ;;
    *) nm="$(cd "$(dirname "$nm")" && pwd)/$(basename "$nm")" ;;
esac
case "$nm" in
    *'"'* | *\\* | *'@'*) echo "install.sh: unsupported character in $nm" >&2; exit 2 ;;
esac
if [ "$action" = install ] && [ ! -x "$nm" ]; then
    echo "install.sh: warning: $nm is not an executable (yet)" >&2
fi

if [ "$scope" = system ]; then
    dirs="/etc/opt/chrome/native-messaging-hosts /etc/chromium/native-messaging-hosts /etc/opt/edge/native-messaging-hosts"
else
    cfg=${XDG_CONFIG_HOME:-$HOME/.config}
    dirs="$cfg/google-chrome/NativeMessagingHosts $cfg/chromium/NativeMessagingHosts $cfg/microsoft-edge/NativeMessagingHosts"
fi

for d in $dirs; do
    f="$d/io.ukeyd.host.json"
    if [ "$action" = uninstall ]; then
        [ "$dry" = 1 ] && { echo "would remove $f"; continue; }
        rm -f "$f" && echo "removed $f"
        continue
    fi
    if [ "$dry" = 1 ]; then
        echo "would write $f (path $nm)"
        continue
    fi
    mkdir -p "$d"
    tmp="$f.tmp.$$"
    sed "s|@UKEYD_NM@|$nm|" "$template" >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$f"
    echo "wrote $f"
done
