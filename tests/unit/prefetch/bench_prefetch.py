"""Prefetch benchmark (not a test): st_load.py --manifest (tensors copied in name order) through
`modelfetch run` against modelfetch-s3emu (tests/integration/emu.py) (--latency-ms 20 --conn-rate 100M --link-rate 2G), policies
alternating inside each repetition; prints medians of the loader's seconds and the ratios.
Usage: bench_prefetch.py BUILD_DIR [--size 512M] [--shards 3] [--reps 3] [--chunks 2M,4M,8M,16M]
                         [--policies none,sequential,safetensors] [--env NAME:VAR=VALUE,...]..."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--size", default="512M")
ap.add_argument("--shards", default="3")
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--chunks", default="")
ap.add_argument("--policies", default="none,sequential,safetensors")
ap.add_argument("--env", action="append", default=[],
                help="an extra scenario NAME:VAR=VALUE[,VAR=VALUE...], e.g. c32:MODELFETCH_MAX_CONNECTIONS=32")
a = ap.parse_args()
root_src = os.path.dirname(os.path.abspath(__file__)) + "/../../.."
sys.path.insert(0, root_src + "/tests/integration")
from emu import Emu  # noqa: E402

B = os.path.abspath(a.build)
work = tempfile.mkdtemp(prefix="mf-bench-pf-", dir="/var/tmp")
os.makedirs(work + "/data")
subprocess.run([B + "/tools/genmodel/modelfetch-genmodel", "--out", work + "/data/model", "--size", a.size,
                "--shards", a.shards, "--manifest", work + "/manifest.json"], check=True, stdout=subprocess.DEVNULL)
emu = Emu(B + "/tools/s3emu/modelfetch-s3emu", work + "/data", "bench", "--latency-ms", "20", "--conn-rate", "100M",
          "--link-rate", "2G")
url = emu.url


def run(env_extra):
    env = dict(os.environ, AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s",
               AWS_REGION="us-east-1", **env_extra)
    env.pop("AWS_CA_BUNDLE", None)
    subprocess.run("cat %s/data/model/* > /dev/null" % work, shell=True)
    p = subprocess.run([B + "/tools/modelfetch", "run", "--remote", "s3://bench/model", "--mount", "/models/bench",
                        "--stats", work + "/st.json", "--", "/usr/bin/python3",
                        root_src + "/tools/loaders/st_load.py", "/models/bench", "--manifest", work + "/manifest.json"],
                       env=env, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout, p.stderr, file=sys.stderr)
        return None
    r = json.loads(p.stdout.strip().splitlines()[-1])
    st = json.load(open(work + "/st.json"))
    return r["seconds"], st["bytes_fetched"], st["get_requests"]


try:
    scen = [("policy=" + p, {"MODELFETCH_PREFETCH": p}) for p in a.policies.split(",") if p]
    scen += [("chunk=" + c, {"MODELFETCH_CHUNK_SIZE": c}) for c in a.chunks.split(",") if c]
    for spec in a.env:
        name, _, assigns = spec.partition(":")
        scen.append((name, dict(kv.split("=", 1) for kv in assigns.split(",") if kv)))
    res = {n: [] for n, _ in scen}
    for rep in range(a.reps):
        for n, e in scen:
            r = run(e)
            res[n].append(r)
            print("rep %d %-20s %s" % (rep, n, r), flush=True)
    med = {}
    for n, rs in res.items():
        ok = [r for r in rs if r]
        if ok:
            med[n] = statistics.median(r[0] for r in ok)
            print("%-20s median %.3f s  fetched %d B  GETs %d" % (n, med[n], ok[-1][1], ok[-1][2]))
    if "policy=none" in med and "policy=safetensors" in med:
        print("none / safetensors = %.1fx" % (med["policy=none"] / med["policy=safetensors"]))
    if "policy=sequential" in med and "policy=safetensors" in med:
        print("sequential / safetensors = %.2fx" % (med["policy=sequential"] / med["policy=safetensors"]))
finally:
    emu.stop()
    subprocess.run(["rm", "-rf", work])
