#!/usr/bin/python3
"""scripts/bench's bookkeeping (run with /usr/bin/python3).

  poll:   while a run lasts, samples the emulator's /_emu/stats every 20 ms on one keep-alive connection and
          writes "t_seconds bytes_served get_object" lines (t since the poller started, which the script starts
          right before the loader): the network side of the chart, to compare with the loader's copy curve.
  profile: `perf script -F tid,ip,sym` output of a `perf record -e cpu-clock -F HZ -g` (stdin) → CPU seconds
          per thread, split by the kernel path on the stack (UFFDIO_COPY, socket receive, first-touch page
          faults, unmap/free, user memcpy): how docs/PERFORMANCE.md attributes a load's CPU.
  record: one run's files (loader JSON, /usr/bin/time -v output, wall time, the emulator's /_emu/stats before
          and after) → one JSON line on stdout.
  report: runs.jsonl → results.json, results.md and bytes.png (bytes loaded over time, the median run of each
          scenario; needs matplotlib, else the chart is skipped with a note).

Per scenario, medians over its successful runs: wall (process start to exit, as seen by the script), load
(the loader's own clock: first stat to last tensor copied, hash checks excluded), GB/s = tensor bytes / load,
ratio to local-cold (its GB/s ÷ local-cold's), ratio to the emulated link capacity C = min(link-rate,
conn-rate × connections) (the capacity the client could use at best; latency not counted), GETs and bytes
fetched ÷ model bytes (emulator deltas), peak RSS of the loader (and of the FUSE daemon for mounts), time to
first tensor. A second table gives the shim's own stats (MODELFETCH_STATS) per shim scenario, and a third
checks issue 5's targets for shim-default: GB/s ≥ local-cold's (at the emulated latency), ≥ 0.85 C, ≥ 5× s3fs
and rclone, fetched ≤ 1.02 × model, peak RSS ≤ cache budget + mapped bytes (mapped = 2 × model: the loader
maps every shard twice, so this bounds RSS from above by what the process could have resident; the
loader's own copies are counted against it too, so the stricter check printed beside it is RSS − local-warm
RSS ≤ cache budget: what the shim adds over the same loader reading a page-cached file).
"""
import argparse
import json
import os
import statistics
import sys

ORDER = ["local-cold", "local-warm", "s3fs", "rclone", "shim-none", "shim-default", "shim-no-uffd"]


def parse_rate(s):
    mult = {"K": 1e3, "M": 1e6, "G": 1e9}.get(s[-1:].upper(), 1)
    return float(s[:-1] if mult != 1 else s) * mult


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def record(a):
    out = {"scenario": a.scenario, "rep": a.rep, "status": a.status, "note": a.note}
    d = a.run_dir
    before, after = json.loads(a.before or "{}"), json.loads(a.after or "{}")
    out["gets"] = after.get("get_object", 0) - before.get("get_object", 0)
    out["heads"] = after.get("head_object", 0) - before.get("head_object", 0)
    out["lists"] = after.get("list", 0) - before.get("list", 0)
    out["bytes_fetched"] = after.get("bytes_served", 0) - before.get("bytes_served", 0)
    if a.status == "ok":
        lines = [l for l in read(os.path.join(d, "loader.json")).splitlines() if l.startswith("{")]
        try:
            lj = json.loads(lines[-1])
            out.update(bytes=lj["bytes"], load_s=lj["seconds"], gbps=lj["gbps"], first_tensor_s=lj["first_tensor_s"],
                       verified=lj.get("verified", False))
        except (IndexError, ValueError, KeyError):
            out.update(status="failed", note="no loader JSON: " + read(os.path.join(d, "loader.err"))[-300:])
        out["wall_s"] = int(read(os.path.join(d, "wall_us"), "0") or 0) / 1e6
        for line in read(os.path.join(d, "time.txt")).splitlines():
            if "Maximum resident set size" in line:
                out["peak_rss_kb"] = int(line.split(":")[1])
        out["helper_rss_kb"] = a.helper_rss_kb
        for k in ("progress", "net"):
            if os.path.exists(os.path.join(d, k)):
                out[k] = os.path.join(d, k)
        shim = os.path.join(d, "shim-stats.json")
        if os.path.exists(shim):
            try:
                out["shim_stats"] = json.loads(read(shim))
            except ValueError:
                pass
    print(json.dumps(out))


SHIM_KEYS = ["mode", "get_requests", "bytes_fetched", "uffd_faults", "fault_wait_ms", "retries", "errors", "wall_ms"]


def shim_summary(st):
    """The shim's counters of one run (MODELFETCH_STATS), without the per-file part."""
    return {k: st.get(k) for k in SHIM_KEYS} if st else None


def check_targets(rows, capacity, a):
    """Issue 5's targets for shim-default (None where a scenario it needs did not run)."""
    by = {r["scenario"]: r for r in rows if r["status"] == "ok"}
    sh = by.get("shim-default")
    if not sh:
        return None
    t = {}

    def add(name, value, goal, ok):
        t[name] = {"value": value, "goal": goal, "met": None if value is None else ok(value)}

    cold = by.get("local-cold")
    add("vs_local_cold", sh["gbps"] / cold["gbps"] if cold else None, ">= 1.0", lambda v: v >= 1.0)
    add("vs_link", sh["gbps"] * 1e9 / capacity, ">= 0.85", lambda v: v >= 0.85)
    for m in ("s3fs", "rclone"):
        add("vs_" + m, sh["gbps"] / by[m]["gbps"] if m in by else None, ">= 5", lambda v: v >= 5)
    add("fetched_ratio", sh["fetched_ratio"], "<= 1.02", lambda v: v <= 1.02)
    rss = sh["peak_rss_mb"] * 2**20
    add("rss_vs_budget_plus_mapped", rss / (a.cache_budget + 2 * a.model_bytes), "<= 1.0", lambda v: v <= 1.0)
    warm = by.get("local-warm")
    add("rss_over_local_warm_vs_budget", (rss - warm["peak_rss_mb"] * 2**20) / a.cache_budget if warm else None,
        "<= 1.0", lambda v: v <= 1.0)
    return t


def summarise(runs, a):
    capacity = min(parse_rate(a.link_rate) or float("inf"), parse_rate(a.conn_rate) * a.connections or float("inf"))
    by = {}
    for r in runs:
        by.setdefault(r["scenario"], []).append(r)
    order = [s for s in ORDER if s in by] + sorted(s for s in by if s not in ORDER)
    rows = []
    for sc in order:
        rs = by[sc]
        ok = [r for r in rs if r["status"] == "ok"]
        row = {"scenario": sc, "runs": len(rs), "ok": len(ok)}
        if not ok:
            row.update(status=rs[0]["status"], note=rs[0]["note"])
            rows.append(row)
            continue
        med = lambda k: statistics.median(r.get(k, 0) for r in ok)  # noqa: E731
        load = med("load_s")
        median_run = min(ok, key=lambda r: abs(r["load_s"] - load))
        row.update(status="ok", note=ok[0]["note"], wall_s=med("wall_s"), load_s=load,
                   gbps=median_run["bytes"] / load / 1e9, first_tensor_s=med("first_tensor_s"),
                   gets=med("gets"), bytes_fetched=med("bytes_fetched"),
                   fetched_ratio=med("bytes_fetched") / a.model_bytes, peak_rss_mb=med("peak_rss_kb") / 1024,
                   helper_rss_mb=med("helper_rss_kb") / 1024, verified=all(r.get("verified") for r in ok),
                   progress=median_run.get("progress"), net=median_run.get("net"), loads=[r["load_s"] for r in ok],
                   shim_stats=shim_summary(median_run.get("shim_stats")))
        if sc.startswith("local"):
            row["fetched_ratio"] = None
        rows.append(row)
    cold = next((r for r in rows if r["scenario"] == "local-cold" and r["status"] == "ok"), None)
    for r in rows:
        if r["status"] != "ok":
            continue
        r["vs_local_cold"] = r["gbps"] / cold["gbps"] if cold else None
        r["vs_link"] = None if r["scenario"].startswith("local") else r["gbps"] * 1e9 / capacity
    return rows, capacity


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def write_md(rows, capacity, a, path, targets):
    lines = ["# modelfetch loading benchmark", "",
             "Model %s (%d bytes), loader %s%s with --manifest (every tensor hash-checked), %d rep(s), medians; "
             "scenarios alternate within each rep." % (a.size, a.model_bytes, a.loader,
                                                       " (%d threads)" % a.loader_threads if a.loader == "cpp" else "",
                                                       a.reps),
             "Emulator: latency %s ms per request, conn-rate %s B/s, link-rate %s B/s, client connections %d." %
             (a.latency_ms, a.conn_rate, a.link_rate, a.connections),
             "Link capacity C = min(link-rate, conn-rate × connections) = %.2f GB/s (latency not counted)." %
             (capacity / 1e9), "",
             "| scenario | wall s | load s | GB/s | × local cold | × link C | GETs | fetched ÷ model | peak RSS MB "
             "| FUSE daemon RSS MB | first tensor s | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append("| %s | | | | | | | | | | | %s: %s |" % (r["scenario"], r["status"], r["note"]))
            continue
        lines.append("| %s | %.2f | %.2f | %.3f | %s | %s | %d | %s | %.0f | %s | %.3f | %s |" % (
            r["scenario"], r["wall_s"], r["load_s"], r["gbps"], fmt(r["vs_local_cold"], ".2f"),
            fmt(r["vs_link"], ".2f"), r["gets"], fmt(r["fetched_ratio"], ".3f"), r["peak_rss_mb"],
            fmt(r["helper_rss_mb"] or None, ".0f"), r["first_tensor_s"],
            (r["note"] + "; " if r["note"] else "") + ("verified" if r["verified"] else "NOT verified") +
            ("; loads " + " ".join("%.2f" % x for x in r["loads"]) if len(r["loads"]) > 1 else "")))
    shim = [r for r in rows if r["status"] == "ok" and r.get("shim_stats")]
    if shim:
        lines += ["", "Shim stats (MODELFETCH_STATS of the median run; fault wait = sum over faulting pages):", "",
                  "| scenario | " + " | ".join(SHIM_KEYS) + " |", "|---|" + "---:|" * len(SHIM_KEYS)]
        for r in shim:
            lines.append("| %s | %s |" % (r["scenario"], " | ".join(
                "%.0f" % v if isinstance(v, float) else str(v) for v in (r["shim_stats"][k] for k in SHIM_KEYS))))
    if targets:
        lines += ["", "Targets (shim-default; cache budget %.2f GB):" % (a.cache_budget / 1e9), "",
                  "| target | value | goal | met |", "|---|---:|---|---|"]
        for name, v in targets.items():
            lines.append("| %s | %s | %s | %s |" % (name, fmt(v["value"], ".2f"), v["goal"],
                                                   {True: "yes", False: "**no**", None: "—"}[v["met"]]))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_chart(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib missing (apt-get install python3-matplotlib): no chart"
    fig, (ax, nx) = plt.subplots(2, 1, figsize=(9, 8), sharex=True)
    for r in rows:
        if r["status"] != "ok":
            continue
        colour = None
        for key, axis in (("progress", ax), ("net", nx)):
            pts = [l.split() for l in read(r.get(key) or "").splitlines() if l.strip()]
            if pts:
                line, = axis.plot([0.0] + [float(p[0]) for p in pts], [0.0] + [int(p[1]) / 1e9 for p in pts],
                                  label=r["scenario"], color=colour)
                colour = line.get_color()
    ax.set_ylabel("GB copied out of the model")
    ax.set_title("loader: bytes copied since its load started (median run of each scenario)")
    nx.set_ylabel("GB sent by the emulator")
    nx.set_title("network: bytes the emulator sent since the loader process was started")
    nx.set_xlabel("seconds")
    for axis in (ax, nx):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return None


def report(a):
    with open(a.runs) as f:
        runs = [json.loads(l) for l in f if l.strip()]
    rows, capacity = summarise(runs, a)
    targets = check_targets(rows, capacity, a)
    note = write_chart(rows, os.path.join(a.out, "bytes.png"))
    write_md(rows, capacity, a, os.path.join(a.out, "results.md"), targets)
    params = {k: getattr(a, k) for k in ("size", "reps", "latency_ms", "conn_rate", "link_rate", "connections",
                                         "loader", "loader_threads", "model_bytes", "cache_budget")}
    params["link_capacity_bytes_per_s"] = capacity
    params["link_capacity_formula"] = "min(link_rate, conn_rate * connections)"
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"parameters": params, "scenarios": rows, "targets": targets, "chart_note": note}, f, indent=1)
    if note:
        print(note, file=sys.stderr)


def poll(a):
    import http.client
    import time
    host, port = a.endpoint.split("//", 1)[1].rsplit(":", 1)
    conn, t0, base = http.client.HTTPConnection(host, int(port), timeout=5), time.monotonic(), None
    with open(a.file, "w", buffering=1) as f:
        while True:
            try:
                conn.request("GET", "/_emu/stats")
                st = json.loads(conn.getresponse().read())
            except (OSError, ValueError, http.client.HTTPException):
                return
            if base is None:
                base = st.get("bytes_served", 0)
            f.write("%.4f %d %d\n" % (time.monotonic() - t0, st.get("bytes_served", 0) - base, st.get("get_object", 0)))
            time.sleep(0.02)


PROFILE_CLASSES = [  # first match wins: the deepest cause, not the leaf symbol
    ("UFFDIO_COPY (alloc+copy+pte)", ("userfaultfd_ioctl", "mfill_atomic")),
    ("socket receive copy", ("tcp_recvmsg", "sock_recvmsg", "_copy_to_iter")),
    ("first-touch page faults (zero+alloc)", ("exc_page_fault",)),
    ("unmap/free", ("unmap", "tlb", "free_pages", "exit_mmap")),
    ("user memcpy", ("memmove", "memcpy")),
    ("xxh3 verify", ("XXH",)),
    ("other syscalls", ("entry_SYSCALL",)),
]


def profile(a):
    import collections
    per, cats = collections.Counter(), collections.Counter()
    tid, stack = None, []

    def flush():
        if tid is None:
            return
        text = " ".join(stack)
        cat = next((name for name, keys in PROFILE_CLASSES if any(k in text for k in keys)), "other")
        per[tid] += 1
        cats[(tid, cat)] += 1

    for line in sys.stdin:
        if not line.strip():
            flush()
            tid, stack = None, []
        elif tid is None:
            tid = line.split()[0]
        else:
            parts = line.split(None, 1)
            stack.append(parts[1].strip() if len(parts) > 1 else "?")
    flush()
    for t, n in per.most_common(a.threads):
        print("tid %s: %.2f CPU-s" % (t, n / a.hz))
        for (tt, c), k in sorted(cats.items(), key=lambda x: -x[1]):
            if tt == t and k / a.hz >= 0.01:
                print("    %-40s %.2f" % (c, k / a.hz))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    for k in ("scenario", "status", "note", "run_dir", "before", "after"):
        r.add_argument("--" + k.replace("_", "-"), default="")
    r.add_argument("--rep", type=int, default=1)
    r.add_argument("--helper-rss-kb", type=int, default=0)
    p = sub.add_parser("report")
    for k in ("runs", "out", "size", "latency_ms", "conn_rate", "link_rate", "loader"):
        p.add_argument("--" + k.replace("_", "-"), required=True)
    p.add_argument("--loader-threads", type=int, default=1)
    for k in ("model_bytes", "reps", "connections", "cache_budget"):
        p.add_argument("--" + k.replace("_", "-"), type=int, required=True)
    q = sub.add_parser("poll")
    q.add_argument("--endpoint", required=True)
    q.add_argument("--file", required=True)
    pr = sub.add_parser("profile")
    pr.add_argument("--hz", type=float, required=True)
    pr.add_argument("--threads", type=int, default=8)
    a = ap.parse_args()
    {"record": record, "report": report, "poll": poll, "profile": profile}[a.cmd](a)


if __name__ == "__main__":
    main()
