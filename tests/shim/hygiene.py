#!/usr/bin/python3
"""Process hygiene under the shim (run through harness.py): no file descriptor leaks and a prompt exit.

1. fds: after a warm-up cycle (the shim's own fds — userfaultfd, eventfds, sockets — are created once, on
   first use), 30 more cycles of open/read/pread/fstat/dup/mmap/munmap/close over every fixture, opendir and
   fopen must leave /proc/self/fd exactly as it was: every fd the shim hands out or makes for itself per call
   is closed.
2. exit with work in flight: a child maps every fixture, touches the first page of each (fetches start), and
   calls os._exit(0) at once; it must be gone within 10 s (no join on a transfer, no hang in a destructor)
   with status 0. The same with a normal interpreter exit (atexit, module teardown) while mappings are live.
"""
import mmap
import os
import subprocess
import sys
import time

MOUNT = os.environ["MF_MOUNT_DIR"]


def files():
    out = []
    for dirpath, _, names in os.walk(MOUNT):
        out += [os.path.join(dirpath, n) for n in sorted(names)]
    return out


def fds():
    return sorted(os.listdir("/proc/self/fd"))


def cycle(paths):
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        size = os.fstat(fd).st_size
        os.read(fd, 4096)
        os.pread(fd, 100, max(0, size // 2))
        fd2 = os.dup(fd)
        if size > 0:
            m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
            m[size - 1]
            m[0]
            m.close()
        os.close(fd2)
        os.close(fd)
        with open(p, "rb") as f:
            f.read(10)
    for d in os.scandir(MOUNT):
        d.is_dir()


def exit_child(how):
    code = ("import mmap, os, sys\n"
            "ms = []\n"
            "for dp, _, ns in os.walk(%r):\n"
            "    for n in ns:\n"
            "        p = os.path.join(dp, n)\n"
            "        if os.path.getsize(p) == 0: continue\n"
            "        with open(p, 'rb') as f:\n"
            "            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
            "        m[0]; ms.append(m)\n"
            "%s\n") % (MOUNT, "os._exit(0)" if how == "_exit" else "sys.exit(0)")
    t0 = time.monotonic()
    try:
        rc = subprocess.run([sys.executable, "-c", code], timeout=10).returncode
    except subprocess.TimeoutExpired:
        return "%s: still running after 10 s (hang at exit)" % how
    if rc != 0:
        return "%s: exit status %d" % (how, rc)
    print("exit via %s with mappings in flight: %.2f s" % (how, time.monotonic() - t0))
    return None


def main():
    paths = files()
    assert paths, "no fixtures under the mount"
    cycle(paths)  # warm-up: the shim's long-lived fds appear here
    before = fds()
    for _ in range(30):
        cycle(paths)
    after = fds()
    errors = []
    if before != after:
        extra = [(f, os.readlink("/proc/self/fd/" + f)) for f in after if f not in before]
        errors.append("fd leak: %d before, %d after; new: %s" % (len(before), len(after), extra[:10]))
    else:
        print("fds stable over 30 cycles of %d files: %d" % (len(paths), len(after)))
    for how in ("_exit", "sys.exit"):
        e = exit_child(how)
        if e:
            errors.append(e)
    for e in errors:
        print("FAIL:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
