#!/usr/bin/python3
"""Every name in shim/libmodelfetch.map is defined and exported by the thin library, and the engine has its
guarded entry point mf_hook_NAME: a hook added to the map but not to shim/hooks.def would silently not be
interposed (a version script ignores names nothing defines).

usage: exports.py MAP THIN_LIB ENGINE_LIB
"""
import re
import subprocess
import sys

map_file, thin, engine = sys.argv[1:4]
text = re.sub(r"/\*.*?\*/", "", open(map_file).read(), flags=re.S)
glob = text.split("global:")[1].split("local:")[0]
names = {n.strip() for n in glob.replace("\n", " ").split(";") if n.strip()}


def defined(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


in_thin, in_engine = defined(thin), defined(engine)
missing_thin = sorted(names - in_thin)
missing_engine = sorted(n for n in names if n != "modelfetch_version" and "mf_hook_" + n not in in_engine)
extra_thin = sorted(n for n in in_thin - names if not n.startswith("_") or n.startswith("__"))
print("%d names in the map, %d exported by %s" % (len(names), len(names & in_thin), thin))
ok = True
if missing_thin:
    print("not defined by the thin library (add them to shim/hooks.def):", " ".join(missing_thin))
    ok = False
if missing_engine:
    print("no mf_hook_ entry point in the engine (shim/hooks.def, shim/guard.cpp):", " ".join(missing_engine))
    ok = False
extra = [n for n in extra_thin if n not in ("_init", "_fini")]
if extra:
    print("exported by the thin library but not in the map:", " ".join(extra))
    ok = False
print("ok" if ok else "FAIL")
sys.exit(0 if ok else 1)
