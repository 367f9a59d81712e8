#!/usr/bin/env bash
# man/check-man.sh UKEYCTL: smoke test of the man pages. Each page renders with `man -l` without
# a groff warning and has NAME, SYNOPSIS and DESCRIPTION; every ukeyctl command in its usage text
# is described in ukeyctl.1. Exits 77 (skipped) without man.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ukeyctl=${1:?usage: check-man.sh UKEYCTL}
command -v man >/dev/null 2>&1 || {
    echo "man is not installed: skipped" >&2
    exit 77
}

fail=0
for page in "$here"/*.[1-8]; do
    warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null || true)
    text=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>/dev/null)
    if [[ -n $warnings ]]; then
        echo "FAIL $(basename "$page"): $warnings"
        fail=1
    fi
    for section in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
        if ! grep -q "^$section" <<<"$text"; then
            echo "FAIL $(basename "$page"): no $section section"
            fail=1
        fi
    done
done

ctl_text=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$here/ukeyctl.1" 2>/dev/null)
while read -r cmd; do
    if ! grep -qE "^ +$cmd( |$)" <<<"$ctl_text"; then
        echo "FAIL ukeyctl.1 does not describe '$cmd'"
        fail=1
    fi
done < <("$ukeyctl" --help | sed -n 's/^       ukeyctl \[[^]]*\] \([a-z]*\).*/\1/p; s/^usage: ukeyctl \[[^]]*\] \([a-z]*\).*/\1/p' | sort -u)

if ((fail)); then
    exit 1
fi
echo "man pages: 1 passed, 0 failed"
