# Container engines for claimfs's end-to-end tests, sourced by containers_test.sh: installs what
# is missing (apt-get only), starts a private dockerd or configures a private rootful Podman (own
# data root, socket, storage, config: nothing of the machine's own engine is touched), and builds
# a test image from busybox-static with `import` (nothing is pulled from a registry).
#
# Everything an engine_* function starts is recorded, and engine_cleanup stops and removes it.
# Functions fail the test (exit 1) with the reason rather than skip: an engine that cannot run
# on a machine is a finding, not a pass.
#
# Variables the caller sets before sourcing: TMP (a private temporary directory, short: Unix
# socket paths must stay under 108 bytes).

ENGINE_IMAGE=claimfs-test-image:latest
ENGINE_PACKAGES_INSTALLED=""
DOCKERD_PID=""
DOCKER_SOCK=""

engine_log() { echo "[$(date +%T)] $*" >&2; }
engine_fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Installs the Debian packages of the commands that are missing: "command:package ...".
engine_install() {
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1 && [[ " ${missing[*]} " != *" $pkg "* ]]; then
      missing+=("$pkg")
    fi
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || engine_fail "missing ${missing[*]} and no apt-get to install them"
  engine_log "installing ${missing[*]} with apt-get"
  local start=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >"$TMP/apt.log" 2>&1; then
    # A fresh machine may have no package lists yet.
    apt-get update >>"$TMP/apt.log" 2>&1
    apt-get install -y --no-install-recommends "${missing[@]}" >>"$TMP/apt.log" 2>&1 ||
      engine_fail "apt-get install ${missing[*]} failed: $(tail -5 "$TMP/apt.log")"
  fi
  ENGINE_PACKAGES_INSTALLED+=" ${missing[*]}"
  engine_log "installed ${missing[*]} in $((SECONDS - start)) s"
}

# A root file system of busybox-static: /bin/busybox and the applets the tests run.
engine_rootfs() {
  local root=$1
  local busybox
  busybox=$(command -v busybox) || engine_fail "busybox is not installed"
  # The image has no libc: the binary must be the static one (busybox-static).
  if ldd "$busybox" >/dev/null 2>&1; then
    [[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 && busybox=/bin/busybox ||
      engine_fail "$busybox is dynamically linked; install busybox-static"
  fi
  mkdir -p "$root/bin" "$root/data" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/etc"
  cp "$busybox" "$root/bin/busybox"
  local applet
  for applet in sh dd df ls cat sleep id touch rm mkdir stat echo test true head wc grep; do
    ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nuser:x:1000:\n' >"$root/etc/group"
  tar -C "$root" -cf "$TMP/rootfs.tar" .
}

# ---- Docker

docker_cli() { docker -H "unix://$DOCKER_SOCK" "$@"; }

# Starts dockerd with its own data root, exec root and socket; overlay2, else vfs.
engine_start_docker() {
  engine_install dockerd:docker.io docker:docker.io runc:runc containerd:containerd \
    busybox:busybox-static jq:jq
  local dir=$TMP/docker
  mkdir -p "$dir"
  DOCKER_SOCK=$dir/docker.sock
  echo '{}' >"$dir/daemon.json"
  local driver start=$SECONDS
  for driver in overlay2 vfs; do
    rm -rf "$dir/data" "$dir/exec"
    dockerd --config-file "$dir/daemon.json" --iptables=false --ip-masq=false --bridge=none \
      --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
      -H "unix://$DOCKER_SOCK" --storage-driver "$driver" --log-level warn \
      >"$dir/dockerd-$driver.log" 2>&1 &
    DOCKERD_PID=$!
    local i
    for i in $(seq 300); do
      kill -0 "$DOCKERD_PID" 2>/dev/null || break
      docker_cli info >/dev/null 2>&1 && break
      sleep 0.1
    done
    if kill -0 "$DOCKERD_PID" 2>/dev/null && docker_cli info >/dev/null 2>&1; then
      engine_log "dockerd $(docker_cli version -f '{{.Server.Version}}') is up with $driver" \
        "in $((SECONDS - start)) s"
      break
    fi
    engine_log "dockerd did not start with $driver: $(tail -3 "$dir/dockerd-$driver.log")"
    engine_stop_docker
    [[ $driver == vfs ]] && engine_fail "dockerd cannot run here; its log:
$(tail -20 "$dir/dockerd-overlay2.log")
---
$(tail -20 "$dir/dockerd-vfs.log")"
  done
  docker_cli import "$TMP/rootfs.tar" "$ENGINE_IMAGE" >/dev/null ||
    engine_fail "docker import of the test image failed"
}

engine_stop_docker() {
  [[ -n "$DOCKERD_PID" ]] || return 0
  local ids
  ids=$(docker_cli ps -aq 2>/dev/null)
  [[ -n "$ids" ]] && docker_cli rm -f $ids >/dev/null 2>&1
  kill "$DOCKERD_PID" 2>/dev/null
  local i
  for i in $(seq 150); do
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$DOCKERD_PID" 2>/dev/null
  wait "$DOCKERD_PID" 2>/dev/null
  DOCKERD_PID=""
  # dockerd's own containerd, if it outlived it (by the pid file dockerd gave it).
  local pidfile=$TMP/docker/exec/containerd/containerd.pid pid
  if [[ -f $pidfile ]]; then
    pid=$(cat "$pidfile")
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
}

# ---- Podman (rootful, one-shot commands: nothing keeps running between them)

podman_cli() { podman "$@"; }

# Writes a private containers.conf and storage.conf: runc, cgroupfs, no network, file events,
# the volume plugin `$1` at socket `$2`.
engine_start_podman() {
  local plugin=$1 socket=$2
  engine_install podman:podman runc:runc conmon:conmon busybox:busybox-static jq:jq
  local dir=$TMP/podman
  mkdir -p "$dir/tmp"
  # Podman keeps a blob cache in /var/lib/containers/cache whatever the storage config says.
  [[ -e /var/lib/containers ]] || ENGINE_MADE_VAR_LIB_CONTAINERS=1
  local driver start=$SECONDS nproc
  nproc=$(ulimit -Hu)
  [[ $nproc == unlimited || $nproc -gt 4096 ]] && nproc=4096
  for driver in overlay vfs; do
    rm -rf "$dir/graph" "$dir/run"
    # Podman raises nofile and nproc for rootful containers by default; without
    # CAP_SYS_RESOURCE (some CI sandboxes) runc cannot, so ask for little.
    cat >"$dir/containers.conf" <<EOF
[containers]
default_ulimits = [ "nofile=1024:1024", "nproc=$nproc:$nproc" ]
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/events.log"
tmp_dir = "$dir/tmp"

[network]
network_config_dir = "$dir/networks"

[engine.volume_plugins]
$plugin = "$socket"
EOF
    cat >"$dir/storage.conf" <<EOF
[storage]
driver = "$driver"
graphroot = "$dir/graph"
runroot = "$dir/run"
EOF
    export CONTAINERS_CONF=$dir/containers.conf
    export CONTAINERS_STORAGE_CONF=$dir/storage.conf
    if podman_cli info >"$dir/info-$driver.log" 2>&1 &&
      podman_cli import "$TMP/rootfs.tar" "localhost/$ENGINE_IMAGE" >>"$dir/info-$driver.log" 2>&1 &&
      podman_cli run --rm --network none "localhost/$ENGINE_IMAGE" true >>"$dir/info-$driver.log" 2>&1; then
      engine_log "podman $(podman_cli version -f '{{.Client.Version}}') runs with $driver" \
        "in $((SECONDS - start)) s"
      PODMAN_READY=1
      return 0
    fi
    engine_log "podman does not run with $driver: $(tail -3 "$dir/info-$driver.log")"
    engine_stop_podman
  done
  engine_fail "podman cannot run here:
$(tail -20 "$dir/info-overlay.log")
---
$(tail -20 "$dir/info-vfs.log")"
}

engine_stop_podman() {
  [[ -n "${CONTAINERS_CONF:-}" ]] || return 0
  podman_cli rm -af -t 0 >/dev/null 2>&1
  podman_cli volume rm -af >/dev/null 2>&1
  podman_cli rmi -af >/dev/null 2>&1
  # Not `podman system reset`: it would also clear the machine's network definitions. Storage
  # mounts go with engine_unmount_all and the temporary directory.
  PODMAN_READY=""
  if [[ -n "${ENGINE_MADE_VAR_LIB_CONTAINERS:-}" ]]; then
    rm -rf /var/lib/containers/cache
    rmdir /var/lib/containers 2>/dev/null
  fi
}

# Unmounts anything left under the temporary directory, deepest first.
engine_unmount_all() {
  local m
  for m in $(findmnt -rn -o TARGET | grep "^$TMP/" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
}
