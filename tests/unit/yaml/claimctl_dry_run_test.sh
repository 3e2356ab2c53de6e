#!/usr/bin/env bash
# claimctl apply --dry-run=client end to end: examples pass with kubectl's lines, bad files fail
# with every error on stderr, and commands that need the daemon say so.
set -uo pipefail
claimctl=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$claimctl" apply --dry-run=client -f "$src/config/examples" >"$tmp/out" 2>"$tmp/err" ||
  fail "examples: exit $? $(cat "$tmp/err")"
for line in "persistentvolume/pv-hostpath created (dry run)" \
            "persistentvolume/pv-hostpath-label created (dry run)" \
            "persistentvolumeclaim/pvc-hostpath created (dry run)" \
            "persistentvolumeclaim/pvc-hostpath-label created (dry run)" \
            "persistentvolumeclaim/data created (dry run)" \
            "storageclass.storage.k8s.io/local created (dry run)"; do
  grep -qxF "$line" "$tmp/out" || fail "examples: missing '$line' in: $(cat "$tmp/out")"
done
[ -s "$tmp/err" ] && fail "examples: unexpected stderr: $(cat "$tmp/err")"

# A file, repeated -f, and stdin.
"$claimctl" apply --dry-run=client -f "$src/config/examples/pv-hostpath.yaml" \
  -f - <"$src/config/examples/pvc-hostpath.yaml" >"$tmp/out" 2>&1 || fail "stdin: exit $?"
[ "$(cat "$tmp/out")" = "persistentvolume/pv-hostpath created (dry run)
persistentvolumeclaim/pvc-hostpath created (dry run)" ] || fail "stdin: $(cat "$tmp/out")"

# A bad file: exit 1, every error with file:line:col, nothing created.
cat >"$tmp/pvc.yaml" <<'YAML'
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: Bad_Name
spec:
  foo: 1
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1GB
YAML
"$claimctl" apply --dry-run=client -f "$tmp/pvc.yaml" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 1 ] || fail "bad file: exit $rc"
grep -qF "pvc.yaml:4:9: metadata.name: Invalid value: \"Bad_Name\"" "$tmp/err" || fail "bad file: $(cat "$tmp/err")"
grep -qF "pvc.yaml:10:16: spec.resources.requests.storage: Invalid value: \"1GB\"" "$tmp/err" ||
  fail "bad file: $(cat "$tmp/err")"
grep -qF 'Warning: unknown field "spec.foo"' "$tmp/err" || fail "warning: $(cat "$tmp/err")"
[ -s "$tmp/out" ] && fail "bad file: created something: $(cat "$tmp/out")"

"$claimctl" apply --dry-run=client -f "$src/tests/testdata/bad/pv-reclaim-keep.yaml" 2>"$tmp/err" >/dev/null &&
  fail "testdata bad file accepted"
grep -qF 'Unsupported value: "Keep": supported values: "Delete", "Recycle", "Retain"' "$tmp/err" ||
  fail "reclaim: $(cat "$tmp/err")"

# A relative hostPath: refused at its place in the file, before any daemon is asked (the
# daemon's refusal had no file:line), by the dry run and the real apply alike.
cat >"$tmp/relative.yaml" <<'YAML'
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-relative
spec:
  capacity:
    storage: 1Gi
  accessModes: [ReadWriteOnce]
  hostPath:
    path: data/pv
YAML
for mode in client none; do
  CLAIMFS_SOCKET=$tmp/none.sock "$claimctl" apply --dry-run=$mode -f "$tmp/relative.yaml" \
    >"$tmp/out" 2>"$tmp/err" && fail "relative hostPath ($mode) accepted"
  [ "$(cat "$tmp/err")" = "error: $tmp/relative.yaml:10:11: spec.hostPath.path: Invalid value: \"data/pv\": must be an absolute path" ] ||
    fail "relative hostPath ($mode): $(cat "$tmp/err")"
  [ -s "$tmp/out" ] && fail "relative hostPath ($mode): $(cat "$tmp/out")"
done

# Missing path, and commands that need the daemon when none is there.
"$claimctl" apply --dry-run=client -f "$tmp/nope.yaml" 2>"$tmp/err" && fail "missing file accepted"
grep -qF 'the path' "$tmp/err" || fail "missing: $(cat "$tmp/err")"
export CLAIMFS_SOCKET=$tmp/none.sock
absent="cannot connect to claimfsd at $tmp/none.sock: No such file or directory (is claimfsd running?)"
"$claimctl" apply -f "$src/config/examples" 2>"$tmp/err" && fail "apply without daemon succeeded"
grep -qF "$absent" "$tmp/err" || fail "apply: $(cat "$tmp/err")"
"$claimctl" get pv -o wide 2>"$tmp/err" && fail "get without daemon succeeded"
grep -qF "$absent" "$tmp/err" || fail "get: $(cat "$tmp/err")"
echo PASS
