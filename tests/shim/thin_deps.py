#!/usr/bin/python3
"""The preloaded libmodelfetch.so depends on libc alone (DT_NEEDED, read with readelf -d): everything else
(curl, TLS, the C++ runtime) belongs to the engine, which is loaded only when a mount path is used.

usage: thin_deps.py LIB...   A sanitized build may also need its sanitizer runtime (and what that pulls in).
"""
import re
import subprocess
import sys

ALLOWED = {"libc.so.6"}
SANITIZER = re.compile(r"lib(asan|ubsan|tsan|lsan)\.so")
SANITIZER_EXTRA = {"libstdc++.so.6", "libm.so.6", "libgcc_s.so.1"}  # the UBSan runtime's C++ needs

bad = []
for lib in sys.argv[1:]:
    out = subprocess.run(["readelf", "-d", lib], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    sanitized = any(SANITIZER.match(n) for n in needed)
    extra = [n for n in needed if n not in ALLOWED and not SANITIZER.match(n)
             and not (sanitized and n in SANITIZER_EXTRA)]
    if "libc.so.6" not in needed:
        bad.append("%s: libc.so.6 is not in DT_NEEDED %s (readelf output changed?)" % (lib, needed))
    if extra:
        bad.append("%s depends on %s beyond libc: the preloaded library must stay thin (move the code into the "
                   "engine, shim/meson.build)" % (lib, ", ".join(extra)))
    print(lib, "DT_NEEDED:", " ".join(needed))
if bad:
    print("\n".join(bad))
    sys.exit(1)
print("ok")
