#!/usr/bin/env python3
"""bench/restart.py: the pause a program using a volume sees when claimfsd's processes die.

Starts the real claimfsd on a fresh quick-start data directory, binds one claim, and runs a
writer that holds one file open and loops over write(4 KiB) + fsync, timing every iteration.
Then, with the writer running:
  - kill -9 of the serving process (`claimfsd: serve`), --kills times; main starts a new one,
    which adopts the volume from the holder;
  - kill -9 of main and of the serving process, then claimfsd started again (the quick start
    after a crash), --restarts times; the new main adopts the volume the holder kept;
  - SIGUSR2 (restart in place), --restarts times;
  - an upgrade: a new copy of the binary installed over the path claimfsd runs from, then
    SIGUSR2, --restarts times; the volume moves to a serving process of the new binary.
For each kind of event it reports the writer's longest iteration around the event (the pause it
saw: p50, p99 and max over the events), and the writer's iteration time without events (p50,
p99) for comparison. Any error the writer sees is reported and fails the run.

Usage: bench/restart.py [--kills N] [--restarts N] [--claimfsd PATH] [--workdir DIR]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLAIM = """apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: bench
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"""


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


def pids_named(comm, cwd_prefix):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/comm") as f:
                if f.read().strip() != comm:
                    continue
            if os.readlink(f"/proc/{name}/cwd").startswith(cwd_prefix):
                out.append(int(name))
        except OSError:
            pass
    return out


WRITER = r"""
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
out = os.fdopen(1, "w", buffering=1)
block = b"x" * 4096
while True:
    start = time.monotonic()
    try:
        os.write(fd, block)
        os.fsync(fd)
        out.write(f"{time.monotonic()} {time.monotonic() - start}\n")
    except OSError as e:
        out.write(f"error {e}\n")
        time.sleep(0.01)
"""


class Writer:
    """A writer in its own process: a process that holds a file of the volume must not be the
    one that starts claimfsd (its fork would close that file before exec, and the FLUSH waits
    for a server that only the new claimfsd can bring)."""

    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE,
                                     text=True)
        self.samples = []  # (end time, duration)
        self.errors = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("error"):
                self.errors.append(line.strip())
            else:
                end, duration = line.split()
                self.samples.append((float(end), float(duration)))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.reader.join(10)

    def worst_between(self, start, end):
        return max((d for t, d in list(self.samples) if start <= t <= end), default=0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--claimfsd", default=os.path.join(REPO, "build/bin/claimfsd"))
    ap.add_argument("--claimctl", default=None)
    ap.add_argument("--workdir", default="/var/tmp/claimfs-bench-restart")
    args = ap.parse_args()
    claimctl = args.claimctl or os.path.join(os.path.dirname(args.claimfsd), "claimctl")
    shutil.rmtree(args.workdir, ignore_errors=True)
    data = os.path.join(args.workdir, "data")
    os.makedirs(data)
    log = open(os.path.join(args.workdir, "claimfsd.log"), "ab")
    env = dict(os.environ, CLAIMFS_SOCKET=os.path.join(data, "claimfsd.sock"))

    # claimfsd runs from a copy, so that an upgrade can install another copy over it.
    binary = os.path.join(args.workdir, "bin/claimfsd")
    os.makedirs(os.path.dirname(binary))
    subprocess.run(["install", "-m", "755", args.claimfsd, binary], check=True)

    def answering():
        deadline = time.time() + 30
        while time.time() < deadline:
            if subprocess.run([claimctl, "get", "pvc"], env=env, capture_output=True).returncode == 0:
                return
            time.sleep(0.02)
        sys.exit("claimfsd does not answer; see " + log.name)

    def start():
        p = subprocess.Popen([binary, "--data-dir", data, "--kube-api", "off"],
                             stdout=log, stderr=log, start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if subprocess.run([claimctl, "get", "pvc"], env=env, capture_output=True).returncode == 0:
                return p
            time.sleep(0.02)
        sys.exit("claimfsd did not start; see " + log.name)

    main_proc = start()
    manifest = os.path.join(args.workdir, "claim.yaml")
    with open(manifest, "w") as f:
        f.write(CLAIM)
    subprocess.run([claimctl, "apply", "-f", manifest], env=env, check=True, capture_output=True)
    subprocess.run([claimctl, "wait", "--for=jsonpath={.status.phase}=Bound", "pvc/bench",
                    "--timeout=30s"], env=env, check=True, capture_output=True)
    mount = os.path.join(data, "claims/default/bench")
    writer = Writer(os.path.join(mount, "log"))
    time.sleep(1.0)
    quiet_until = time.monotonic()

    pauses = {"kill -9 of the serving process": [], "kill -9 of main and server, start again": [],
              "SIGUSR2 (restart in place)": [], "upgrade (new binary, SIGUSR2)": []}
    for _ in range(args.kills):
        servers = pids_named("claimfsd-serve", data)
        t0 = time.monotonic()
        for pid in servers:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        pauses["kill -9 of the serving process"].append(writer.worst_between(t0, time.monotonic()))
    for _ in range(args.restarts):
        t0 = time.monotonic()
        main_proc.kill()
        main_proc.wait()
        for pid in pids_named("claimfsd-serve", data):
            os.kill(pid, signal.SIGKILL)
        main_proc = start()
        time.sleep(0.5)
        pauses["kill -9 of main and server, start again"].append(
            writer.worst_between(t0, time.monotonic()))
    for event in ("SIGUSR2 (restart in place)", "upgrade (new binary, SIGUSR2)"):
        for _ in range(args.restarts):
            t0 = time.monotonic()
            if event.startswith("upgrade"):
                subprocess.run(["install", "-m", "755", args.claimfsd, binary], check=True)
            main_proc.send_signal(signal.SIGUSR2)
            time.sleep(0.3)
            answering()
            time.sleep(0.5)
            pauses[event].append(writer.worst_between(t0, time.monotonic()))
    writer.stop()
    main_proc.send_signal(signal.SIGTERM)
    main_proc.wait(60)

    quiet = [d for t, d in writer.samples if t < quiet_until]
    print(f"writer iterations: {len(writer.samples)}, errors: {len(writer.errors)}")
    print(f"| event | events | pause p50 | p99 | max |")
    print(f"|---|---|---|---|---|")
    print(f"| none (write 4 KiB + fsync) | - | {percentile(quiet, 50) * 1000:.2f} ms | "
          f"{percentile(quiet, 99) * 1000:.2f} ms | {max(quiet, default=0) * 1000:.2f} ms |")
    for event, values in pauses.items():
        print(f"| {event} | {len(values)} | {percentile(values, 50) * 1000:.0f} ms | "
              f"{percentile(values, 99) * 1000:.0f} ms | {max(values, default=0) * 1000:.0f} ms |")
    if writer.errors:
        print("errors:", writer.errors[:5])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
