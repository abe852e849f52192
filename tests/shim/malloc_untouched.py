#!/usr/bin/python3
"""The preloaded shim must not change the program's allocator: malloc still resolves to libc.

(A shared mimalloc linked into the shim used to become every preloaded process's malloc.) In a sanitized
build the sanitizer runtime replaces the allocator by design, so there it must resolve to that runtime:
never to the shim.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sanitizer  # noqa: E402

lib = os.path.abspath(sys.argv[1])
rt = sanitizer.runtime(lib)
expected = os.path.basename(rt).split(".so")[0] + ".so" if rt else "libc.so"
env = sanitizer.preload_env(lib, dict(os.environ))
probe = sys.argv[2]
env["MODELFETCH_REMOTE"], env["MODELFETCH_MOUNT"] = "s3://bucket/prefix", "/models/m"
r = subprocess.run([probe], env=env, capture_output=True, text=True)
assert r.returncode == 0, r.stderr
assert len(r.stdout.splitlines()) == 6, r.stdout
for line in r.stdout.splitlines():
    name, where = line.split(" ", 1)
    assert os.path.basename(where).startswith(expected), f"{name} resolves to {where}, not {expected}"
print("ok", r.stdout.replace("\n", "; "))
