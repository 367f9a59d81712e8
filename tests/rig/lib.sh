# shellcheck shell=bash
# Shared set-up for the rig's own tests (sourced). Each test gets a temp dir
# and a temp HOME, and every rig it starts is taken down on exit, whatever
# happens. Exit 77 = skipped (ctest SKIP_RETURN_CODE).
set -euo pipefail

repo=${UK_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
rig="$repo/scripts/rig"
pcsc=${UK_PCSC:-$repo/build/dev/tests/rig/uk-pcsc}
vpiv=${UK_VPIV:-$repo/build/dev/tests/vcard/vpiv}
export UK_PCSC="$pcsc" UK_VPIV="$vpiv"

# PIV application (SELECT by the 9-byte AID prefix), GET SERIAL (vendor),
# GET DATA of the 9A certificate object, empty VERIFY of the PIN.
# shellcheck disable=SC2034 # used by the tests that source this file
{
    APDU_SELECT=00A4040009A0000003080000100000
    APDU_SERIAL=00F8000000
    APDU_CERT_9A=00CB3FFF055C035FC10500
    APDU_PIN_RETRIES=0020008000
}

skip() {
    echo "SKIP: $*"
    exit 77
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

note() {
    echo "# $*"
}

[[ -x $pcsc ]] || skip "uk-pcsc not built ($pcsc)"
[[ -x $vpiv ]] || skip "vpiv not built ($vpiv)"
if [[ $EUID -eq 0 ]]; then
    unshare --mount --net true 2>/dev/null || skip "cannot create mount+network namespaces"
else
    unshare --map-root-user --mount --net true 2>/dev/null ||
        skip "unprivileged user namespaces are not allowed here"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/uk-rig-test.XXXXXX")
export HOME="$tmp/home"
mkdir -p "$HOME"
rigs=()

cleanup() {
    local rc=$? d
    trap - EXIT
    for d in "${rigs[@]}"; do
        if ! "$rig" down "$d"; then
            echo "FAIL: rig down $d reported a problem" >&2
            rc=1
        fi
    done
    if ((rc != 0 && rc != 77)); then
        for d in "${rigs[@]}"; do
            for f in "$d"/log/*.log; do
                [[ -s $f ]] || continue
                echo "---- $f ----" >&2
                tail -n 30 "$f" >&2
            done
        done
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

rig_up() { # DIR [OPTIONS...]
    local d=$1
    rigs+=("$d")
    UK_RIG_OWNER=$$ "$rig" up "$@"
}

# in_rig DIR CMD...: run CMD with DIR/env sourced.
in_rig() {
    local d=$1
    shift
    (
        # shellcheck source=/dev/null
        . "$d/env"
        "$@"
    )
}

# apdu DIR READER_VAR APDU...: select PIV, send APDUs (GET RESPONSE handled),
# print the last response.
apdu() {
    local d=$1 var=$2
    shift 2
    # shellcheck disable=SC2016 # expands in the rig's environment
    in_rig "$d" bash -c '"$UK_PCSC" apdu --auto-get-response "${!1}" "${@:2}"' _ "$var" \
        "$APDU_SELECT" "$@" | tail -n 1
}

# A recorded process (DIR/pids/NAME holds "PID STARTTIME") still runs.
recorded_running() {
    local pid start stat rest f
    read -r pid start <"$1"
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    rest=${stat##*) }
    read -ra f <<<"$rest"
    [[ ${f[0]} != Z && ${f[19]} == "$start" ]]
}

expect_eq() { # WHAT GOT WANT
    [[ $2 == "$3" ]] || fail "$1: got '$2', want '$3'"
}

expect_sw() { # WHAT RESPONSE SW
    [[ $2 == *"$3" ]] || fail "$1: response '$2' does not end in $3"
}
