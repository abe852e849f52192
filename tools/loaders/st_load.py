#!/usr/bin/python3
"""Reference loader: reproduces safetensors 0.8 `load_file` / transformers `from_pretrained` file access.

Pattern (docs/DESIGN.md, measured in /work/shared/FACTS.md):
  * the model folder: os.listdir, os.stat of config.json, open().read() of config.json and of
    model.safetensors.index.json when present; shards = sorted set of weight_map values, else every
    *.safetensors in the folder, sorted;
  * per shard: os.stat; open64 twice; mmap64(whole file, PROT_READ, MAP_PRIVATE) on the first fd (safetensors'
    own map) and mmap64(whole file, PROT_READ|PROT_WRITE, MAP_PRIVATE) on the second (torch
    UntypedStorage.from_file(shared=False)); both fds closed right after mapping, before any tensor byte is
    touched; the header is parsed from the first map; tensors are copied out of the second map in name order
    (sorted(keys()), plain string order: layers.10 before layers.2).
The maps are made with libc mmap64 through ctypes: Python's mmap module would dup the fd and keep it open,
which the real loader does not do.

Copies go into one preallocated numpy buffer per shard, or with --torch into torch tensors via
torch.frombuffer(...).clone(). --manifest FILE (from modelfetch-genmodel) checks every tensor's offset,
length and XXH3-64 (libxxhash.so.0 through ctypes) and exits 1 naming the first tensor that differs; hashing
time is excluded from `seconds`. Prints one JSON line: bytes, seconds, gbps, first_tensor_s, tensors,
verified. --progress FILE appends "t_seconds bytes" lines (time since the load started, bytes copied so far,
at most one line per 10 ms plus the last) for the benchmark's bytes-over-time chart (scripts/bench).
Exit 0 ok, 1 load or verification failure, 2 usage.
"""
import argparse
import ctypes
import json
import os
import struct
import sys
import time

import numpy as np

PROT_READ, PROT_WRITE, MAP_PRIVATE = 0x1, 0x2, 0x02
MAX_HEADER = 100_000_000
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
               "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8, "C64": 8}

_libc = ctypes.CDLL(None, use_errno=True)
_mmap64 = _libc.mmap64
_mmap64.restype = ctypes.c_void_p
_mmap64.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64]
_munmap = _libc.munmap
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MAP_FAILED = ctypes.c_void_p(-1).value


class LoadError(Exception):
    pass


class Xxh3:
    def __init__(self):
        lib = ctypes.CDLL("libxxhash.so.0")
        self.fn = lib.XXH3_64bits
        self.fn.restype = ctypes.c_uint64
        self.fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

    def __call__(self, address, length):
        return "%016x" % self.fn(address, length)


def map_file(fd, size, prot):
    p = _mmap64(None, size, prot, MAP_PRIVATE, fd, 0)
    if p is None or p == MAP_FAILED:
        err = ctypes.get_errno()
        raise LoadError("mmap64 failed: %s" % os.strerror(err))
    return p


def parse_header(addr, size, name):
    """Header from the read-only map: {tensor: (dtype, shape, begin, end)} relative to data_start."""
    if size < 8:
        raise LoadError("%s: shorter than 8 bytes" % name)
    (n,) = struct.unpack("<Q", ctypes.string_at(addr, 8))
    if n > MAX_HEADER or 8 + n > size:
        raise LoadError("%s: bad header length %d" % (name, n))
    try:
        header = json.loads(ctypes.string_at(addr + 8, n).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise LoadError("%s: header is not JSON: %s" % (name, e))
    if not isinstance(header, dict):
        raise LoadError("%s: header is not an object" % name)
    data_start, tensors = 8 + n, {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype, shape = info["dtype"], info["shape"]
            begin, end = info["data_offsets"]
            count = 1
            for d in shape:
                count *= d
            if count * DTYPE_BYTES[dtype] != end - begin or begin < 0 or data_start + end > size:
                raise LoadError("%s: tensor %s: bad offsets" % (name, key))
        except (KeyError, TypeError, ValueError):
            raise LoadError("%s: tensor %s: bad entry" % (name, key))
        tensors[key] = (dtype, shape, begin, end)
    return data_start, tensors


def find_shards(path):
    """Files to load, in the order from_pretrained opens them; reads config/index as it does."""
    if os.path.isfile(path):
        os.stat(path)
        return [path]
    entries = os.listdir(path)
    config = os.path.join(path, "config.json")
    if os.path.exists(config):
        os.stat(config)
        with open(config) as f:
            json.loads(f.read())
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.loads(f.read())["weight_map"]
        names = sorted(set(weight_map.values()))
    else:
        names = sorted(e for e in entries if e.endswith(".safetensors"))
    if not names:
        raise LoadError("%s: no .safetensors files" % path)
    return [os.path.join(path, n) for n in names]


TORCH_DTYPES = {}


def torch_dtype(name):
    import torch
    if not TORCH_DTYPES:
        TORCH_DTYPES.update({"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32,
                             "F64": torch.float64, "I64": torch.int64, "I32": torch.int32,
                             "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool})
    return TORCH_DTYPES.get(name, torch.uint8)


class Loader:
    def __init__(self, args):
        self.args = args
        if args.torch:
            import torch  # noqa: F401  (imported before the clock starts: import time is not load time)
            torch_dtype("BF16")
        self.manifest = None
        self.xxh3 = None
        if args.manifest:
            with open(args.manifest) as f:
                m = json.load(f)
            self.manifest = {(t["file"], t["name"]): t for t in m["tensors"]}
            self.manifest_files = {f["file"]: f for f in m["files"]}
            self.xxh3 = Xxh3()
        self.bytes = self.tensors = 0
        self.first_tensor = None
        self.verify_seconds = 0.0
        self.keep = []  # what load_file returns: every tensor stays alive until the end
        self.progress = open(args.progress, "w") if args.progress else None
        self.progress_last = -1.0

    def note_progress(self, start, final=False):
        t = time.perf_counter() - start
        if self.progress is not None and (final or t - self.progress_last >= 0.01):
            self.progress.write("%.6f %d\n" % (t, self.bytes))
            self.progress_last = t

    def check(self, fname, name, offset, length, address):
        t0 = time.perf_counter()
        want = self.manifest.get((fname, name))
        if want is None:
            raise LoadError("tensor %s in %s: not in the manifest" % (name, fname))
        if want["offset"] != offset or want["length"] != length:
            raise LoadError("tensor %s in %s: offset/length %d/%d, manifest %d/%d"
                            % (name, fname, offset, length, want["offset"], want["length"]))
        got = self.xxh3(address, length)
        if got != want["xxh3"]:
            raise LoadError("tensor %s in %s: XXH3 %s, manifest %s (content mismatch)" % (name, fname, got, want["xxh3"]))
        self.verify_seconds += time.perf_counter() - t0

    def load_shard(self, path, start):
        fname = os.path.basename(path)
        os.stat(path)
        fd1 = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        fd2 = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd1).st_size
            if size == 0:
                raise LoadError("%s: empty file" % fname)
            ro = map_file(fd1, size, PROT_READ)
            rw = map_file(fd2, size, PROT_READ | PROT_WRITE)
        finally:
            os.close(fd1)
            os.close(fd2)
        if self.manifest is not None and fname in self.manifest_files and self.manifest_files[fname]["size"] != size:
            raise LoadError("%s: size %d, manifest %d" % (fname, size, self.manifest_files[fname]["size"]))
        data_start, tensors = parse_header(ro, size, fname)
        raw = (ctypes.c_ubyte * size).from_address(rw)  # writable, like torch's private storage
        src = np.frombuffer(raw, dtype=np.uint8)
        names = sorted(tensors)
        dest = None if self.args.torch else np.empty(sum(t[3] - t[2] for t in tensors.values()), dtype=np.uint8)
        at = 0
        for name in names:
            dtype, shape, b, e = tensors[name]
            n = e - b
            if self.args.torch:
                import torch
                tdt = torch_dtype(dtype)
                itemsize = DTYPE_BYTES[dtype] if tdt != torch.uint8 or dtype == "U8" else 1
                t = (torch.frombuffer(raw, dtype=tdt, count=n // itemsize, offset=data_start + b).clone()
                     if n else torch.empty(0, dtype=tdt))
                if tdt != torch.uint8 or dtype == "U8":
                    t = t.reshape(shape)
                addr = t.data_ptr()
                self.keep.append(t)
            else:
                np.copyto(dest[at:at + n], src[data_start + b:data_start + e])
                addr = dest.ctypes.data + at
                at += n
            if self.first_tensor is None:
                self.first_tensor = time.perf_counter() - start
            if self.manifest is not None:
                self.check(fname, name, data_start + b, n, addr)
            self.bytes += n
            self.tensors += 1
            self.note_progress(start)
        if dest is not None:
            self.keep.append(dest)
        del src, raw
        _munmap(ro, size)
        _munmap(rw, size)
        return len(names)

    def run(self):
        start = time.perf_counter()
        shards = find_shards(self.args.path)
        for s in shards:
            self.load_shard(s, start)
        wall = time.perf_counter() - start
        if self.progress is not None:
            self.note_progress(start, final=True)
            self.progress.close()
        if self.manifest is not None and self.tensors != len(self.manifest):
            raise LoadError("loaded %d tensors, manifest lists %d" % (self.tensors, len(self.manifest)))
        seconds = max(wall - self.verify_seconds, 1e-9)
        return {"loader": "st_load.py", "torch": bool(self.args.torch), "shards": len(shards),
                "bytes": self.bytes, "seconds": round(seconds, 6), "gbps": round(self.bytes / seconds / 1e9, 3),
                "first_tensor_s": round(self.first_tensor or 0.0, 6), "tensors": self.tensors,
                "verified": self.manifest is not None, "verify_seconds": round(self.verify_seconds, 6)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", help="model folder or one .safetensors file")
    ap.add_argument("--manifest", help="manifest.json from modelfetch-genmodel: verify every tensor")
    ap.add_argument("--torch", action="store_true", help="copy into torch tensors (frombuffer().clone())")
    ap.add_argument("--progress", help="append 't_seconds bytes' lines to FILE while loading")
    args = ap.parse_args()
    try:
        result = Loader(args).run()
    except (LoadError, OSError) as e:
        print("st_load: FAILED: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
