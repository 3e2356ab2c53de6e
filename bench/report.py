#!/usr/bin/env python3
"""Turns the raw output of bench/run into the results table; optionally writes it into README.

Usage: report.py OUTDIR [--readme PATH] [--section NAME]
OUTDIR holds `info` (key=value lines), `results.tsv` (run, row, target, value), `runs.log`
and, if the FUSE request profile ran, `probe.log` and `probe.marks`. Prints the markdown
section; with --readme replaces the text between the NAME:begin/end markers of PATH (NAME:
"results" unless --section says otherwise), or appends the section if PATH has no such markers.
"""
import collections
import re
import statistics
import sys

BEGIN = "<!-- {}:begin -->"
END = "<!-- {}:end -->"

# key, label (formatted with info), unit, kind, target ratio (None: no target in issue 2)
# kind "rate": higher is better, ratio = claimfs / native.
# kind "time": seconds, lower is better, ratio = native / claimfs (so higher is better again).
ROWS = [
    ("seqwrite", "1 MiB sequential write of {seq} (dd conv=fsync, fsync+close timed)", "MB/s", "rate", 0.9),
    ("coldread", "cold sequential read of {seq} (dd bs=1M after drop_caches)", "MB/s", "rate", 0.9),
    ("randread", "4 KiB random read, {rand} file (fio psync, {rt} s)", "IOPS", "rate", 0.9),
    ("randwrite", "4 KiB random write, {rand} file (fio psync, {rt} s)", "IOPS", "rate", 0.9),
    ("dsync4k", "4 KiB sequential write with fsync: dd bs=4k oflag=dsync, {dsync}", "MB/s", "rate", 1.0),
    ("create", "create {nfiles} empty files (open O_CREAT+close)", "ops/s", "rate", 0.3),
    ("stat", "hot stat of {nfiles} files (2nd pass)", "ops/s", "rate", 0.5),
    ("unlink", "unlink {nfiles} files", "ops/s", "rate", 0.2),
    ("tar_extract", "tar extract of {tar}", "s", "time", 0.25),
    ("find", "find of the extracted tree (hot)", "s", "time", None),
    ("du", "du -s of the extracted tree (hot)", "s", "time", None),
    ("rm_rf", "rm -rf of the extracted tree", "s", "time", None),
    ("git_clone", "git clone of a local repository ({git})", "s", "time", None),
    ("git_status", "git status in that clone (hot)", "s", "time", None),
    ("sqlite_tx", "sqlite: {sqlite_tx} small WAL transactions (synchronous=full)", "tx/s", "rate", None),
    ("sqlite_bulk", "sqlite: {sqlite_rows}-row insert + index, one transaction", "s", "time", None),
]
TARGETS = [("native", "native"), ("cap", "claimfs capacity"), ("unl", "claimfs unlimited")]
QUOTA_LIMIT = 3.0  # percent


def read_info(outdir):
    info = {}
    with open(f"{outdir}/info") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            info[k] = v
    return info


def read_results(outdir):
    vals = collections.defaultdict(list)  # (row, target) -> [(run, value)]
    with open(f"{outdir}/results.tsv") as f:
        for line in f:
            run, row, target, value = line.rstrip("\n").split("\t")
            v = None if value == "fail" else float(value)  # None: the run failed
            vals[(row, target)].append((int(run), v))
    return vals


def fmt(v, unit):
    if v is None:
        return "failed"
    if unit == "s":
        return f"{v:.3f}"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def perf(v, kind):
    return v if kind == "rate" else 1.0 / v


def size_label(mb):
    mb = int(mb)
    return f"{mb // 1024} GiB" if mb % 1024 == 0 else f"{mb} MiB"


def table(info, vals):
    subst = {
        "seq": size_label(info["seq_mb"]),
        "rand": size_label(info["rand_mb"]),
        "rt": info["fio_runtime"],
        "dsync": f"{int(info['dsync_count']):,} writes",
        "nfiles": f"{int(info['nfiles']):,}",
        "tar": f"{info['tar_src']} ({int(info['tar_entries']):,} entries, {info['tar_mb']} MiB)",
        "git": f"/usr/include/{{{info.get('git_parts', '?').replace(' ', ',')}}}, "
               f"{int(info.get('git_files', 0)):,} files, {info.get('git_mb', '?')} MiB, one commit each",
        "sqlite_tx": f"{int(info.get('sqlite_tx', 0)):,}",
        "sqlite_rows": f"{int(info.get('sqlite_rows', 0)):,}",
    }
    out = [
        "| # | Row | Unit | Native | claimfs capacity | claimfs unlimited | Ratio (capacity) | "
        "Ratio (unlimited) | Target | Met | Quota cost | ≤ 3 % |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for i, (key, label, unit, kind, target) in enumerate(ROWS, 1):
        if not any((key, t) in vals for t, _ in TARGETS):
            continue  # its group was not run (--groups)
        med, cell = {}, {}
        for t, _ in TARGETS:
            allruns = [v for _, v in vals.get((key, t), [])]
            runs = [v for v in allruns if v is not None]
            med[t] = statistics.median(runs) if runs else None
            failed = len(allruns) - len(runs)
            cell[t] = fmt(med[t], unit) if runs else ("**failed**" if failed else "—")
            if runs and failed:
                cell[t] += f" ({failed}/{len(allruns)} runs failed)"
        n, c, u = med["native"], med["cap"], med["unl"]
        ratio_c = perf(c, kind) / perf(n, kind) if n and c else None
        ratio_u = perf(u, kind) / perf(n, kind) if n and u else None
        cost = (1 - perf(c, kind) / perf(u, kind)) * 100 if c and u else None
        if target is None or ratio_c is None:
            met = "n/a" if target is None else ("**not met**" if c is None and n else "—")
        else:
            met = "met" if ratio_c >= target else "**not met**"
        qmet = "—" if cost is None else ("met" if cost <= QUOTA_LIMIT else "**not met**")
        shown_unit = unit + (" (lower is better)" if kind == "time" else "")
        out.append(
            f"| {i} | {label.format(**subst)} | {shown_unit} | {cell['native']} | {cell['cap']} | "
            f"{cell['unl']} | {'—' if ratio_c is None else f'{ratio_c:.2f}'} | "
            f"{'—' if ratio_u is None else f'{ratio_u:.2f}'} | "
            f"{'—' if target is None else f'≥ {target:g}'} | {met} | "
            f"{'—' if cost is None else f'{cost:+.1f} %'} | {qmet} |"
        )
    return "\n".join(out)


def raw_table(info, vals):
    runs = int(info["runs"])
    out = [
        "| Row | Target | " + " | ".join(f"run {r}" for r in range(1, runs + 1)) + " |",
        "|---|---|" + "---:|" * runs,
    ]
    for key, _, unit, _, _ in ROWS:
        if not any((key, t) in vals for t, _ in TARGETS):
            continue
        for t, tname in TARGETS:
            byrun = dict(vals.get((key, t), []))
            cells = " | ".join(fmt(byrun.get(r), unit) for r in range(1, runs + 1))
            out.append(f"| {key} ({unit}) | {tname} | {cells} |")
    return "\n".join(out)


OP_RE = re.compile(r"^unique: (\d+), opcode: (\w+) \(\d+\).*insize: (\d+)")
REPLY_RE = re.compile(r"^\s+unique: (\d+), (?:success|error: -?\d+[^,]*), outsize: (\d+)")


def probe(outdir):
    """Requests per operation from the `claimfs -d` trace, one line per marked workload."""
    try:
        lines = open(f"{outdir}/probe.log", errors="replace").read().splitlines()
        marks = [l.split() for l in open(f"{outdir}/probe.marks")]
    except OSError:
        return None
    out = ["| Workload | FUSE requests per " + "operation (claimfs -d trace) |", "|---|---|"]
    prev = 0
    for label, count, unit, end in marks:
        end = int(end)
        seg, prev = lines[prev:end], end
        if label in ("start", "-"):
            continue
        count = int(count)
        ops = collections.Counter()
        op_of = {}
        wsizes, rsizes = [], []
        for l in seg:
            m = OP_RE.match(l)
            if m:
                uniq, op, insize = m.group(1), m.group(2), int(m.group(3))
                ops[op] += 1
                op_of[uniq] = op
                if op == "WRITE":
                    wsizes.append(insize - 80)  # fuse_in_header + fuse_write_in
                continue
            m = REPLY_RE.match(l)
            if m and op_of.get(m.group(1)) == "READ":
                rsizes.append(int(m.group(2)) - 16)  # fuse_out_header
        parts = [f"{op} {n / count:.2f}" for op, n in sorted(ops.items(), key=lambda x: -x[1])]
        sizes = []
        if wsizes:
            sizes.append(f"WRITE avg {statistics.mean(wsizes) / 1024:.0f} KiB, max {max(wsizes) / 1024:.0f} KiB")
        if rsizes:
            sizes.append(f"READ avg {statistics.mean(rsizes) / 1024:.0f} KiB, max {max(rsizes) / 1024:.0f} KiB")
        desc = ", ".join(parts) or "none"
        if sizes:
            desc += "; " + "; ".join(sizes)
        out.append(f"| {label}: {count} × {unit} | per {unit}: {desc} |")
    return "\n".join(out)


def section(outdir, name):
    info = read_info(outdir)
    vals = read_results(outdir)
    parts = [
        BEGIN.format(name),
        f"### Results: {info['date']} ({info['mode']} mode, median of {info['runs']} run(s) per target)",
        "",
        f"- Command: `{info['command']}`, claimfs binary `{info['binary']}` "
        f"({info.get('binary_version', '?')}; this checkout: git {info.get('git', '?')}), capacity mount `-o capacity={info['capacity']}`",
        f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, kernel {info['kernel']}, "
        f"{info['os']}, {info['fio']}",
        f"- Disk: {info['disk']}",
        *([f"- Pool: btrfs on a loop image made by the script, quotas on; native = a plain directory on it, "
           f"claimfs capacity = a subvolume served in kernel mode (qgroup limit, FUSE passthrough), "
           f"claimfs unlimited = a plain directory"] if info.get("pool") == "btrfs" else []),
        f"- Load (/proc/loadavg) before: `{info['load_before']}`; after: `{info.get('load_after', '?')}`; "
        f"busiest processes at start: {info.get('busy_before', '?')}; duration {info.get('duration', '?')}",
        "- Ratio: claimfs/native for rates, native_time/claimfs_time for times, so higher is always "
        "better; Ratio (capacity) is the one held to the target. Quota cost = 1 − perf(capacity)/perf(unlimited) "
        "(perf = rate, or 1/time); positive means the quota-enforcing mount was slower.",
        "",
        table(info, vals),
        "",
    ]
    try:
        errs = [l.rstrip("\n").split("\t", 3) for l in open(f"{outdir}/errors.tsv")]
    except OSError:
        errs = []
    if errs:
        names = dict(TARGETS)
        parts += ["Failures (the benchmark records the failed rows and goes on):", ""]
        parts += [f"- run {r}, {g} group on {names.get(t, t)}: `{m.strip()}`" for r, g, t, m in errs]
        parts.append("")
    parts += [
        "<details><summary>Every run</summary>",
        "",
        raw_table(info, vals),
        "",
    ]
    try:
        parts += ["Load at the start of each run:", "", "```", open(f"{outdir}/runs.log").read().rstrip(), "```", ""]
    except OSError:
        pass
    parts.append("</details>")
    p = probe(outdir)
    if p:
        parts += ["", "FUSE requests seen by the daemon (`claimfs -d` on a small copy of each workload, not timed):", "", p]
    parts.append(END.format(name))
    return "\n".join(parts)


def main(argv):
    args = argv[2:]
    opts = dict(zip(args[::2], args[1::2]))
    if len(argv) < 2 or len(args) % 2 or set(opts) - {"--readme", "--section"}:
        print(__doc__, file=sys.stderr)
        return 2
    name = opts.get("--section", "results")
    text = section(argv[1], name)
    print(text)
    if "--readme" in opts:
        path = opts["--readme"]
        begin, end = BEGIN.format(name), END.format(name)
        doc = open(path).read()
        if begin in doc and end in doc:
            doc = doc[: doc.index(begin)] + text + doc[doc.index(end) + len(end):]
        else:
            doc = doc.rstrip("\n") + "\n\n" + text + "\n"
        with open(path, "w") as f:
            f.write(doc)
        print(f"\n(written into {path})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
