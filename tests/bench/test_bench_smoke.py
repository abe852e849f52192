#!/usr/bin/python3
"""Smoke test of scripts/bench (suite 'bench'): runs `scripts/bench --size 100M --reps 1` with every scenario
and the Python loader, then local-warm and shim-default with the C++ loader, and checks each results.json:
every scenario requested has exactly one row whose status is "ok" or "not available" (s3fs, rclone or FUSE
may be missing or refused in CI), every "ok" row was verified (every tensor's hash matched), the remote rows
fetched bytes, and results.md was written. Timings are not asserted.

  test_bench_smoke.py SCRIPTS_BENCH WORKDIR
"""
import json
import os
import subprocess
import sys

ALL = ["local-cold", "local-warm", "s3fs", "rclone", "shim-none", "shim-default", "shim-no-uffd"]
MUST_RUN = {"local-warm", "shim-default", "shim-no-uffd"}  # need nothing beyond our build


def run_bench(bench, work, out, loader, scenarios):
    cmd = [bench, "--size", "100M", "--reps", "1", "--work", work, "--out", out, "--loader", loader,
           "--scenarios", ",".join(scenarios)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=200)
    sys.stdout.write(p.stdout[-4000:])
    if p.returncode != 0:
        raise SystemExit("FAIL: %s exited %d" % (" ".join(cmd), p.returncode))
    with open(os.path.join(out, "results.json")) as f:
        res = json.load(f)
    problems = []
    rows = {r["scenario"]: r for r in res["scenarios"]}
    if sorted(rows) != sorted(scenarios) or len(res["scenarios"]) != len(scenarios):
        problems.append("scenarios in results.json: %s, expected %s" % (sorted(rows), sorted(scenarios)))
    for sc, r in rows.items():
        if r["status"] not in ("ok", "not available"):
            problems.append("%s: status %r (%s)" % (sc, r["status"], r.get("note")))
        elif r["status"] == "not available" and sc in MUST_RUN:
            problems.append("%s: not available (%s), but it needs only our build" % (sc, r.get("note")))
        elif r["status"] == "ok":
            if not r.get("verified"):
                problems.append("%s: tensors not verified" % sc)
            if not sc.startswith("local") and r.get("bytes_fetched", 0) < res["parameters"]["model_bytes"]:
                problems.append("%s: fetched %s bytes < model" % (sc, r.get("bytes_fetched")))
    if not os.path.getsize(os.path.join(out, "results.md")):
        problems.append("results.md is empty")
    return problems


def main():
    bench, work = sys.argv[1], sys.argv[2]
    problems = run_bench(bench, work, os.path.join(work, "py"), "py", ALL)
    problems += ["cpp loader: " + p for p in
                 run_bench(bench, work, os.path.join(work, "cpp"), "cpp", ["local-warm", "shim-default"])]
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
