#!/bin/bash
# claimfs volumes in real containers, end to end: claimfsd serves its volume plugin to a private
# dockerd (found through a spec file in /etc/docker/plugins) or to a private rootful Podman
# (containers.conf [engine.volume_plugins]), and containers use claims as named volumes and as
# bind mounts of {mountRoot}/{namespace}/{claim}.
#
# Usage: containers_test.sh docker|podman CLAIMFSD
# Needs root, /dev/fuse and apt-get for whatever engine packages are missing. Never skips: an
# engine that cannot run here fails the test with its log.
set -u
engine=$1
claimfsd=$2
[[ $engine == docker || $engine == podman ]] || { echo "usage: $0 docker|podman CLAIMFSD" >&2; exit 2; }

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
[[ $(id -u) -eq 0 ]] || fail "the container tests need root"
[[ -e /dev/fuse ]] || fail "/dev/fuse is missing"
[[ -x "$claimfsd" ]] || fail "claimfsd is not built: $claimfsd"

TMP=$(mktemp -d /tmp/cfs-ct.XXXXXX)
chmod 755 "$TMP"
source "$(dirname "$0")/engines.sh"

ID=$$
DRIVER=claimfs-test-$ID
DATA=$TMP/cfs
API_SOCK=$DATA/api.sock
PLUGIN_SOCK=$DATA/plugin.sock
MOUNT_ROOT=$DATA/claims
SPEC=/etc/docker/plugins/$DRIVER.spec
CLAIMFSD_PID=""
T0=$SECONDS

cleanup() {
  local rc=$?
  set +e
  [[ $rc -ne 0 && -f $DATA/claimfsd.log ]] && { echo "--- claimfsd log (last 40 lines)"; tail -40 "$DATA/claimfsd.log"; } >&2
  [[ $engine == docker ]] && engine_stop_docker
  [[ $engine == podman ]] && engine_stop_podman
  rm -f "$SPEC"
  if [[ -n "$CLAIMFSD_PID" ]]; then
    kill "$CLAIMFSD_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$CLAIMFSD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$CLAIMFSD_PID" 2>/dev/null
    wait "$CLAIMFSD_PID" 2>/dev/null
  fi
  engine_unmount_all
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT

step() { engine_log "$engine: $*"; }

# ---- helpers

# api METHOD PATH [BODY [CONTENT-TYPE]]: the HTTP code in $API_CODE, the body in $TMP/api.out
# (not a $(...) of its own, so that API_CODE reaches the caller).
API_CODE=""
api() {
  local method=$1 path=$2 body=${3:-} type=${4:-application/json}
  local args=(-s -o "$TMP/api.out" -w '%{http_code}' --unix-socket "$API_SOCK" -X "$method")
  [[ -n "$body" ]] && args+=(-H "Content-Type: $type" --data-binary "$body")
  API_CODE=$(curl "${args[@]}" "http://claimfsd$path")
}
claim_url() { echo "/api/v1/namespaces/$1/persistentvolumeclaims/$2"; }
# An object as JSON on stdout; fails (printing nothing) when the API does not answer 200.
get_object() {
  api GET "$1"
  [[ $API_CODE == 200 ]] && cat "$TMP/api.out"
}
claim() { get_object "$(claim_url "$1" "$2")"; }
pv() { get_object "/api/v1/persistentvolumes/$1"; }
leases() {
  get_object "/apis/claimfs.io/v1/namespaces/$1/persistentvolumeclaims/$2/leases" |
    jq '.items | length'
}
# The backing directory of a PV.
pv_dir() { pv "$1" | jq -r '.spec.hostPath.path // .spec.local.path // empty'; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  while ((SECONDS < deadline)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  "$@" >/dev/null 2>&1 || fail "$what: not within $seconds s"
}

eng() { if [[ $engine == docker ]]; then docker_cli "$@"; else podman_cli "$@"; fi; }
IMAGE=$ENGINE_IMAGE
[[ $engine == podman ]] && IMAGE=localhost/$ENGINE_IMAGE
run() { eng run --network none "$@"; }
# Kills and removes a container at once (podman rm -f would wait 10 s for `sleep` to take SIGTERM).
remove_container() {
  if [[ $engine == docker ]]; then docker_cli rm -f "$1"; else podman_cli rm -f -t 0 "$1"; fi
}
# The volume names the engine lists. Podman lists only volumes in its own database; `podman
# volume reload` adds those its plugins list (claims made with the API, say).
volume_names() {
  [[ $engine == podman ]] && podman_cli volume reload >/dev/null
  eng volume ls --format '{{.Name}}'
}

# The 1K-blocks column of `df -P` (one line per file system) from its output on stdin.
df_blocks() { awk 'END { print $2 }'; }

claim_gone() { ! claim "$1" "$2" >/dev/null; }
claim_bound_and_mounted() {
  [[ $(claim "$1" "$2" | jq -r .status.phase) == Bound ]] && mountpoint -q "$MOUNT_ROOT/$1/$2"
}

# ---- setup

step "setup"
mkdir -p "$TMP/rootfs"
engine_install busybox:busybox-static jq:jq curl:curl
engine_rootfs "$TMP/rootfs"

mkdir -p "$DATA"
cat >"$DATA/claimfsd.yaml" <<EOF
pools:
  - name: default
    path: $DATA/pools/default
stateDir: $DATA/state
mountRoot: $MOUNT_ROOT
socket:
  path: $API_SOCK
volumePlugin:
  enabled: true
  socket: $PLUGIN_SOCK
  namespace: docker
EOF
"$claimfsd" --config "$DATA/claimfsd.yaml" >"$DATA/claimfsd.log" 2>&1 &
CLAIMFSD_PID=$!
wait_for 15 "claimfsd serving its API and plugin sockets" test -S "$API_SOCK" -a -S "$PLUGIN_SOCK"

if [[ $engine == docker ]]; then
  mkdir -p /etc/docker/plugins
  echo "unix://$PLUGIN_SOCK" >"$SPEC"
  engine_start_docker
else
  engine_start_podman "$DRIVER" "$PLUGIN_SOCK"
fi
SETUP_SECONDS=$((SECONDS - T0))
T1=$SECONDS

# ---- a named volume through the plugin: quota, df, removal while in use, Delete

step "volume create with size=64Mi"
out=$(eng volume create --driver "$DRIVER" --opt size=64Mi v1 2>&1) || fail "volume create v1: $out"
[[ $(claim docker v1 | jq -r .spec.resources.requests.storage) == 64Mi ]] ||
  fail "volume v1 made no 64Mi claim docker/v1: $(claim docker v1)"
eng volume ls --format '{{.Name}} {{.Driver}}' | grep -qx "v1 $DRIVER" ||
  fail "volume ls does not show v1 of $DRIVER: $(eng volume ls 2>&1)"

step "writing 100M into the 64Mi volume fails with ENOSPC"
out=$(run --rm -v v1:/data "$IMAGE" sh -c 'dd if=/dev/zero of=/data/f bs=1M count=100' 2>&1) &&
  fail "dd of 100M into a 64Mi volume succeeded: $out"
[[ $out == *"No space left on device"* ]] || fail "dd failed without ENOSPC: $out"

step "df in a container shows the volume's size"
out=$(run --rm -v v1:/data "$IMAGE" df -P /data 2>&1) || fail "df /data: $out"
[[ $(df_blocks <<<"$out") == 65536 ]] || fail "df /data does not show 65536 1K-blocks: $out"
wait_for 10 "the lease of the exited container released" test "$(leases docker v1)" = 0

step "volume rm while a container uses it is refused"
run -d --name user1 -v v1:/data "$IMAGE" sleep 60 >/dev/null || fail "run -d user1"
out=$(eng volume rm v1 2>&1) && fail "volume rm v1 succeeded while user1 runs"
[[ $out == *"in use"* || $out == *"being used"* ]] || fail "volume rm v1 refused without saying why: $out"
c=$(claim docker v1) || fail "claim docker/v1 is gone while user1 runs"
[[ $(jq -r '.metadata.deletionTimestamp // ""' <<<"$c") == "" ]] || fail "claim docker/v1 is Terminating"
[[ $(leases docker v1) -ge 1 ]] || fail "no lease on docker/v1 while user1 runs"

step "after the container is gone, volume rm deletes the claim and its data (Delete)"
volume=$(claim docker v1 | jq -r .spec.volumeName)
dir=$(pv_dir "$volume")
[[ -n "$dir" && -d "$dir" ]] || fail "no backing directory for $volume: $(pv "$volume")"
remove_container user1 >/dev/null 2>&1 || fail "rm -f user1"
wait_for 10 "the lease of user1 released" test "$(leases docker v1)" = 0
out=$(eng volume rm v1 2>&1) || fail "volume rm v1 after user1 exited: $out"
wait_for 10 "claim docker/v1 deleted" claim_gone docker v1
wait_for 10 "volume $volume deleted" eval "! pv $volume"
wait_for 10 "backing directory $dir removed" test ! -e "$dir"
volume_names | grep -qx v1 && fail "volume ls still shows v1"

# ---- owner options

step "--opt uid/gid/mode: the volume root belongs to user 1000"
out=$(eng volume create --driver "$DRIVER" --opt size=16Mi --opt uid=1000 --opt gid=1000 \
  --opt mode=0750 v2 2>&1) || fail "volume create v2: $out"
# Mounted where the image has no directory: over an image directory, the engines copy its
# contents, owner and mode into an empty volume (":nocopy" prevents it).
out=$(run --rm --user 1000:1000 -v v2:/owned "$IMAGE" sh -c 'touch /owned/mine && stat -c "%u %g %a" /owned /owned/mine' 2>&1) ||
  fail "user 1000 cannot write to a uid=1000 volume: $out"
[[ $out == "1000 1000 750"* ]] || fail "the volume root is not 1000:1000 0750: $out"
out=$(run --rm --user 1001:1001 -v v2:/owned "$IMAGE" touch /owned/other 2>&1) &&
  fail "user 1001 wrote into a 0750 volume of 1000:1000"
[[ $out == *"Permission denied"* ]] || fail "user 1001 failed without EACCES: $out"
eng volume rm v2 >/dev/null 2>&1 || fail "volume rm v2"

# ---- Retain keeps the data

step "--opt reclaimPolicy=Retain: after volume rm the PV stays Released with the data"
out=$(eng volume create --driver "$DRIVER" --opt size=16Mi --opt reclaimPolicy=Retain v3 2>&1) ||
  fail "volume create v3: $out"
out=$(run --rm -v v3:/data "$IMAGE" sh -c 'echo kept > /data/keep' 2>&1) || fail "writing to v3: $out"
volume=$(claim docker v3 | jq -r .spec.volumeName)
dir=$(pv_dir "$volume")
out=$(eng volume rm v3 2>&1) || fail "volume rm v3: $out"
wait_for 10 "claim docker/v3 deleted" claim_gone docker v3
wait_for 10 "volume $volume Released" eval "[[ \$(pv $volume | jq -r .status.phase) == Released ]]"
[[ $(pv "$volume" | jq -r .spec.persistentVolumeReclaimPolicy) == Retain ]] ||
  fail "volume $volume is not Retain: $(pv "$volume")"
[[ $(cat "$dir/keep" 2>&1) == kept ]] || fail "the data of a Retain volume is gone: $dir"
api DELETE "/api/v1/persistentvolumes/$volume"

# ---- a named volume deleted with claimctl (the API) while a container uses it

step "a named volume deleted with the API while in use stays Terminating, then goes with its container"
out=$(eng volume create --driver "$DRIVER" --opt size=16Mi v4 2>&1) || fail "volume create v4: $out"
run -d --name user4 -v v4:/data "$IMAGE" sleep 60 >/dev/null || fail "run -d user4"
volume=$(claim docker v4 | jq -r .spec.volumeName)
dir=$(pv_dir "$volume")
api DELETE "$(claim_url docker v4)"
[[ $API_CODE == 200 ]] || fail "DELETE claim docker/v4: $API_CODE $(cat "$TMP/api.out")"
sleep 2
c=$(claim docker v4) || fail "claim docker/v4 vanished while user4 uses it"
[[ $(jq -r '.metadata.deletionTimestamp // ""' <<<"$c") != "" ]] || fail "claim docker/v4 is not Terminating"
eng exec user4 sh -c 'echo still > /data/x' || fail "user4 cannot write to its volume any more"
# The engine unmounts the volume when the container goes, which releases its lease.
remove_container user4 >/dev/null 2>&1 || fail "rm -f user4"
wait_for 10 "claim docker/v4 deleted after user4 went" claim_gone docker v4
wait_for 10 "backing directory $dir removed" test ! -e "$dir"
[[ $engine == podman ]] && podman_cli volume rm -f v4 >/dev/null 2>&1

# ---- a claim made with the API, bind-mounted: expansion, protection, deletion

step "a claim of namespace default, bind-mounted into a container"
api POST /api/v1/namespaces/default/persistentvolumeclaims '{"apiVersion":"v1","kind":"PersistentVolumeClaim",
  "metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],
  "resources":{"requests":{"storage":"64Mi"}}}}'
[[ $API_CODE == 201 ]] || fail "POST claim default/data: $API_CODE $(cat "$TMP/api.out")"
wait_for 10 "claim default/data Bound and mounted" claim_bound_and_mounted default data
volume_names | grep -qx default.data ||
  fail "volume ls does not show the API's claim as default.data: $(eng volume ls 2>&1)"
volume=$(claim default data | jq -r .spec.volumeName)
dir=$(pv_dir "$volume")
run -d --name binder -v "$MOUNT_ROOT/default/data:/data" "$IMAGE" sleep 60 >/dev/null ||
  fail "run -d binder with a bind mount"
out=$(eng exec binder df -P /data 2>&1) || fail "exec df: $out"
[[ $(df_blocks <<<"$out") == 65536 ]] || fail "df /data in binder does not show 65536: $out"

step "the claim's users name the container that bind-mounts it (describe's Used By)"
id=$(eng inspect -f '{{.Id}}' binder 2>&1) || fail "inspect binder: $id"
api GET /apis/claimfs.io/v1/namespaces/default/persistentvolumeclaims/data/users
[[ $API_CODE == 200 ]] || fail "GET users of default/data: $API_CODE $(cat "$TMP/api.out")"
jq -e --arg id "$id" '[.items[] | select(.container == $id)] | length > 0' "$TMP/api.out" >/dev/null ||
  fail "container $id is not among the users of default/data: $(cat "$TMP/api.out")"

step "expanding the claim to 128Mi shows in the running container"
api PATCH "$(claim_url default data)" '{"spec":{"resources":{"requests":{"storage":"128Mi"}}}}' \
  application/merge-patch+json
[[ $API_CODE == 200 ]] || fail "PATCH claim default/data to 128Mi: $API_CODE $(cat "$TMP/api.out")"
df_is() { [[ $(eng exec binder df -P /data 2>/dev/null | df_blocks) == "$1" ]]; }
wait_for 10 "df /data in binder showing 131072" df_is 131072

step "applying unrelated objects and a SIGHUP leave the container's volume working"
api POST /api/v1/persistentvolumes '{"apiVersion":"v1","kind":"PersistentVolume",
  "metadata":{"name":"unrelated"},"spec":{"capacity":{"storage":"1Gi"},
  "accessModes":["ReadWriteOnce"],"storageClassName":"none","hostPath":{"path":"/tmp/claimfs-unrelated"}}}'
[[ $API_CODE == 201 ]] || fail "POST pv unrelated: $API_CODE $(cat "$TMP/api.out")"
api POST /api/v1/namespaces/default/persistentvolumeclaims '{"apiVersion":"v1","kind":"PersistentVolumeClaim",
  "metadata":{"name":"other"},"spec":{"accessModes":["ReadWriteOnce"],
  "resources":{"requests":{"storage":"16Mi"}}}}'
[[ $API_CODE == 201 ]] || fail "POST claim default/other: $API_CODE $(cat "$TMP/api.out")"
wait_for 10 "claim default/other Bound and mounted" claim_bound_and_mounted default other
kill -HUP "$CLAIMFSD_PID"
sleep 1.5  # the reload and at least one control-loop pass
kill -0 "$CLAIMFSD_PID" || fail "claimfsd exited on SIGHUP"
eng exec binder sh -c 'echo after-reload > /data/reload && cat /data/reload' | grep -qx after-reload ||
  fail "the container cannot write its volume after unrelated applies and a SIGHUP"
df_is 131072 || fail "df /data in binder changed after unrelated applies and a SIGHUP"
api DELETE "$(claim_url default other)"
api DELETE /api/v1/persistentvolumes/unrelated

step "a running container keeps reading and writing its volume across claimfsd restarts"
# The claimfsd processes of this test (main's serving processes and holder run in its run dir).
serving_processes() {
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/cwd" 2>/dev/null) == "$DATA/state/run" && $(cat "$p/comm" 2>/dev/null) == claimfsd-serve ]] &&
      echo "${p#/proc/}"
  done
}
api_up() { api GET /api/v1/namespaces/default/persistentvolumeclaims && [[ $API_CODE == 200 ]]; }
eng exec -d binder sh -c 'i=0; while [ ! -e /tmp/stop ]; do
    echo "$i" >>/data/across || echo "write $i" >>/tmp/errors
    tail -n 1 /data/across >/dev/null || echo "read $i" >>/tmp/errors
    i=$((i + 1)); done; touch /tmp/stopped' || fail "cannot start the loop in binder"
sleep 1
kill -USR2 "$CLAIMFSD_PID"  # restart in place: a new claimfsd program, nothing unmounted
sleep 1
wait_for 15 "claimfsd answering after SIGUSR2" api_up
# A crash of main and of the process serving the volume; the holder keeps its connection.
kill -9 "$CLAIMFSD_PID" $(serving_processes)
wait "$CLAIMFSD_PID" 2>/dev/null
"$claimfsd" --config "$DATA/claimfsd.yaml" >>"$DATA/claimfsd.log" 2>&1 &
CLAIMFSD_PID=$!
wait_for 15 "claimfsd answering after a kill -9 and a new start" api_up
sleep 1
eng exec binder touch /tmp/stop
wait_for 15 "the loop in binder ending" eng exec binder test -e /tmp/stopped
errors=$(eng exec binder sh -c 'cat /tmp/errors 2>/dev/null | head -5')
[[ -z $errors ]] || fail "binder saw errors on its volume across the restarts: $errors"
lines=$(eng exec binder sh -c 'wc -l </data/across')
[[ $lines -gt 100 ]] || fail "binder wrote only $lines lines across the restarts"

step "deleting the claim while the container runs leaves it Terminating"
api DELETE "$(claim_url default data)"
[[ $API_CODE == 200 ]] || fail "DELETE claim default/data: $API_CODE"
sleep 3
c=$(claim default data) || fail "claim default/data vanished while binder holds its mount"
[[ $(jq -r '.metadata.deletionTimestamp // ""' <<<"$c") != "" ]] ||
  fail "claim default/data has no deletionTimestamp: $c"
eng exec binder sh -c 'echo still > /data/x' || fail "binder cannot write to its volume any more"

step "removing the container completes the deletion"
remove_container binder >/dev/null 2>&1 || fail "rm -f binder"
wait_for 10 "claim default/data deleted after binder went" claim_gone default data
wait_for 10 "backing directory $dir removed" test ! -e "$dir"

TEST_SECONDS=$((SECONDS - T1))
engine_log "$engine: PASS (setup ${SETUP_SECONDS} s${ENGINE_PACKAGES_INSTALLED:+, installed$ENGINE_PACKAGES_INSTALLED}; tests ${TEST_SECONDS} s)"
