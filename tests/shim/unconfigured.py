#!/usr/bin/python3
"""Without configuration the shim prints one line naming the variables and passes everything through."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sanitizer  # noqa: E402

why = sanitizer.blocked(sys.argv[1], "/bin/cat")
if why:
    print("skipped:", why)
    sys.exit(77)
env = {k: v for k, v in os.environ.items() if not k.startswith("MODELFETCH_")}
sanitizer.preload_env(sys.argv[1], env)
r = subprocess.run(["/bin/cat", "/etc/hostname"], env=env, capture_output=True, text=True)
assert r.returncode == 0, r
lines = [l for l in r.stderr.splitlines() if l.startswith("modelfetch:")]
assert len(lines) == 1 and "MODELFETCH_REMOTE" in lines[0], r.stderr
env["MODELFETCH_REMOTE"], env["MODELFETCH_MOUNT"] = "ftp://x", "/models"
r = subprocess.run(["/bin/cat", "/etc/hostname"], env=env, capture_output=True, text=True)
assert r.returncode == 0 and "MODELFETCH_REMOTE='ftp://x'" in r.stderr, r.stderr
print("ok")
