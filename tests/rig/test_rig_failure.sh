#!/usr/bin/env bash
# `rig up` fails with a clear message, and leaves nothing running, when the
# card never shows up (timeout) or dies at once.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# Processes whose command line or working dir mentions PATH.
procs_under() {
    local p
    for p in /proc/[0-9]*; do
        if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$1"; then
            [[ $(cut -d' ' -f3 "$p/stat" 2>/dev/null) == Z ]] || echo "${p#/proc/}"
        fi
    done
}

fake="$tmp/fake-vpiv"
cat >"$fake" <<FAKE
#!/usr/bin/env bash
# provision like the real card; 'run' misbehaves as \$FAKE_MODE says
if [[ \$1 == run ]]; then
    case \$FAKE_MODE in
    silent) exec sleep 600 ;;
    crash) echo "fake card: crashing" >&2; exit 3 ;;
    esac
fi
exec "$vpiv" "\$@"
FAKE
chmod +x "$fake"

for mode in silent crash; do
    d="$tmp/rig-$mode"
    rigs+=("$d")
    start=$SECONDS
    if FAKE_MODE=$mode UK_VPIV="$fake" "$rig" up "$d" --timeout 3 2>"$tmp/err-$mode"; then
        fail "rig up with a $mode card succeeded"
    fi
    took=$((SECONDS - start))
    cat "$tmp/err-$mode"
    case $mode in
    silent) grep -q "timeout after 3s" "$tmp/err-$mode" || fail "no timeout message" ;;
    crash)
        grep -q "card0 (pid [0-9]*) exited with status 3" "$tmp/err-$mode" || fail "no message about the crashed card"
        ((took < 3)) || fail "a crashed card took ${took}s to notice"
        ;;
    esac
    ((took < 10)) || fail "rig up ($mode) took ${took}s to give up"
    [[ ! -e $d/env ]] || fail "env file written by a failed up"
    left=$(procs_under "$d")
    [[ -z $left ]] || fail "processes left after a failed up: $left"
done
note "ok"
