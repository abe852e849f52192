"""Hardening checks that need their own server (run by meson; each group is one test).

usage: test_hardening.py GROUP --cli CLI --shim LIB [--emu S3EMU] [--eintr PROG]

  tls   an HTTPS endpoint with a self-signed certificate made now (openssl req -x509), served by fake_s3.py:
        by default the CLI and the shim refuse it (an error naming the certificate, no object bytes
        served); with AWS_CA_BUNDLE naming the certificate both work; with MODELFETCH_INSECURE_TLS=1 both
        work and log one `modelfetch:` warning; MODELFETCH_INSECURE_TLS=yes is a configuration error.
  keys  a bucket listing keys no local path can reach (`a/../../etc/passwd`, `../up.bin`, a 1000-character
        name, `./dot.bin`), a key that is both a file and a prefix, and an empty object: through the shim
        the mount lists none of the unreachable names, walking it never leaves it, nothing outside the mount
        is touched (a sentinel file next to it stays as it was), `both` is a directory, and the empty object
        opens, reads as b"" and refuses mmap as an empty local file does.
  eintr tests/shim/eintr.c under the shim against modelfetch-s3emu with --latency-ms 300, with and without
        SA_RESTART.
  badinput  malformed *.safetensors objects (header length past the file or over 100 MB, invalid JSON, not an
        object, overlapping / out-of-range / unsorted offsets, unknown dtype, shape x dtype != length, a
        shape whose product overflows, 0 to 7 bytes) and a malformed model.safetensors.index.json (a missing
        shard, wrong types), served by modelfetch-s3emu under the default safetensors policy: a program
        reading each through read() and mmap gets exactly the object's bytes, exits 0, and the stats count a
        plan failure per malformed header (the planner fell back; nothing failed the program's reads).
"""
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "shim"))
from fake_s3 import FakeS3  # noqa: E402
import sanitizer  # noqa: E402
from emu import Emu  # noqa: E402

PAYLOAD = bytes((i * 131 + 7) % 251 for i in range(300_000))


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELFETCH_", "AWS_", "LD_PRELOAD"))}
    env.update({"MODELFETCH_RETRIES": "1", "MODELFETCH_RETRY_BASE_MS": "10", "MODELFETCH_TIMEOUT_MS": "10000",
                "MODELFETCH_CHUNK_SIZE": "64K", "MODELFETCH_CACHE_SIZE": "16M", "AWS_REGION": "us-east-1",
                "MODELFETCH_NO_SIGN": "1"})  # unsigned fakes: no credential chain
    env.update(extra)
    return env


def shim_env(lib, remote, mount, **extra):
    env = clean_env(MODELFETCH_REMOTE=remote, MODELFETCH_MOUNT=mount, **extra)
    sanitizer.preload_env(lib, env)
    return env


def check(cond, what, errors):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        errors.append(what)


def tls(cli, lib):
    errors = []
    with tempfile.TemporaryDirectory(prefix="mf-tls-") as work:
        cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        with FakeS3({"m/w.bin": PAYLOAD}, bucket="models", tls=(cert, key)) as s3:
            url = "s3://models/m/w.bin"
            base = dict(AWS_ENDPOINT_URL=s3.endpoint)
            # default: verification on, the self-signed certificate is refused
            r = subprocess.run([cli, "cat", url], env=clean_env(**base), capture_output=True, timeout=60)
            err = r.stderr.decode(errors="replace")
            check(r.returncode == 1 and not r.stdout, "default: cat fails with no bytes (rc %d, %d bytes)"
                  % (r.returncode, len(r.stdout)), errors)
            check("certificate" in err.lower() or "ssl" in err.lower(), "default: error names TLS: " +
                  err.strip()[:200], errors)
            check(not any(p.startswith("/models/m/w.bin") for p in s3.requests), "default: no request reached "
                  "the server (%s)" % s3.requests, errors)
            # AWS_CA_BUNDLE trusts it
            r = subprocess.run([cli, "cat", url], env=clean_env(AWS_CA_BUNDLE=cert, **base), capture_output=True,
                               timeout=60)
            check(r.returncode == 0 and r.stdout == PAYLOAD, "AWS_CA_BUNDLE: cat gives the object (rc %d)"
                  % r.returncode, errors)
            check("INSECURE" not in r.stderr.decode(), "AWS_CA_BUNDLE: no insecure warning", errors)
            # MODELFETCH_INSECURE_TLS=1: works, one warning line
            r = subprocess.run([cli, "cat", url], env=clean_env(MODELFETCH_INSECURE_TLS="1", **base),
                               capture_output=True, timeout=60)
            warn = [l for l in r.stderr.decode().splitlines() if l.startswith("modelfetch:") and "INSECURE_TLS" in l]
            check(r.returncode == 0 and r.stdout == PAYLOAD, "INSECURE_TLS=1: cat gives the object", errors)
            check(len(warn) == 1 and "verification" in warn[0], "INSECURE_TLS=1: one warning line: %s" % warn,
                  errors)
            # MODELFETCH_INSECURE_TLS=0 is the default; anything else is a bad variable
            r = subprocess.run([cli, "cat", url], env=clean_env(MODELFETCH_INSECURE_TLS="0", **base),
                               capture_output=True, timeout=60)
            check(r.returncode == 1 and not r.stdout, "INSECURE_TLS=0: still verified", errors)
            r = subprocess.run([cli, "cat", url], env=clean_env(MODELFETCH_INSECURE_TLS="yes", **base),
                               capture_output=True, timeout=60)
            err = r.stderr.decode()
            check(r.returncode == 2 and "MODELFETCH_INSECURE_TLS='yes': expected 0 or 1" in err,
                  "INSECURE_TLS=yes: configuration error (rc %d): %s" % (r.returncode, err.strip()[:200]), errors)
            # the shim: same three cases, reading the file through the mount
            mount = os.path.join(work, "mnt")
            code = ("import sys\n"
                    "try:\n"
                    "    d = open(sys.argv[1], 'rb').read()\n"
                    "except OSError as e:\n"
                    "    print('errno', e.errno); sys.exit(3)\n"
                    "sys.exit(0 if d == bytes((i * 131 + 7) % 251 for i in range(300000)) else 4)\n")
            for name, extra, want_rc in (("default", {}, 3), ("AWS_CA_BUNDLE", {"AWS_CA_BUNDLE": cert}, 0),
                                         ("INSECURE_TLS=1", {"MODELFETCH_INSECURE_TLS": "1"}, 0)):
                env = shim_env(lib, "s3://models/m", mount, **base, **extra)
                r = subprocess.run(["/usr/bin/python3", "-c", code, mount + "/w.bin"], env=env, capture_output=True,
                                   timeout=60)
                err = r.stderr.decode(errors="replace")
                check(r.returncode == want_rc, "shim %s: exit %d (want %d) %s" % (name, r.returncode, want_rc,
                                                                                  err.strip()[:300]), errors)
                if name == "default":
                    check("certificate" in err.lower() or "ssl" in err.lower(), "shim default: log names TLS",
                          errors)
                if name == "INSECURE_TLS=1":
                    n = sum(1 for l in err.splitlines() if l.startswith("modelfetch:") and "INSECURE_TLS" in l)
                    check(n == 1, "shim INSECURE_TLS=1: %d warning lines" % n, errors)
    return errors


KEYS_CODE = r"""
import errno, mmap, os, sys
mount, sentinel = sys.argv[1], sys.argv[2]
out = []
top = sorted(os.listdir(mount))
out.append("top=" + ",".join(top))
out.append("a=" + ",".join(sorted(os.listdir(mount + "/a"))))
walked = []
for d, dirs, files in os.walk(mount):
    for f in files:
        p = os.path.realpath(os.path.join(d, f))
        if not p.startswith(mount + "/"):
            out.append("ESCAPE " + p)
        walked.append(os.path.relpath(os.path.join(d, f), mount))
out.append("walk=" + ",".join(sorted(walked)))
out.append("both=" + ("dir" if os.path.isdir(mount + "/both") else "file"))
out.append("inner=" + open(mount + "/both/inner.bin", "rb").read().decode())
with open(mount + "/empty.bin", "rb") as f:
    out.append("empty=%d:%r" % (os.fstat(f.fileno()).st_size, f.read()))
    try:
        mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        out.append("empty-mmap=ok")
    except ValueError:
        out.append("empty-mmap=ValueError")
for p in ("a/../../etc/passwd", "../up.bin", "x" * 1000, "a/..", "./dot.bin"):
    try:
        data = open(os.path.join(mount, p), "rb").read()
        out.append("open %s -> %d bytes" % (p[:20], len(data)))
    except OSError as e:
        out.append("open %s -> %s" % (p[:20], errno.errorcode.get(e.errno)))
out.append("sentinel=" + open(sentinel, "rb").read().decode())
print("\n".join(out))
"""


def keys(cli, lib):
    errors = []
    objects = {"m/ok.bin": b"ok", "m/a/../../etc/passwd": b"EVIL-PASSWD", "m/a/real.bin": b"real",
               "m/../up.bin": b"EVIL-UP", "m/./dot.bin": b"EVIL-DOT", "m/" + "x" * 1000: b"EVIL-LONG",
               "m/both": b"file-both", "m/both/inner.bin": b"inner", "m/empty.bin": b""}
    with tempfile.TemporaryDirectory(prefix="mf-keys-") as work, FakeS3(objects, bucket="models") as s3:
        # The mount sits at work/mnt/m: ../up.bin would be work/mnt/up.bin, a/../../etc/passwd work/mnt/etc/passwd.
        mount = os.path.join(work, "mnt", "m")
        sentinel = os.path.join(work, "mnt", "up.bin")
        os.makedirs(os.path.join(work, "mnt", "etc"))
        with open(sentinel, "wb") as f:
            f.write(b"sentinel")
        env = shim_env(lib, "s3://models/m", mount, AWS_ENDPOINT_URL=s3.endpoint)
        r = subprocess.run(["/usr/bin/python3", "-c", KEYS_CODE, mount, sentinel], env=env, capture_output=True,
                           timeout=60, text=True)
        print(r.stdout)
        check(r.returncode == 0, "program ran: %s" % r.stderr.strip()[-500:], errors)
        got = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l and not l.startswith("open "))
        check(got.get("top") == "a,both,empty.bin,ok.bin", "root lists only reachable names: %s" % got.get("top"),
              errors)
        check(got.get("a") == "real.bin", "a/ lists only real.bin: %s" % got.get("a"), errors)
        check(got.get("walk") == "a/real.bin,both/inner.bin,empty.bin,ok.bin", "walk: %s" % got.get("walk"), errors)
        check("ESCAPE" not in r.stdout and "EVIL" not in r.stdout, "no path escapes, no unreachable key read",
              errors)
        check(got.get("both") == "dir" and got.get("inner") == "inner", "key both file and prefix: a directory",
              errors)
        check(got.get("empty") == "0:b''" and got.get("empty-mmap") == "ValueError", "empty object: %s %s"
              % (got.get("empty"), got.get("empty-mmap")), errors)
        check(got.get("sentinel") == "sentinel", "file outside the mount read through as itself", errors)
        for p in ("a/../../etc/passwd", "../up.bin", "x" * 20, "a/..", "./dot.bin"):
            line = next((l for l in r.stdout.splitlines() if l.startswith("open " + p[:20] + " ")), "")
            # a/../../etc/passwd normalises to mnt/etc/passwd (outside: a local directory), ../up.bin to the
            # sentinel, a/.. to the mount (a directory): none of them reaches an unreachable key's bytes
            check("EVIL" not in line and line != "", "open %s: %s" % (p[:20], line), errors)
        with open(sentinel, "rb") as f:
            check(f.read() == b"sentinel", "sentinel unchanged", errors)
        check(sorted(os.listdir(os.path.join(work, "mnt"))) == ["etc", "up.bin"], "nothing created next to the mount",
              errors)
        bad = [p for p in s3.requests if "etc" in p or "up.bin" in p or "x" * 100 in p or "dot.bin" in p]
        check(not bad, "no request for an unreachable key: %s" % bad[:3], errors)
    return errors


def eintr(cli, lib, emu, prog):
    errors = []
    with tempfile.TemporaryDirectory(prefix="mf-eintr-") as work:
        data = os.path.join(work, "data")
        os.makedirs(os.path.join(data, "m"))
        files = {}
        for name, size, seed in (("a.bin", 3 * (1 << 20) + 4321, 1), ("b.bin", 2 * (1 << 20) + 77, 2)):
            files[name] = os.path.join(data, "m", name)
            with open(files[name], "wb") as f:
                f.write(bytes((i * seed * 7 + i // 4096) % 256 for i in range(size)))
        server = Emu(emu, data, "models", "--latency-ms", "300")
        endpoint = server.url
        try:
            for mode in ("norestart", "restart"):
                mount = os.path.join(work, "mnt-" + mode)
                env = shim_env(lib, "s3://models/m", mount, AWS_ENDPOINT_URL=endpoint, MODELFETCH_PREFETCH="none",
                               MODELFETCH_CHUNK_SIZE="1M")
                t0 = time.monotonic()
                try:
                    r = subprocess.run([prog, mode, mount + "/a.bin", files["a.bin"], mount + "/b.bin",
                                        files["b.bin"]], env=env, capture_output=True, text=True, timeout=60)
                except subprocess.TimeoutExpired:
                    check(False, "%s: hang (60 s)" % mode, errors)
                    continue
                print(r.stdout.strip(), r.stderr.strip())
                check(r.returncode == 0, "%s: exit %d in %.1f s" % (mode, r.returncode, time.monotonic() - t0),
                      errors)
        finally:
            server.stop()
    return errors


def safetensors_blob(header, data_len, length=None):
    """A safetensors-shaped object: 8-byte little-endian length (`length`, default the header's), the header
    bytes, then data_len bytes of a pattern."""
    h = header if isinstance(header, bytes) else header.encode()
    n = len(h) if length is None else length
    return n.to_bytes(8, "little") + h + bytes((i * 29 + 3) % 256 for i in range(data_len))


BAD_SAFETENSORS = {
    "len_past_file": safetensors_blob('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}', 4, length=1 << 20),
    "len_over_100mb": safetensors_blob("{}", 64, length=200_000_000),
    "len_huge": safetensors_blob("{}", 64, length=(1 << 64) - 1),
    "invalid_json": safetensors_blob('{"a":{"dtype":"U8",', 16),
    "not_object": safetensors_blob("[1,2,3]", 16),
    "overlap": safetensors_blob('{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},'
                                '"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}', 12),
    "out_of_range": safetensors_blob('{"a":{"dtype":"U8","shape":[64],"data_offsets":[0,64]}}', 16),
    "unsorted_gap": safetensors_blob('{"a":{"dtype":"U8","shape":[4],"data_offsets":[8,12]},'
                                     '"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}', 12),
    "unknown_dtype": safetensors_blob('{"a":{"dtype":"Q7","shape":[4],"data_offsets":[0,4]}}', 4),
    "shape_mismatch": safetensors_blob('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', 8),
    "shape_overflow": safetensors_blob('{"a":{"dtype":"F64","shape":[4611686018427387904,8],'
                                       '"data_offsets":[0,8]}}', 8),
    "offsets_wrong_type": safetensors_blob('{"a":{"dtype":"U8","shape":[4],"data_offsets":["0","4"]}}', 4),
    "short_3_bytes": b"\x10\x00\x00",
    "short_7_bytes": b"\x02\x00\x00\x00\x00\x00\x00",
    "empty": b"",
}

READ_BACK = r"""
import mmap, os, sys
mount, local = sys.argv[1], sys.argv[2]
bad = 0
for name in sorted(os.listdir(local)):
    want = open(os.path.join(local, name), "rb").read()
    with open(os.path.join(mount, name), "rb") as f:
        got = f.read()
        mapped = want if not want else mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)[:]
    if got != want or mapped != want:
        print("DIFFERENT", name, len(got), len(mapped), len(want))
        bad += 1
print("checked", len(os.listdir(local)))
sys.exit(1 if bad else 0)
"""


def badinput(cli, lib, emu):
    errors = []
    with tempfile.TemporaryDirectory(prefix="mf-badinput-") as work:
        data = os.path.join(work, "data")
        local = os.path.join(data, "m")
        os.makedirs(local)
        for name, blob in BAD_SAFETENSORS.items():
            with open(os.path.join(local, name + ".safetensors"), "wb") as f:
                f.write(blob)
        good = safetensors_blob('{"w":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}}', 16)
        with open(os.path.join(local, "good.safetensors"), "wb") as f:
            f.write(good)
        # An index naming a shard that does not exist and a weight_map entry of the wrong type.
        with open(os.path.join(local, "model.safetensors.index.json"), "w") as f:
            f.write('{"metadata":{"total_size":"x"},"weight_map":{"w":"good.safetensors","v":"missing.safetensors",'
                    '"u":7}}')
        server = Emu(emu, data, "models", "--latency-ms", "1")
        endpoint = server.url
        try:
            mount = os.path.join(work, "mnt")
            stats = os.path.join(work, "stats.json")
            env = shim_env(lib, "s3://models/m", mount, AWS_ENDPOINT_URL=endpoint, MODELFETCH_STATS=stats,
                           MODELFETCH_LOG="info")
            r = subprocess.run(["/usr/bin/python3", "-c", READ_BACK, mount, local], env=env, capture_output=True,
                               text=True, timeout=120)
            print(r.stdout.strip())
            check(r.returncode == 0, "every object read back byte for byte through read() and mmap (exit %d: %s)"
                  % (r.returncode, r.stderr.strip()[-500:]), errors)
            check("Traceback" not in r.stderr, "no exception in the program", errors)
            import json
            st = json.load(open(stats)) if os.path.exists(stats) else {}
            # Every malformed object with at least 8 bytes has a length prefix to reject; the shorter ones may
            # also fail their plan (too short for a prefix): both count.
            want = sum(1 for b in BAD_SAFETENSORS.values() if len(b) >= 8)
            check(st.get("plan_failures", 0) >= want, "plan failures %s >= %d malformed headers"
                  % (st.get("plan_failures"), want), errors)
            check(st.get("plans", 0) >= 1, "the good file still got a plan (%s)" % st.get("plans"), errors)
            check(st.get("errors", 0) == 0, "no store errors (%s)" % st.get("errors"), errors)
        finally:
            server.stop()
    return errors


def main():
    group = sys.argv[1]
    cli, lib = arg("--cli"), arg("--shim")
    why = sanitizer.blocked(lib, "/usr/bin/python3")
    if why:
        print("skipped:", why)
        return 77
    if group == "tls":
        errors = tls(cli, lib)
    elif group == "keys":
        errors = keys(cli, lib)
    elif group == "badinput":
        errors = badinput(cli, lib, arg("--emu"))
    else:
        errors = eintr(cli, lib, arg("--emu"), arg("--eintr"))
    for e in errors:
        print("FAIL:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
