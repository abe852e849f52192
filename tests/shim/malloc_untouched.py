#!/usr/bin/python3
"""The preloaded shim must not change the program's allocator: malloc still resolves to libc.

(A shared mimalloc linked into the shim used to become every preloaded process's malloc.)
"""
import os
import subprocess
import sys

env = dict(os.environ)
env["LD_PRELOAD"] = os.path.abspath(sys.argv[1])
probe = sys.argv[2]
env["MODELFETCH_REMOTE"], env["MODELFETCH_MOUNT"] = "s3://bucket/prefix", "/models/m"
r = subprocess.run([probe], env=env, capture_output=True, text=True)
assert r.returncode == 0, r.stderr
for line in r.stdout.splitlines():
    name, lib = line.split(" ", 1)
    assert os.path.basename(lib).startswith("libc.so"), f"{name} resolves to {lib}, not libc"
print("ok", r.stdout.replace("\n", "; "))
