#!/usr/bin/env python3
"""bench/claims.py: how fast claimfsd turns claims into mounted volumes, and what 200 cost.

Starts the real claimfsd on a fresh quick-start data directory and measures, through its API:
  - apply → Bound-and-mounted, for 1 claim at a time (repeated --single-runs times) and for N
    claims posted at once (p50, p99, max);
  - RSS and threads at 0, 200 and N volumes, of main and of its serving processes
    (`claimfsd: serve N volumes`), summed and per role;
  - with N volumes mounted, a kill -9 of main and a new start: the time until its API answers
    (the serving processes keep the volumes; nothing is mounted again);
  - delete → unmounted and data gone, for 1 claim at a time and when all N are deleted at once.
A claim counts as Bound-and-mounted when the API shows it Bound and its mountpoint is a
claimfs mount in /proc/self/mountinfo; as deleted when the claim is gone from the API, its
mount is gone and its pool directory is gone. Polling every 5 ms bounds the resolution.

Usage: bench/claims.py [--claims N] [--single-runs N] [--claimfsd PATH] [--workdir DIR] [--readme]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.socket_path)
        self.sock = sock


class Api:
    def __init__(self, path):
        self.path = path
        self.conn = UnixConnection(path)

    def call(self, method, target, body=None):
        for attempt in range(2):
            try:
                data = json.dumps(body) if body is not None else None
                headers = {"Content-Type": "application/json"} if data else {}
                self.conn.request(method, target, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
                return resp.status, json.loads(payload) if payload.startswith(b"{") else payload
            except (http.client.HTTPException, ConnectionError, BrokenPipeError):
                self.conn.close()
                self.conn = UnixConnection(self.path)
                if attempt:
                    raise


def claim_manifest(name, size):
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def claimfs_mounts():
    points = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "fuse.claimfs":
                points.add(fields[4].replace("\\040", " "))
    return points


def percentile(values, p):
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1)))))
    return ordered[k]


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def roles(main_pid, workdir):
    """{"main": (rss_kib, threads, processes), "serve": (...)} of main and its servers."""
    def add(acc, role, pid):
        st = proc_status(pid)
        rss, threads, n = acc.get(role, (0, 0, 0))
        acc[role] = (rss + int(st["VmRSS"].split()[0]), threads + int(st["Threads"]), n + 1)
    acc = {}
    add(acc, "main", main_pid)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "claimfsd-serve":
                    continue
            if not os.readlink(f"/proc/{entry}/cwd").startswith(workdir + "/"):
                continue
            add(acc, "serve", int(entry))
        except OSError:
            continue
    acc.setdefault("serve", (0, 0, 0))
    return acc


def fmt_roles(r):
    rss = sum(v[0] for v in r.values())
    threads = sum(v[1] for v in r.values())
    return (f"{rss / 1024:.0f} MiB, {threads} threads (main {r['main'][0] / 1024:.0f} MiB, "
            f"{r['main'][1]} threads; {r['serve'][2]} serve: {r['serve'][0] / 1024:.0f} MiB, "
            f"{r['serve'][1]} threads)")


def apply_and_wait(api, data_dir, names, size):
    """Posts every claim, then polls; returns seconds from each claim's POST to mounted."""
    posted = {}
    for name in names:
        posted[name] = time.monotonic()
        status, body = api.call("POST", "/api/v1/namespaces/default/persistentvolumeclaims",
                                claim_manifest(name, size))
        if status != 201:
            sys.exit(f"creating claim {name}: HTTP {status}: {body}")
    done = {}
    deadline = time.monotonic() + 600
    while len(done) < len(names):
        if time.monotonic() > deadline:
            sys.exit(f"only {len(done)} of {len(names)} claims were mounted after 600 s")
        status, body = api.call("GET", "/api/v1/namespaces/default/persistentvolumeclaims")
        now = time.monotonic()
        mounts = claimfs_mounts()
        for item in body["items"]:
            name = item["metadata"]["name"]
            if name in posted and name not in done and item.get("status", {}).get("phase") == "Bound":
                if f"{data_dir}/claims/default/{name}" in mounts:
                    done[name] = now - posted[name]
        time.sleep(0.005)
    return [done[n] for n in names]


def delete_and_wait(api, data_dir, names):
    volumes = {}
    status, body = api.call("GET", "/api/v1/namespaces/default/persistentvolumeclaims")
    for item in body["items"]:
        volumes[item["metadata"]["name"]] = item["spec"].get("volumeName", "")
    asked = {}
    for name in names:
        asked[name] = time.monotonic()
        status, body = api.call("DELETE", f"/api/v1/namespaces/default/persistentvolumeclaims/{name}")
        if status != 200:
            sys.exit(f"deleting claim {name}: HTTP {status}: {body}")
    done = {}
    deadline = time.monotonic() + 600
    while len(done) < len(names):
        if time.monotonic() > deadline:
            sys.exit(f"only {len(done)} of {len(names)} claims were reclaimed after 600 s")
        status, body = api.call("GET", "/api/v1/namespaces/default/persistentvolumeclaims")
        now = time.monotonic()
        present = {item["metadata"]["name"] for item in body["items"]}
        mounts = claimfs_mounts()
        for name in names:
            if name in done or name in present:
                continue
            if f"{data_dir}/claims/default/{name}" in mounts:
                continue
            if os.path.exists(f"{data_dir}/pools/default/{volumes[name]}"):
                continue
            done[name] = now - asked[name]
        time.sleep(0.005)
    return [done[n] for n in names]


def fmt_ms(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--single-runs", type=int, default=50,
                        help="how often one claim is applied and deleted on its own")
    parser.add_argument("--claimfsd", default=os.path.join(REPO, "build/bin/claimfsd"))
    parser.add_argument("--workdir", default="/var/tmp/claimfs-bench-claims")
    parser.add_argument("--size", default="64Mi")
    parser.add_argument("--readme", action="store_true", help="write the table into bench/README.md")
    args = parser.parse_args()

    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    log = open(os.path.join(args.workdir, "claimfsd.log"), "w")
    daemon = subprocess.Popen([args.claimfsd, "--data-dir", args.workdir, "--log-level", "warn"],
                              stderr=log)
    sock = os.path.join(args.workdir, "claimfsd.sock")
    try:
        for _ in range(600):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        api = Api(sock)
        base = proc_status(daemon.pid)

        single, single_deletes = [], []
        for i in range(args.single_runs):
            name = f"single-{i:03d}"
            single += apply_and_wait(api, args.workdir, [name], args.size)
            single_deletes += delete_and_wait(api, args.workdir, [name])
        names = [f"c{i:04d}" for i in range(args.claims)]
        base_roles = roles(daemon.pid, args.workdir)
        at_200 = None
        t0 = time.monotonic()
        if args.claims > 200:
            many = apply_and_wait(api, args.workdir, names[:200], args.size)
            time.sleep(2)
            at_200 = roles(daemon.pid, args.workdir)
            t0 += 2
            many += apply_and_wait(api, args.workdir, names[200:], args.size)
        else:
            many = apply_and_wait(api, args.workdir, names, args.size)
        all_mounted = time.monotonic() - t0
        time.sleep(2)  # settle: idle threads exit, the control loop is idle
        loaded = proc_status(daemon.pid)
        loaded_roles = roles(daemon.pid, args.workdir)
        # kill -9 of main with every volume mounted, then a new main: how long until it serves
        # its API again (it takes the serving processes over; nothing is mounted again).
        daemon.kill()
        daemon.wait()
        t1 = time.monotonic()
        daemon = subprocess.Popen([args.claimfsd, "--data-dir", args.workdir, "--log-level", "warn"],
                                  stderr=log)
        api = Api(sock)
        while True:
            try:
                status, body = api.call("GET", "/api/v1/namespaces/default/persistentvolumeclaims")
                if status == 200 and sum(1 for i in body["items"]
                                         if i.get("status", {}).get("phase") == "Bound") == len(names):
                    break
            except OSError:
                pass
            time.sleep(0.01)
        restart = time.monotonic() - t1
        still = sum(1 for p in claimfs_mounts() if p.startswith(args.workdir + "/claims/"))
        deletes = delete_and_wait(api, args.workdir, names)

        rows = [
            ("apply → Bound and mounted, 1 claim", fmt_ms(statistics.median(single)),
             fmt_ms(percentile(single, 99)), f"{len(single)} claims one after another"),
            ("delete → unmounted and data gone, 1 claim", fmt_ms(statistics.median(single_deletes)),
             fmt_ms(percentile(single_deletes, 99)), f"max {fmt_ms(max(single_deletes))}"),
            (f"apply → Bound and mounted, {args.claims} claims at once",
             fmt_ms(statistics.median(many)), fmt_ms(percentile(many, 99)),
             f"all {args.claims} in {all_mounted:.1f} s"),
            (f"delete → unmounted and data gone, {args.claims} at once",
             fmt_ms(statistics.median(deletes)), fmt_ms(percentile(deletes, 99)),
             f"max {fmt_ms(max(deletes))}"),
            (f"kill -9 of main → new main serves its API, {args.claims} volumes", fmt_ms(restart), "",
             f"{still} mounts kept"),
        ]
        table = ["| Measure | p50 | p99 | Note |", "|---|---|---|---|"]
        table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        table += ["", "| Daemon | idle, 0 volumes | {} volumes mounted |".format(args.claims),
                  "|---|---|---|",
                  f"| RSS | {base['VmRSS']} | {loaded['VmRSS']} |",
                  f"| Threads | {base['Threads']} | {loaded['Threads']} |",
                  "", "| Volumes | all processes (main + serve) |", "|---|---|",
                  f"| 0 | {fmt_roles(base_roles)} |"]
        if at_200:
            table += [f"| 200 | {fmt_roles(at_200)} |"]
        table += [f"| {args.claims} | {fmt_roles(loaded_roles)} |"]
        text = "\n".join(table)
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        print(f"claimfsd, {args.claims} claims of {args.size}, {stamp}, load {os.getloadavg()[0]:.1f}")
        print(text)
        if args.readme:
            readme = os.path.join(REPO, "bench/README.md")
            with open(readme) as f:
                content = f.read()
            block = f"<!-- claims:begin -->\nRun {stamp}, {args.claims} claims of {args.size}.\n\n{text}\n<!-- claims:end -->"
            if "<!-- claims:begin -->" in content:
                content = re.sub(r"<!-- claims:begin -->.*<!-- claims:end -->", block, content, flags=re.S)
            else:
                content += "\n" + block + "\n"
            with open(readme, "w") as f:
                f.write(content)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=120)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        for point in claimfs_mounts():
            if point.startswith(args.workdir):
                subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
