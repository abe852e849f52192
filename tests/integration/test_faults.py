"""Fault injection through the shim: a generated model (2 shards, 40 MB) served by modelfetch-s3emu with
faults, loaded by both reference loaders (tools/loaders/st_load.py, modelfetch-load) under `modelfetch run`,
each tensor checked against the generator's manifest (XXH3-64).

Transient faults (connection resets, 503/500 bursts, short bodies, stalled bodies): the load completes and
every hash matches. Permanent faults (the object rewritten or its ETag bumped mid-load, the object deleted
mid-load, the emulator killed mid-load, credentials expiring mid-load (403 ExpiredToken on every later
request), a bucket that does not exist, a closed port, a host name that does not resolve): the load fails cleanly
within a bounded time: non-zero exit, either an I/O error reported by the loader or SIGBUS on a mapped access
preceded by the shim's log line naming the file, the byte range and the cause. Never a hang (each run has a
wall-clock limit), never wrong bytes (a manifest mismatch is a failure whatever the scenario).

Process hygiene rides along: a run with AWS credentials, MODELFETCH_LOG=debug and MODELFETCH_STATS must not
show the secret key or session token anywhere in its output or statistics.

Prints one line per fault kind: runs, completed, failed cleanly, wrong bytes, worst time. Exit 0 when every
run behaved, 1 otherwise. Usage: test_faults.py CLI EMULATOR GENMODEL LOADER [--runs N]
"""
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shim"))
import sanitizer  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu import Emu as _Emu  # noqa: E402


def Emu(exe, data, *args):  # the bucket every fault run uses
    return _Emu(exe, data, "models", *args)

HERE = os.path.dirname(os.path.abspath(__file__))
ST_LOAD = os.path.join(HERE, "..", "..", "tools", "loaders", "st_load.py")
HANG_S = 90          # a run still going after this is a hang (the scenarios below end in seconds)
FAIL_BOUND_S = 30    # a permanent fault must be reported within this (timeouts below are 2-3 s)
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN0123456789"

# Shim settings for every run: small timeouts so permanent faults end fast, few connections so a 40 MB
# model is still many requests (1 MiB chunks: ~40 fault draws per load).
SHIM_ENV = {
    "MODELFETCH_CHUNK_SIZE": "1M", "MODELFETCH_CACHE_SIZE": "64M", "MODELFETCH_MAX_CONNECTIONS": "4",
    "MODELFETCH_RETRY_BASE_MS": "20", "MODELFETCH_CONNECT_TIMEOUT_MS": "1000", "MODELFETCH_LOW_SPEED_TIME_S": "1",
    "MODELFETCH_TIMEOUT_MS": "3000", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
}


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def loader_cmd(kind, mount, manifest, loader):
    if kind.startswith("py-code:"):
        return ["/usr/bin/python3", "-c", kind[len("py-code:"):], mount]
    if kind == "py":
        return ["/usr/bin/python3", ST_LOAD, mount, "--manifest", manifest]
    return [loader, mount, "--manifest", manifest]


def run_load(ctx, kind, endpoint, bucket="models", action=None, extra_env=None):
    """One load under `modelfetch run`; returns (outcome, seconds, output). `action(t0)` runs on a thread
    while the load is in flight (the mid-load faults)."""
    mount = os.path.join(ctx["root"], "mnt", "m%d" % random.randrange(1 << 30))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELFETCH_", "AWS_"))}
    env.update(SHIM_ENV)
    env["AWS_ENDPOINT_URL"] = endpoint
    env.update(extra_env or {})
    if "AWS_ACCESS_KEY_ID" not in env:  # the emulator takes unsigned requests; no credential chain needed
        env["MODELFETCH_NO_SIGN"] = "1"
    # A sanitized shim needs its runtime (and, for ASan, the initfirst helper) in LD_PRELOAD; `modelfetch
    # run` keeps a sanitizer runtime ahead of the shim it adds. An ordinary build: nothing to preload.
    first = sanitizer.runtime_preload(ctx["shim"])
    if first:
        sanitizer.preload_env(ctx["shim"], env)
        env["LD_PRELOAD"] = first
    cmd = [ctx["cli"], "run", "--remote", "s3://%s/m" % bucket, "--mount", mount, "--"]
    cmd += loader_cmd(kind, mount, ctx["manifest"], ctx["loader"])
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if action:
        threading.Thread(target=action, args=(t0,), daemon=True).start()
    try:
        out, _ = proc.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return "hang", time.monotonic() - t0, out
    secs = time.monotonic() - t0
    if "content mismatch" in out or "differ" in out:
        return "wrong-bytes", secs, out
    if proc.returncode == 0:
        return ("completed" if '"verified": true' in out or '"verified":true' in out else "unverified"), secs, out
    if proc.returncode == -signal.SIGBUS:
        # The shim must have said which file, which bytes and why before the access got SIGBUS.
        ok = "cannot read bytes" in out and ".safetensors" in out and "SIGBUS" in out
        return ("failed-cleanly" if ok else "sigbus-without-log"), secs, out
    if proc.returncode < 0:
        return "crash(signal %d)" % -proc.returncode, secs, out
    if "ERROR: AddressSanitizer" in out or "runtime error:" in out or "ThreadSanitizer" in out:
        return "sanitizer-report", secs, out
    return "failed-cleanly", secs, out


def at(delay, fn, emu=None):
    """`fn` at `delay` s into the load, and not before `emu` has served an object GET: a slow start (a
    sanitized build) must not turn a mid-load fault into one that happens before the load (the shim would
    then consistently serve the new object, which the manifest of the old one calls wrong)."""
    def action(t0):
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        deadline = time.monotonic() + 60
        while emu is not None and time.monotonic() < deadline:
            try:
                if emu.stats().get("get_object", 0) > 0:
                    break
            except OSError:
                break
            time.sleep(0.02)
        fn()
    return action


def replace_tail(path, block):
    """Writes a copy whose last 4096 bytes are `block` and renames it over `path`: atomic, as an S3 PUT is
    (a GET in flight keeps streaming the old object from its open file; the new inode is a new ETag).
    Rewriting in place would change the bytes under a GET the emulator already answered with the old ETag,
    which no real store does, and which no client can detect."""
    with open(path, "rb") as f:
        data = f.read()
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(data[:-4096] + block)
    os.replace(tmp, path)


def rewrite_shard(path):
    """Replaces the object with one whose last 4096 bytes differ (same size, a new ETag)."""
    with open(path, "rb") as f:
        f.seek(-4096, os.SEEK_END)
        block = f.read(4096)
    replace_tail(path, bytes(b ^ 0xFF for b in block))
    return block


def restore_shard(path, block):
    replace_tail(path, block)


def main():
    cli, emu_exe, genmodel, loader = sys.argv[1:5]
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 2
    shim = os.path.join(os.path.dirname(os.path.dirname(cli)), "shim", "libmodelfetch.so")
    root = tempfile.mkdtemp(prefix="mf-faults-")
    data = os.path.join(root, "data")
    model = os.path.join(data, "m")
    manifest = os.path.join(root, "manifest.json")
    os.makedirs(data)
    subprocess.check_call([genmodel, "--out", model, "--size", "40M", "--shards", "2", "--manifest", manifest],
                          stdout=subprocess.DEVNULL)
    shards = sorted(os.path.join(model, f) for f in os.listdir(model) if f.endswith(".safetensors"))
    ctx = {"cli": cli, "loader": loader, "manifest": manifest, "root": root, "shim": shim}
    # Under the TSan build only the instrumented C++ loader runs (tests/shim/sanitizer.py, blocked()).
    kinds = ("cc",) if sanitizer.blocked(shim, "/usr/bin/python3") else ("py", "cc")
    results = {}  # fault kind -> list of (outcome, seconds)
    failures = []

    def record(name, expect, outcome, secs, out):
        results.setdefault(name, []).append((outcome, secs))
        ok = outcome in expect and not (outcome == "failed-cleanly" and secs > FAIL_BOUND_S)
        if not ok:
            failures.append(name)
            print("FAIL %s: %s after %.1fs (expected %s)\n%s" % (name, outcome, secs, "/".join(expect),
                                                                  out[-3000:]), file=sys.stderr)

    # A stall costs MODELFETCH_LOW_SPEED_TIME_S (1 s) per attempt: the stall runs allow 8 s per request, so a
    # chunk that stalls twice in a row (1 load in 3 with 3 s) still gets its retry; each run still
    # ends in seconds.
    transient = [("reset", ["--fault-reset", "0.25"], {}), ("5xx", ["--fault-5xx", "0.3"], {}),
                 ("short-body", ["--fault-short", "0.25"], {}),
                 ("stall", ["--fault-stall", "0.1"], {"MODELFETCH_TIMEOUT_MS": "8000"})]
    for name, opts, env_extra in transient:
        for i in range(runs):
            for kind in kinds:
                emu = Emu(emu_exe, data, "--latency-ms", "2", "--fault-seed", str(17 + i), *opts)
                try:
                    outcome, secs, out = run_load(ctx, kind, emu.url, extra_env=env_extra)
                    fired = sum(v for k, v in emu.stats().items() if k.startswith("fault_"))
                finally:
                    emu.stop()
                if fired == 0:
                    outcome = "no-fault-fired"
                record(name, ["completed"], outcome, secs, out)

    # Permanent faults mid-load: the emulator is paced (~3 s for the model) so the action lands mid-load.
    paced = ["--latency-ms", "2", "--conn-rate", "4M", "--link-rate", "12M"]
    for i in range(runs):
        for kind in kinds:
            emu = Emu(emu_exe, data, *paced)
            try:
                key = "m/" + os.path.basename(shards[-1])
                outcome, secs, out = run_load(ctx, kind, emu.url,
                                              action=at(0.3 + 0.4 * i, lambda: emu.post("/_emu/replace?key=" + key), emu))
            finally:
                emu.stop()
            # Completed is acceptable only if every chunk of the object was fetched before the bump.
            record("etag-replaced", ["failed-cleanly", "completed"], outcome, secs, out)

            emu = Emu(emu_exe, data, *paced)
            saved = []
            try:
                outcome, secs, out = run_load(ctx, kind, emu.url,
                                              action=at(0.3 + 0.4 * i, lambda: saved.append(rewrite_shard(shards[-1])), emu))
            finally:
                emu.stop()
                if saved:
                    restore_shard(shards[-1], saved[0])
            record("rewritten", ["failed-cleanly", "completed"], outcome, secs, out)

            emu = Emu(emu_exe, data, *paced)
            try:
                outcome, secs, out = run_load(ctx, kind, emu.url,
                                              action=at(0.3 + 0.4 * i, lambda: emu.proc.kill(), emu))
            finally:
                emu.stop()
            record("server-killed", ["failed-cleanly"], outcome, secs, out)

            emu = Emu(emu_exe, data, *paced)
            try:
                outcome, secs, out = run_load(ctx, kind, emu.url,
                                              action=at(0.3 + 0.4 * i, lambda: emu.post("/_emu/expire-credentials"), emu))
            finally:
                emu.stop()
            record("credentials-expired", ["failed-cleanly"], outcome, secs, out)

    for kind in kinds:
        emu = Emu(emu_exe, data, "--latency-ms", "2")
        try:
            outcome, secs, out = run_load(ctx, kind, emu.url, bucket="nosuchbucket")
        finally:
            emu.stop()
        record("wrong-bucket", ["failed-cleanly"], outcome, secs, out)
        outcome, secs, out = run_load(ctx, kind, "http://127.0.0.1:%d" % closed_port())
        record("connect-refused", ["failed-cleanly"], outcome, secs, out)
        # A name that cannot resolve (RFC 2606 reserves .invalid): curl's resolver fails, no request is sent.
        outcome, secs, out = run_load(ctx, kind, "http://modelfetch-test.invalid:9")
        record("dns-failure", ["failed-cleanly"], outcome, secs, out)

    # Exit with transfers in flight: a Python child maps every shard, a daemon thread walks the pages of the
    # last one (faults waiting on a paced emulator), and the main thread exits after 0.5 s through os._exit
    # or a normal interpreter exit; the process must be gone within HANG_S (bounded by FAIL_BOUND_S), rc 0.
    if "py" in kinds:
        for how in ("os._exit(0)", "sys.exit(0)"):
            code = ("import ctypes, mmap, os, sys, threading, time\n"
                    "d = sys.argv[1]\n"
                    "fs = sorted(f for f in os.listdir(d) if f.endswith('.safetensors'))\n"
                    "ms = []\n"
                    "for f in fs:\n"
                    "    with open(os.path.join(d, f), 'rb') as fh:\n"
                    "        ms.append(mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ))\n"
                    "def walk(m):\n"
                    "    for i in range(0, len(m), 4096): m[i]\n"
                    "threading.Thread(target=walk, args=(ms[-1],), daemon=True).start()\n"
                    "time.sleep(0.5)\n" + how + "\n")
            emu = Emu(emu_exe, data, *paced)
            try:
                outcome, secs, out = run_load(ctx, "py-code:" + code, emu.url)
            finally:
                emu.stop()
            if outcome == "unverified":  # the child prints nothing: exit status 0 is the pass
                outcome = "completed"
            record("exit-in-flight", ["completed"], outcome if secs < FAIL_BOUND_S else "slow-exit", secs, out)

    # Credentials never in logs or statistics, at the most verbose log level, through a faulty server.
    emu = Emu(emu_exe, data, "--latency-ms", "2", "--fault-5xx", "0.2", "--fault-reset", "0.1")
    stats = os.path.join(root, "stats.json")
    try:
        outcome, secs, out = run_load(ctx, "cc", emu.url, extra_env={
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEHARDEN", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN,
            "MODELFETCH_LOG": "debug", "MODELFETCH_STATS": stats})
    finally:
        emu.stop()
    text = out + (open(stats).read() if os.path.exists(stats) else "")
    leaked = SECRET in text or TOKEN in text or SECRET[:16] in text
    record("credentials-debug-log", ["completed"], "credential-leak" if leaked else outcome, secs, out)
    if not os.path.exists(stats):
        record("credentials-debug-log", ["completed"], "no-stats-file", secs, out)

    print("%-22s %5s %10s %15s %12s %10s" % ("fault", "runs", "completed", "failed-cleanly", "wrong-bytes",
                                             "worst-s"))
    for name, rs in results.items():
        done = sum(1 for o, _ in rs if o == "completed")
        clean = sum(1 for o, _ in rs if o == "failed-cleanly")
        wrong = sum(1 for o, _ in rs if o == "wrong-bytes")
        worst = max((s for o, s in rs if o == "failed-cleanly"), default=max(s for _, s in rs))
        print("%-22s %5d %10d %15d %12d %10.1f" % (name, len(rs), done, clean, wrong, worst))
    subprocess.call(["rm", "-rf", root])
    if failures:
        print("FAILED:", ", ".join(sorted(set(failures))))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
