#!/usr/bin/python3
"""The "ways to read a file" suite, Python and tools part (ways.c is the C part), run under LD_PRELOAD
through harness.py: every test object under MF_MOUNT_DIR is read through every way Python and the usual
tools get at a file's bytes, and compared with the same file under MF_LOCAL_DIR. Tools run as
subprocesses and inherit LD_PRELOAD. Each way must give the object's bytes; an error, or zero-filled,
short or otherwise wrong output, is a failure.

usage: ways.py [METHOD...]   (default: every method; names as printed)
Prints one "FAIL method file: why" line per failure and a summary; exits 1 on any failure.
"""
import errno
import hashlib
import mmap
import os
import shutil
import signal
import subprocess
import sys
import tempfile

L = os.environ["MF_LOCAL_DIR"]
M = os.environ["MF_MOUNT_DIR"]
FILES = sorted(os.path.relpath(os.path.join(d, f), L) for d, _, fs in os.walk(L) for f in fs)
LOCAL = {}
for _name in FILES:
    with open(os.path.join(L, _name), "rb") as _f:
        LOCAL[_name] = _f.read()
TMP = tempfile.mkdtemp(prefix="mf-ways-py-")
OUT = os.path.join(TMP, "out")
failures = []


def describe(got, want):
    """What is wrong with `got` (size, first bad offset, zeros from there on)."""
    i = 0
    n = min(len(got), len(want))
    if got[:n] != want[:n]:
        lo, hi = 0, n  # first difference by bisection on slices (files are up to ~10 MB)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if got[lo:mid] != want[lo:mid]:
                hi = mid
            else:
                lo = mid
        i = lo if got[lo] != want[lo] else hi
    else:
        i = n
    zeros = i < len(got) and not any(got[i:])
    return "got %d bytes, want %d; first difference at %d%s" % (
        len(got), len(want), i, " (zeros from there to the end)" if zeros else "")


def check(method, name, got, want=None, what=""):
    want = LOCAL[name] if want is None else want
    if got != want:
        fail(method, name, (what + ": " if what else "") + describe(got, want))


def fail(method, name, why):
    failures.append((method, name))
    print("FAIL %s %s: %s" % (method, name, why), flush=True)


def out_bytes():
    with open(OUT, "rb") as f:
        return f.read()


def mp(name):
    return os.path.join(M, name)


# --- Python ---------------------------------------------------------------------------------------------

def m_open_read(name):
    with open(mp(name), "rb") as f:
        check("open().read", name, f.read())


def m_unbuffered(name):
    buf = bytearray()
    with open(mp(name), "rb", buffering=0) as f:
        chunk = bytearray(65537)
        while True:
            n = f.readinto(chunk)
            if not n:
                break
            buf += chunk[:n]
    check("readinto", name, bytes(buf))


def m_copyfile(name):
    shutil.copyfile(mp(name), OUT)  # os.sendfile inside (Python 3.8+ on Linux)
    check("shutil.copyfile", name, out_bytes())


def m_copyfileobj(name):
    with open(mp(name), "rb") as src, open(OUT, "wb") as dst:
        shutil.copyfileobj(src, dst)
    check("shutil.copyfileobj", name, out_bytes())


def m_sendfile(name):
    for with_offset in (False, True):
        fd = os.open(mp(name), os.O_RDONLY)
        out = os.open(OUT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        off = 0
        while True:  # the loop shutil.copyfile runs
            n = os.sendfile(out, fd, off if with_offset else None, 1 << 20)
            if n == 0:
                break
            off += n
        os.close(out)
        os.close(fd)
        check("os.sendfile", name, out_bytes(), what="offset %s" % ("given" if with_offset else "None"))


def m_copy_file_range(name):
    """Into a file on disk and into a memfd (the same superblock as a sparse memfd: its holes would be
    copied). EXDEV before anything is copied (the mount is another file system) is a clear error that
    programs handle by falling back to read/write: accepted. What was copied must be right."""
    for dest in ("file", "memfd"):
        fd = os.open(mp(name), os.O_RDONLY)
        out = os.open(OUT, os.O_RDWR | os.O_CREAT | os.O_TRUNC) if dest == "file" else os.memfd_create("out")
        copied, err = 0, None
        try:
            while True:
                n = os.copy_file_range(fd, out, (1 << 20) + 5)
                if not n:
                    break
                copied += n
        except OSError as e:
            err = e
        got = os.pread(out, copied + 1, 0) if copied else b""
        os.close(out)
        os.close(fd)
        if err is None:
            check("os.copy_file_range", name, got, what="to a " + dest)
        elif err.errno != errno.EXDEV or copied:
            fail("os.copy_file_range", name, "to a %s: %s after %d bytes" % (dest, err, copied))
        if err is not None and got != LOCAL[name][:len(got)]:
            fail("os.copy_file_range", name, "to a %s: %s" % (dest, describe(got, LOCAL[name][:len(got)])))


def m_splice(name):
    fd = os.open(mp(name), os.O_RDONLY)
    r, w = os.pipe()
    got = bytearray()
    while True:
        n = os.splice(fd, w, 65536)
        if n == 0:
            break
        while n:
            b = os.read(r, n)
            got += b
            n -= len(b)
    for x in (r, w, fd):
        os.close(x)
    check("os.splice", name, bytes(got))


def m_mmap(name):
    if not LOCAL[name]:
        return
    with open(mp(name), "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    check("mmap.mmap", name, m[:], what="ACCESS_READ")
    m.close()
    off = mmap.ALLOCATIONGRANULARITY * 3
    if len(LOCAL[name]) > off:
        with open(mp(name), "rb") as f:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY, offset=off)
        check("mmap.mmap", name, m[:], LOCAL[name][off:], "ACCESS_COPY at offset %d" % off)
        m[0:3] = b"xyz"
        m.close()


def m_numpy(name):
    import numpy as np
    check("numpy.fromfile", name, np.fromfile(mp(name), dtype=np.uint8).tobytes())
    if LOCAL[name]:
        check("numpy.memmap", name, np.memmap(mp(name), dtype=np.uint8, mode="r").tobytes(), what="mode r")
        if len(LOCAL[name]) > 8192:
            a = np.memmap(mp(name), dtype=np.uint8, mode="c", offset=4096 + 17)
            check("numpy.memmap", name, a.tobytes(), LOCAL[name][4096 + 17:], "mode c, offset 4113")


def m_torch(name):
    import torch
    data = LOCAL[name]
    if data:
        s = torch.UntypedStorage.from_file(mp(name), shared=False, nbytes=len(data))
        u = torch.empty(0, dtype=torch.uint8).set_(s)
        check("torch.UntypedStorage.from_file", name, u.numpy().tobytes())
    if name.endswith(".pt"):
        got, want = torch.load(mp(name)), torch.load(os.path.join(L, name))
        if got.dtype != want.dtype or got.shape != want.shape or got.numpy().tobytes() != want.numpy().tobytes():
            fail("torch.load", name, "tensor differs: %s %s" % (got.dtype, tuple(got.shape)))
        with open(mp(name), "rb") as f:
            got = torch.load(f)
        check("torch.load", name, got.numpy().tobytes(), want.numpy().tobytes(), "from a file object")


# --- tools (subprocesses inherit LD_PRELOAD) --------------------------------------------------------------

def tool(method, name, argv, want=None, stdout_is_output=False):
    """Runs argv; the output is its stdout (stdout_is_output) or the file OUT; compares with want."""
    if os.path.exists(OUT):
        os.unlink(OUT)
    res = subprocess.run(argv, capture_output=True, timeout=60)
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace").strip().splitlines()
        fail(method, name, "exit status %d: %s" % (res.returncode, err[0] if err else "(no message)"))
        return
    got = res.stdout if stdout_is_output else out_bytes()
    check(method, name, got, want)


def m_cp(name):
    tool("cp", name, ["cp", mp(name), OUT])


def m_cat(name):
    tool("cat", name, ["cat", mp(name)], stdout_is_output=True)


def m_dd(name):
    tool("dd", name, ["dd", "if=" + mp(name), "of=" + OUT, "bs=69632", "status=none"])  # 17 pages: ASan wants aligned_alloc sizes page multiples
    tool("dd", name, ["dd", "if=" + mp(name), "bs=4096", "skip=3", "status=none"], LOCAL[name][3 * 4096:],
         stdout_is_output=True)


def m_head_tail(name):
    tool("tail -c", name, ["tail", "-c", "5000", mp(name)], LOCAL[name][-5000:] if LOCAL[name] else b"",
         stdout_is_output=True)


def m_sha256sum(name):
    res = subprocess.run(["sha256sum", mp(name)], capture_output=True, timeout=60)
    want = hashlib.sha256(LOCAL[name]).hexdigest()
    got = res.stdout.decode(errors="replace").split(" ")[0]
    if res.returncode != 0 or got != want:
        fail("sha256sum", name, "exit status %d, %s, want %s %s" % (res.returncode, got, want,
                                                                     res.stderr.decode(errors="replace").strip()))


def m_rsync(name):
    tool("rsync", name, ["rsync", mp(name), OUT])


PER_FILE = [("open().read", m_open_read), ("readinto", m_unbuffered), ("shutil.copyfile", m_copyfile),
            ("shutil.copyfileobj", m_copyfileobj), ("os.sendfile", m_sendfile),
            ("os.copy_file_range", m_copy_file_range), ("os.splice", m_splice), ("mmap.mmap", m_mmap),
            ("numpy", m_numpy), ("torch", m_torch), ("cp", m_cp), ("cat", m_cat), ("dd", m_dd),
            ("tail", m_head_tail), ("sha256sum", m_sha256sum), ("rsync", m_rsync)]


def compare_tree(method, root):
    """Every fixture file under root equals the local copy."""
    for name in FILES:
        p = os.path.join(root, name)
        if not os.path.isfile(p):
            fail(method, name, "missing from the copy")
            continue
        with open(p, "rb") as f:
            check(method, name, f.read())


def whole_tree(method, argv, root):
    res = subprocess.run(argv, capture_output=True, timeout=120)
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace").strip().splitlines()
        fail(method, "(mount)", "exit status %d: %s" % (res.returncode, err[0] if err else "(no message)"))
        return
    compare_tree(method, root)


def m_tar(_):
    archive = os.path.join(TMP, "m.tar")
    dest = os.path.join(TMP, "untar")
    os.makedirs(dest)
    res = subprocess.run(["tar", "-cf", archive, "-C", M, "."], capture_output=True, timeout=120)
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace").strip().splitlines()
        fail("tar", "(mount)", "tar c: exit status %d: %s" % (res.returncode, err[0] if err else ""))
        return
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # extract outside the shim
    subprocess.run(["tar", "-xf", archive, "-C", dest], check=True, env=env)
    compare_tree("tar", dest)


def m_rsync_tree(_):
    dest = os.path.join(TMP, "rsync-tree")
    whole_tree("rsync -a", ["rsync", "-a", M + "/", dest + "/"], dest)


def m_cp_tree(_):
    dest = os.path.join(TMP, "cp-tree")
    whole_tree("cp -r", ["cp", "-r", M, dest], dest)


WHOLE = [("tar", m_tar), ("rsync-tree", m_rsync_tree), ("cp-tree", m_cp_tree)]


def on_alarm(sig, frame):
    print("FAIL watchdog: no answer within 100 s (hung)", flush=True)
    os._exit(3)


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(100)
    wanted = set(sys.argv[1:])
    for tool_name in ("cp", "cat", "dd", "tail", "sha256sum", "rsync", "tar"):
        if shutil.which(tool_name) is None and (not wanted or tool_name in wanted):
            print("skipped: %s is not installed (Debian package; scripts/lib.sh MF_APT_PACKAGES)" % tool_name)
            return 77
    ran = 0
    for method, run in PER_FILE + WHOLE:
        if wanted and method not in wanted:
            continue
        ran += 1
        before = len(failures)
        for name in FILES if (method, run) in PER_FILE else ["(mount)"]:
            try:
                run(name)
            except Exception as e:  # noqa: BLE001  (an error is a failure of this way, reported, not fatal)
                fail(method, name, "%s: %s" % (type(e).__name__, e))
        print("%-20s %s" % (method, "ok" if len(failures) == before else "FAILED"), flush=True)
    shutil.rmtree(TMP, ignore_errors=True)
    if not ran:
        print("no such method: %s" % " ".join(sorted(wanted)))
        return 2
    print("ways (Python, tools): %d methods x %d files, %d failures" % (ran, len(FILES), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
