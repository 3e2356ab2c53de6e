#!/bin/bash
# The unit has no ExecStartPre= that detaches mounts: claimfsd does it itself, and only for what
# is dead under its own mount root. Here claimfsd starts (with the unit's --config form) over a
# mount root that an older claimfsd left as a plain directory holding two killed claimfs mounts,
# a live claimfs mount outside the root, and a tmpfs of someone else's inside it. Afterwards:
# the root is claimfsd's read-only tmpfs, the dead mounts are gone (their paths are EROFS for
# root, never the host disk), their empty directories are removed from the plain directory, and
# the live mount outside is untouched. A kill -9 of every claimfsd process (main, its serving
# process and the holder: nothing keeps the volume's connection) and a restart reuse the tmpfs
# and detach the volume's dead mount the same way.
# Usage: stale_mounts_test.sh UNIT CLAIMFS_BINARY CLAIMFSD_BINARY CLAIMCTL_BINARY
set -u
unit=$1
claimfs=$2
claimfsd=$3
claimctl=$4

fail() { echo "FAIL: $*" >&2; [[ -f ${tmp:-/nonexistent}/claimfsd.log ]] && cat "$tmp/claimfsd.log" >&2; exit 1; }
[[ -e /dev/fuse ]] || { echo "SKIP: /dev/fuse is missing"; exit 77; }
for b in "$claimfs" "$claimfsd" "$claimctl"; do [[ -x "$b" ]] || fail "not built: $b"; done

if grep -q '^ExecStartPre=' "$unit"; then
  fail "the unit still has an ExecStartPre=: $(grep '^ExecStartPre=' "$unit")"
fi
grep -q '^ExecStart=.* --config ' "$unit" || fail "ExecStart= does not pass --config"

tmp=$(mktemp -d /tmp/claimfs-stale.XXXXXX)
pids=()
daemon=
# The serving processes and the holder of this test's daemon (they run in its run directory).
helpers() {
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/cwd" 2>/dev/null) == "$tmp/state/run" ]] && echo "${p#/proc/}"
  done
}
cleanup() {
  [[ -n $daemon ]] && kill -9 "$daemon" 2>/dev/null
  for p in $(helpers); do kill -9 "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for m in $(findmnt -rn -o TARGET | grep "^$tmp/" | sort -r); do umount -l "$m"; done
  umount -l "$tmp/claims" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

root=$tmp/claims
mkdir -p "$tmp/src" "$root/default/a" "$root/default/b" "$tmp/outside"
chmod 0711 "$tmp"
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
mount_claimfs "$root/default/a"
kill -9 "${pids[0]}"
wait "${pids[0]}" 2>/dev/null
mount_claimfs "$root/default/b"
kill -9 "${pids[1]}"
wait "${pids[1]}" 2>/dev/null
mount_claimfs "$tmp/outside"  # live, outside the mount root
stat "$root/default/a" >/dev/null 2>&1 && fail "the killed mount still answers"

cat >"$tmp/claimfsd.yaml" <<EOF
pools:
  - name: default
    path: $tmp/pools/default
stateDir: $tmp/state
mountRoot: $root
socket:
  path: $tmp/claimfsd.sock
volumePlugin:
  enabled: false
EOF
start() {
  "$claimfsd" --config "$tmp/claimfsd.yaml" >>"$tmp/claimfsd.log" 2>&1 &
  daemon=$!
  for _ in $(seq 200); do
    "$claimctl" --socket "$tmp/claimfsd.sock" get pvc >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  fail "claimfsd did not start"
}
start

findmnt -rn -t tmpfs -M "$root" -o OPTIONS | grep -q '^ro,' || fail "the mount root is not a read-only tmpfs: $(findmnt -rn -M "$root")"
for m in "$root/default/a" "$root/default/b"; do
  findmnt -rn -M "$m" >/dev/null && fail "stale mount $m is still there"
  [[ -e $m ]] && fail "$m leads somewhere (the claimfsd tmpfs has no such directory)"
done
touch "$root/default" 2>/dev/null && fail "root could write into the mount root"
findmnt -rn -t fuse.claimfs -M "$tmp/outside" >/dev/null || fail "live mount outside the root was detached"
# The plain directory below the tmpfs: the old mountpoints are gone.
clone_dir=$tmp/below
mkdir "$clone_dir"
mount --bind "$tmp" "$clone_dir" || fail "cannot bind $tmp"
[[ -e $clone_dir/claims/default/a ]] && fail "the old mountpoint directory is left below the tmpfs"
umount "$clone_dir"

# A volume, kill -9 of everything, restart: its dead mount is replaced, the tmpfs reused.
printf 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 16Mi\n' >"$tmp/pvc.yaml"
"$claimctl" --socket "$tmp/claimfsd.sock" apply -f "$tmp/pvc.yaml" >/dev/null || fail "apply"
for _ in $(seq 100); do
  findmnt -rn -t fuse.claimfs -M "$root/default/data" >/dev/null && break
  sleep 0.05
done
echo kept >"$root/default/data/file" || fail "cannot write to the volume"
tmpfs_id=$(findmnt -rn -M "$root" -o ID)
kill -9 "$daemon" $(helpers)
wait "$daemon" 2>/dev/null
daemon=
for _ in $(seq 100); do [[ -z $(helpers) ]] && break; sleep 0.05; done
echo lost >"$root/default/data/other" 2>/dev/null && fail "a write through the dead mount succeeded"
start
[[ $(findmnt -rn -M "$root" -o ID) == "$tmpfs_id" ]] || fail "the tmpfs was not reused"
[[ $(cat "$root/default/data/file" 2>&1) == kept ]] || fail "the volume is not mounted again"
[[ $(findmnt -rn -t fuse.claimfs -M "$root/default/data" | wc -l) == 1 ]] || fail "not exactly one mount"
kill "$daemon"
wait "$daemon"
daemon=
findmnt -rn -M "$root" >/dev/null && fail "a clean stop left the tmpfs mounted"
for _ in $(seq 100); do [[ -z $(helpers) ]] && break; sleep 0.05; done
[[ -z $(helpers) ]] || fail "a clean stop left claimfsd processes: $(helpers)"
echo "PASS"
