"""The prefetch engine end to end: a 3-shard model from modelfetch-genmodel served by modelfetch-s3emu,
loaded by tools/loaders/st_load.py --manifest (every tensor hash-checked) under `modelfetch run --stats`.
  safetensors: bytes fetched <= 1.02 x the files, no chunk fetched twice (emulator GETs = distinct chunks),
               a plan per shard, and lookahead: shards 2 and 3 were requested before the loader opened them
               (it opens a shard only after copying every tensor of the previous one);
  budget:      a cache of a quarter of the model loads every tensor with peak_cache_bytes <= budget;
  none:        a loader that reads one tensor fetches only that tensor's chunks (plus the header's).
Usage: test_prefetch.py EMULATOR GENMODEL MODELFETCH ST_LOAD"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu import Emu  # noqa: E402

EMU, GENMODEL, CLI, ST_LOAD = sys.argv[1:5]
PY = "/usr/bin/python3"
CHUNK = 2 << 20
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def run(emu, root, name, env_extra, loader_args):
    stats_file = os.path.join(root, name + ".stats.json")
    env = dict(os.environ, AWS_ENDPOINT_URL=emu.url, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s",
               AWS_REGION="us-east-1", MODELFETCH_CHUNK_SIZE=str(CHUNK), **env_extra)
    env.pop("AWS_CA_BUNDLE", None)
    emu.reset()
    p = subprocess.run([CLI, "run", "--remote", "s3://bkt/model", "--mount", "/models/pf", "--stats", stats_file,
                        "--", PY, *loader_args], env=env, capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, "%s: loader exit 0 (%s)" % (name, (p.stdout + p.stderr).strip()[-300:]))
    with open(stats_file) as f:
        st = json.load(f)
    st["_log"] = p.stderr
    return st, emu.stats(), p.stdout


def chunks(size):
    return (size + CHUNK - 1) // CHUNK


def main():
    with tempfile.TemporaryDirectory(prefix="mf-prefetch-") as root:
        model = os.path.join(root, "data", "model")
        os.makedirs(os.path.join(root, "data"))
        manifest = os.path.join(root, "manifest.json")
        subprocess.run([GENMODEL, "--out", model, "--size", "40M", "--shards", "3", "--manifest", manifest],
                       check=True, stdout=subprocess.DEVNULL)
        sizes = {f: os.path.getsize(os.path.join(model, f)) for f in os.listdir(model)}
        shards = sorted(f for f in sizes if f.endswith(".safetensors"))
        total = sum(sizes.values())
        shard_bytes = sum(sizes[f] for f in shards)
        emu = Emu(EMU, os.path.join(root, "data"), "bkt", "--latency-ms", "5")
        try:
            # --- safetensors (default) ---
            st, es, out = run(emu, root, "safetensors", {"MODELFETCH_LOG": "info"},
                              [ST_LOAD, "/models/pf", "--manifest", manifest])
            check(json.loads(out.strip().splitlines()[-1])["verified"] is True, "safetensors: every tensor verified")
            # st_load's tensor mapping is read-write: where the shim says it moves huge pages, it must have
            if "whole huge pages (UFFDIO_MOVE)" in st.get("_log", ""):
                check(st["uffd_bytes_moved"] > 0 and st["chunks_moved_out"] > 0,
                      "safetensors: huge pages moved (%d bytes, %d chunks)" % (st["uffd_bytes_moved"],
                                                                             st["chunks_moved_out"]))
            else:
                print("note: this kernel offers no UFFDIO_MOVE (or THP is off): huge-page moves not checked")
            check(st["prefetch"] == "safetensors", "safetensors: policy reported")
            check(st["bytes_fetched"] <= 1.02 * total,
                  "safetensors: bytes_fetched %d <= 1.02 x %d" % (st["bytes_fetched"], total))
            distinct = sum(chunks(s) for s in sizes.values())
            check(es["get_object"] <= distinct, "safetensors: GETs %d <= distinct chunks %d (no chunk twice)"
                  % (es["get_object"], distinct))
            check(st["get_requests"] == es["get_object"], "safetensors: client and emulator agree on GETs")
            check(st["plans"] == 3, "safetensors: a plan per shard (%d)" % st["plans"])
            check(st["prefetch_hits"] > 0, "safetensors: prefetch hits %d" % st["prefetch_hits"])
            files = st["files"]
            for f in shards[1:]:
                fs = files["/models/pf/" + f]
                check(fs["first_prefetch_ms"] is not None and fs["first_open_ms"] is not None
                      and fs["first_prefetch_ms"] < fs["first_open_ms"],
                      "lookahead: %s requested at %s ms, before its open at %s ms" %
                      (f, fs["first_prefetch_ms"], fs["first_open_ms"]))
                check(fs["time_to_first_byte_ms"] is not None, "safetensors: time_to_first_byte_ms for " + f)

            # --- a budget of a quarter of the model ---
            budget = (shard_bytes // 4) // 4096 * 4096
            st, es, out = run(emu, root, "budget", {"MODELFETCH_CACHE_SIZE": str(budget)},
                              [ST_LOAD, "/models/pf", "--manifest", manifest])
            check(json.loads(out.strip().splitlines()[-1])["verified"] is True,
                  "budget %d: every tensor verified" % budget)
            check(st["peak_cache_bytes"] <= budget, "budget: peak_cache_bytes %d <= %d" %
                  (st["peak_cache_bytes"], budget))
            check(st["evictions"] > 0, "budget: chunks were evicted (%d)" % st["evictions"])

            # --- none: one tensor read with pread fetches its chunks only ---
            with open(manifest) as f:
                tensors = json.load(f)["tensors"]
            t = max(tensors, key=lambda t: t["length"])
            code = ("import os,sys\nfd=os.open('/models/pf/%s',os.O_RDONLY)\nh=os.pread(fd,8,0)\n"
                    "b=os.pread(fd,%d,%d)\nassert len(b)==%d\nprint('read')\n" %
                    (t["file"], t["length"], t["offset"], t["length"]))
            st, es, out = run(emu, root, "none", {"MODELFETCH_PREFETCH": "none"}, ["-c", code])
            want = {0} | set(range(t["offset"] // CHUNK, (t["offset"] + t["length"] - 1) // CHUNK + 1))
            check(es["get_object"] == len(want), "none: GETs %d == the tensor's chunks + header chunk %d"
                  % (es["get_object"], len(want)))
            check(st["bytes_fetched"] <= len(want) * CHUNK, "none: bytes_fetched %d <= %d" %
                  (st["bytes_fetched"], len(want) * CHUNK))
            # the same read with the default policy plans the file and fetches more of it
            st2, es2, _ = run(emu, root, "default-one-tensor", {}, ["-c", code])
            check(es2["get_object"] > es["get_object"], "default fetches ahead of the one tensor (%d > %d GETs)"
                  % (es2["get_object"], es["get_object"]))
            # none with a mapping: the loader touches everything, each chunk still fetched once
            st, es, out = run(emu, root, "none-load", {"MODELFETCH_PREFETCH": "none"},
                              [ST_LOAD, "/models/pf", "--manifest", manifest])
            check(es["get_object"] <= distinct, "none: full load fetches no chunk twice (%d GETs)" % es["get_object"])
            check(st["prefetch_hits"] == 0, "none: no prefetch hits")
        finally:
            emu.stop()
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
