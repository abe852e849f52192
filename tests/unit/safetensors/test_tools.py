#!/usr/bin/python3
"""Functional test of modelfetch-genmodel and both reference loaders, on local disk, no server.

usage: test_tools.py GENMODEL MODELFETCH_LOAD ST_LOAD_PY

Checks, independently of core/safetensors: the generated layout (header length a multiple of 8,
__metadata__ first, tensors name-sorted with contiguous offsets, data ending at EOF), the index and the
manifest (offsets, lengths, per-tensor and per-file XXH3), determinism and shard-independence of content;
then that both loaders verify the model (modelfetch-load parses with core/safetensors), and fail with exit
1 naming the tensor when one data byte is flipped, and fail when a header byte is corrupted.
"""
import ctypes
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

GENMODEL, LOAD, ST_LOAD = sys.argv[1:4]
PY = "/usr/bin/python3"
_xxh = ctypes.CDLL("libxxhash.so.0").XXH3_64bits
_xxh.restype = ctypes.c_uint64
_xxh.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
failures = []


def xxh3(b):
    return "%016x" % _xxh(b, len(b))


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(args, expect_rc=0):
    p = subprocess.run(args, capture_output=True, text=True)
    check(p.returncode == expect_rc, "%s -> rc %d (want %d): %s" % (" ".join(args), p.returncode, expect_rc, p.stderr.strip()))
    return p


def gen(out, *extra):
    p = run([GENMODEL, "--out", out, "--size", "20M"] + list(extra))
    return json.loads(p.stdout) if p.returncode == 0 else {}


def check_layout(d):
    manifest = json.load(open(os.path.join(d, "manifest.json")))
    files = {f["file"]: f for f in manifest["files"]}
    by_file = {}
    for t in manifest["tensors"]:
        by_file.setdefault(t["file"], {})[t["name"]] = t
    config = json.load(open(os.path.join(d, "config.json")))
    index_path = os.path.join(d, "model.safetensors.index.json")
    weight_map = json.load(open(index_path))["weight_map"] if os.path.exists(index_path) else None
    shards = sorted(n for n in os.listdir(d) if n.endswith(".safetensors"))
    total = 0
    for name in shards:
        raw = open(os.path.join(d, name), "rb").read()
        check(files[name]["size"] == len(raw) and files[name]["xxh3"] == xxh3(raw), name + ": file size/hash")
        (n,) = struct.unpack("<Q", raw[:8])
        check(n % 8 == 0, name + ": header length not a multiple of 8")
        text = raw[8:8 + n].decode()
        check(text.startswith('{"__metadata__":{"format":"pt"}'), name + ": __metadata__ not first")
        header = json.loads(text)
        keys = [k for k in header if k != "__metadata__"]
        check(keys == sorted(keys), name + ": tensors not in name order")
        pos = 0
        for k in keys:
            b, e = header[k]["data_offsets"]
            check(b == pos, name + ": " + k + " not contiguous")
            pos = e
            m = by_file[name][k]
            check(m["offset"] == 8 + n + b and m["length"] == e - b, name + ": manifest offset of " + k)
            check(m["xxh3"] == xxh3(raw[8 + n + b:8 + n + e]), name + ": manifest hash of " + k)
            if weight_map is not None:
                check(weight_map.get(k) == name, "index maps " + k + " elsewhere")
        check(8 + n + pos == len(raw), name + ": data does not end at EOF")
        check(set(keys) == set(by_file[name]), name + ": manifest tensor set")
        total += pos
        if "model.embed_tokens.weight" in header:
            check(header["model.embed_tokens.weight"]["shape"] == [config["vocab_size"], config["hidden_size"]],
                  "config does not match embed_tokens")
    if weight_map is not None:
        check(json.load(open(index_path))["metadata"]["total_size"] == total, "index total_size")
        check(len(set(weight_map.values())) == len(shards), "index shard set")
    return manifest, total


def main():
    tmp = tempfile.mkdtemp(prefix="mf-tools-")
    try:
        a = os.path.join(tmp, "a")
        info = gen(a, "--shards", "3", "--seed", "7")
        check(info.get("shards") == 3, "3 shards")
        check(sorted(n for n in os.listdir(a) if n.endswith(".safetensors")) ==
              ["model-0000%d-of-00003.safetensors" % i for i in (1, 2, 3)], "shard names")
        manifest, total = check_layout(a)
        check(abs(total - 20_000_000) < 1_000_000, "size near the 20M target: %d" % total)

        # Determinism: same seed, same bytes; other seed, other bytes; content independent of sharding.
        b = os.path.join(tmp, "b")
        gen(b, "--shards", "3", "--seed", "7", "--manifest", os.path.join(tmp, "b.json"))
        mb = json.load(open(os.path.join(tmp, "b.json")))
        check([f["xxh3"] for f in mb["files"]] == [f["xxh3"] for f in manifest["files"]], "same seed, same files")
        c = os.path.join(tmp, "c")
        gen(c, "--shards", "1", "--seed", "8")
        mc, _ = check_layout(c)
        check(os.listdir(c).count("model.safetensors") == 1 and "model.safetensors.index.json" not in os.listdir(c),
              "one shard: model.safetensors and no index")
        check({t["name"]: t["xxh3"] for t in mc["tensors"]} != {t["name"]: t["xxh3"] for t in manifest["tensors"]},
              "other seed, other content")
        d = os.path.join(tmp, "d")
        gen(d, "--max-shard-size", "5M", "--seed", "7")
        md, _ = check_layout(d)
        check(len([f for f in md["files"] if f["file"].endswith(".safetensors")]) >= 4, "max-shard-size splits")
        check({t["name"]: t["xxh3"] for t in md["tensors"]} == {t["name"]: t["xxh3"] for t in manifest["tensors"]},
              "content depends on seed and name only")

        mpath = os.path.join(a, "manifest.json")
        loaders = [[LOAD, a, "--manifest", mpath], [LOAD, a, "--manifest", mpath, "--threads", "2"],
                   [PY, ST_LOAD, a, "--manifest", mpath]]
        if subprocess.run([PY, "-c", "import torch"], capture_output=True).returncode == 0:
            loaders.append([PY, ST_LOAD, a, "--manifest", mpath, "--torch"])
        for cmd in loaders:
            p = run(cmd)
            if p.returncode == 0:
                r = json.loads(p.stdout)
                check(r["bytes"] == total and r["tensors"] == len(manifest["tensors"]) and r["verified"],
                      "loader result: " + p.stdout)

        # One shard file by path (load_file(shard)).
        one = os.path.join(c, "model.safetensors")
        run([LOAD, one, "--manifest", os.path.join(c, "manifest.json")])
        run([PY, ST_LOAD, one, "--manifest", os.path.join(c, "manifest.json")])

        # Flip one data byte in the middle of the second shard: both loaders exit 1 naming that tensor.
        bad = os.path.join(tmp, "bad")
        shutil.copytree(a, bad)
        victim = next(t for t in manifest["tensors"] if t["file"] == "model-00002-of-00003.safetensors"
                      and t["length"] > 1000)
        path = os.path.join(bad, victim["file"])
        with open(path, "r+b") as f:
            f.seek(victim["offset"] + victim["length"] // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0x01]))
        for cmd in ([LOAD, bad], [PY, ST_LOAD, bad]):
            p = run(cmd + ["--manifest", mpath], expect_rc=1)
            check(victim["name"] in p.stderr, "failure names the tensor: " + p.stderr.strip())
        # Without a manifest the corruption is invisible: the load itself succeeds.
        run([LOAD, bad])

        # Corrupt the header: '{' → 'X' at the JSON start; both loaders fail with exit 1.
        with open(path, "r+b") as f:
            f.seek(8)
            f.write(b"X")
        for cmd in ([LOAD, bad], [PY, ST_LOAD, bad]):
            run(cmd + ["--manifest", mpath], expect_rc=1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
