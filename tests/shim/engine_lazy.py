#!/usr/bin/python3
"""The engine is loaded only by a process that uses a mount (run through harness.py: LD_PRELOAD is the thin
library, MODELFETCH_* name a mount at MF_MOUNT_DIR).

- This Python process never touches the mount: its /proc/self/maps has the thin library and neither the
  engine nor libcurl.
- A child that never touches the mount (cat /proc/self/maps): the same.
- A child that stats a mounted file, and one that reads one: the engine (and its libcurl) are in their maps,
  and the bytes are right.
"""
import os
import subprocess
import sys

mount, local = os.environ["MF_MOUNT_DIR"], os.environ["MF_LOCAL_DIR"]
preload = os.environ["LD_PRELOAD"].split(":")[-1]
thin = os.path.basename(preload)
engine = thin[:-len(".so")] + "-engine.so"


def libs(maps):
    return {os.path.basename(line.split()[-1]) for line in maps.splitlines() if "/" in line}


def check(name, maps, want_engine):
    found = libs(maps)
    assert thin in found, "%s: the thin library %s is not mapped: %s" % (name, thin, sorted(found))
    has_engine = engine in found
    has_curl = any(l.startswith("libcurl") for l in found)
    if want_engine:
        assert has_engine, "%s used the mount but %s is not mapped" % (name, engine)
    else:
        assert not has_engine and not has_curl, \
            "%s never touched the mount but maps %s" % (name, [l for l in found if l == engine or "curl" in l])
    print("ok", name, "engine" if has_engine else "no engine", "curl" if has_curl else "no curl")


with open("/proc/self/maps") as f:
    check("python3 (this process)", f.read(), False)
r = subprocess.run(["/bin/cat", "/proc/self/maps"], capture_output=True, text=True, check=True)
check("cat /proc/self/maps", r.stdout, False)
# sh's builtin test stats the mounted file: the engine is loaded in sh itself
r = subprocess.run(["/bin/sh", "-c", 'test -f "$1" && cat /proc/$$/maps', "sh", mount + "/odd.bin"],
                   capture_output=True, text=True)
assert r.returncode == 0, r
check("sh after test -f on the mount", r.stdout, True)
r = subprocess.run(["/bin/cat", mount + "/odd.bin"], capture_output=True, check=True)
with open(os.path.join(local, "odd.bin"), "rb") as f:
    assert r.stdout == f.read(), "cat of a mounted file: wrong bytes"
print("ok cat of a mounted file")
print("ok")
