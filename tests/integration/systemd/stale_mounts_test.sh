#!/bin/bash
# The unit's ExecStartPre= detaches claimfs mounts a killed daemon left under the mount root,
# deepest first, and touches nothing else: not a live claimfs mount outside the mount root, not
# other file systems. The command is taken from the unit as systemd would run it ($$ -> $), with
# the mount root /run/claimfs/claims/ moved to a temporary directory.
# Usage: stale_mounts_test.sh UNIT CLAIMFS_BINARY
set -u
unit=$1
claimfs=$2

fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -e /dev/fuse ]] || { echo "SKIP: /dev/fuse is missing"; exit 77; }
[[ -x "$claimfs" ]] || fail "claimfs is not built: $claimfs"

tmp=$(mktemp -d /tmp/claimfs-stale.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for m in $(findmnt -rn -o TARGET | grep "^$tmp/" | sort -r); do umount -l "$m"; done
  rm -rf "$tmp"
}
trap cleanup EXIT

line=$(grep '^ExecStartPre=' "$unit") || fail "no ExecStartPre= in $unit"
[[ "$line" == "ExecStartPre=-/bin/sh -c '"*"'" ]] || fail "unexpected ExecStartPre form: $line"
# systemd expands $NAME itself (unset: empty); the shell's variables must be written $$NAME.
no_doubles=${line//'$$'/}
[[ "$no_doubles" != *'$'* ]] || fail "a single \$ in ExecStartPre= would be expanded by systemd: $line"
script=${line#"ExecStartPre=-/bin/sh -c '"}
script=${script%"'"}
script=${script//'$$'/'$'}
[[ "$script" == *"/run/claimfs/claims/"* ]] || fail "ExecStartPre does not name /run/claimfs/claims/"
script=${script//'/run/claimfs/claims/'/"$tmp/claims/"}

mkdir -p "$tmp/src" "$tmp/claims/default/a" "$tmp/claims/default/b" "$tmp/outside"
# Mounts served by claimfs in the foreground; kill -9 leaves them stale (ENOTCONN).
mount_claimfs() {
  "$claimfs" "$tmp/src" "$1" -f -o capacity=16Mi &
  pids+=($!)
  for _ in $(seq 100); do
    findmnt -rn -t fuse.claimfs -M "$1" >/dev/null && return 0
    sleep 0.05
  done
  fail "claimfs did not mount $1"
}
mount_claimfs "$tmp/claims/default/a"
kill -9 "${pids[0]}"
wait "${pids[0]}" 2>/dev/null
mount_claimfs "$tmp/claims/default/b"
kill -9 "${pids[1]}"
wait "${pids[1]}" 2>/dev/null
mount_claimfs "$tmp/outside"  # live, outside the mount root
# Another file system under the mount root is not claimfs': left alone.
mkdir -p "$tmp/claims/tmpfs"
mount -t tmpfs tmpfs "$tmp/claims/tmpfs" || fail "cannot mount a tmpfs"

stat "$tmp/claims/default/a" >/dev/null 2>&1 && fail "the killed mount still answers"

/bin/sh -c "$script" || fail "the ExecStartPre command failed"

for m in "$tmp/claims/default/a" "$tmp/claims/default/b"; do
  findmnt -rn -M "$m" >/dev/null && fail "stale mount $m is still there"
done
findmnt -rn -t fuse.claimfs -M "$tmp/outside" >/dev/null || fail "live mount outside the root was detached"
findmnt -rn -t tmpfs -M "$tmp/claims/tmpfs" >/dev/null || fail "the tmpfs under the root was detached"
echo "PASS"
