#!/bin/bash
# `systemd-analyze verify` must accept the unit without a single line of output: it reports
# unknown keys, bad values and missing programs as warnings with exit status 0, so any output is
# a failure. A copy with a misspelt key must draw a warning, or this test proves nothing.
# Usage: verify_unit_test.sh SYSTEMD_ANALYZE UNIT
set -u
analyze=$1
unit=$2

fail() { echo "FAIL: $*" >&2; exit 1; }

[[ -f "$unit" ]] || fail "no unit at $unit"
out=$("$analyze" verify "$unit" 2>&1)
rc=$?
if ((rc != 0)) || [[ -n "$out" ]]; then
  printf '%s\n' "$out" >&2
  fail "systemd-analyze verify $unit: exit status $rc, output above"
fi

# Restarts without an error to programs (issue 10): systemd must leave the serving processes and
# the holder alone on a restart, and keep the volumes' fds for a crashed service.
for line in KillMode=process FileDescriptorStoreMax=8192; do
  grep -qx "$line" "$unit" || fail "$unit lacks $line"
done
grep -q '^KillMode=' <(grep -vx KillMode=process "$unit") && fail "$unit sets KillMode twice"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/^LockPersonality=/LockPersonalty=/' "$unit" >"$tmp/claimfsd.service"
out=$("$analyze" verify "$tmp/claimfsd.service" 2>&1)
[[ "$out" == *"Unknown key 'LockPersonalty'"* ]] ||
  fail "systemd-analyze verify did not report a misspelt key (got: $out)"
echo "PASS: $unit"
