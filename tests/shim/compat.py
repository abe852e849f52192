#!/usr/bin/python3
"""Compatibility checks run under LD_PRELOAD (through harness.py): every operation on the mount must give
what the same operation gives on the local copy (MF_LOCAL_DIR), byte for byte.

usage: compat.py GROUP   (basic | dirs | mmap | safetensors | numpy | torch | threads | fork | forkexec | errors)
"""
import errno
import json
import mmap
import os
import struct
import subprocess
import sys
import threading

L = os.environ["MF_LOCAL_DIR"]
M = os.environ["MF_MOUNT_DIR"]
FILES = ["empty.bin", "one.bin", "page.bin", "odd.bin", "chunks.bin", "big.bin", "sub/dir/nested.bin", "sub/top.bin",
         "config.json",
         "model.safetensors", "tensor.pt"]


def local(name):
    with open(os.path.join(L, name), "rb") as f:
        return f.read()


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def basic():
    for name in FILES:
        p = os.path.join(M, name)
        with open(p, "rb") as f:
            check(f.read() == local(name), "open().read() of " + name)
        st, lst = os.stat(p), os.stat(os.path.join(L, name))
        check(st.st_size == lst.st_size, "size of " + name)
        check(oct(st.st_mode) == oct(0o100444), "mode of %s: %o" % (name, st.st_mode))
        check(os.path.isfile(p) and not os.path.isdir(p), "isfile " + name)
        check(os.path.realpath(p) == os.path.normpath(p), "realpath " + name)
        check(os.path.getsize(p) == lst.st_size, "getsize")
    # seeks, partial reads across chunk edges, unbuffered reads, pread
    data = local("chunks.bin")
    fd = os.open(os.path.join(M, "chunks.bin"), os.O_RDONLY)
    for off, n in [(0, 10), ((1 << 20) - 5, 10), (3 << 20, 20000), (len(data) - 3, 100), (len(data) + 5, 10)]:
        check(os.pread(fd, n, off) == data[off:off + n], "pread %d+%d" % (off, n))
    os.lseek(fd, 1000, os.SEEK_SET)
    check(os.read(fd, 5000) == data[1000:6000], "read after lseek")
    check(os.lseek(fd, 0, os.SEEK_CUR) == 6000, "offset advanced")
    fd2 = os.dup(fd)  # shares the offset, survives the close of the original
    os.close(fd)
    check(os.read(fd2, 10) == data[6000:6010], "read on dup after close of original")
    check(os.lseek(fd2, 0, os.SEEK_END) == len(data), "SEEK_END")
    check(os.fstat(fd2).st_size == len(data), "fstat size")
    os.close(fd2)
    with open(os.path.join(M, "config.json")) as f:
        check(json.load(f)["hidden_size"] == 64, "json")
    # the mount path is a directory; realpath of a relative path inside
    check(os.path.isdir(M) and os.path.isdir(M + "/sub") and os.path.isdir(M + "/sub/"), "isdir")
    check(os.path.realpath(M + "/sub/../odd.bin") == M + "/odd.bin", "realpath with ..")
    try:
        os.readlink(os.path.join(M, "odd.bin"))
        check(False, "readlink should fail")
    except OSError as e:
        check(e.errno == errno.EINVAL, "readlink errno %d" % e.errno)
    # a program's own files are unaffected
    with open(__file__, "rb") as f:
        check(f.read(10) == b"#!/usr/bin", "own file")


def dirs():
    check(sorted(os.listdir(M)) == sorted(os.listdir(L)), "listdir mount: %s" % os.listdir(M))
    check(sorted(os.listdir(M + "/sub")) == ["dir", "top.bin"], "listdir sub")
    for e in os.scandir(M):
        le = os.path.join(L, e.name)
        check(e.is_dir() == os.path.isdir(le) and e.is_file() == os.path.isfile(le), "scandir " + e.name)
        check(e.stat().st_size == os.stat(le).st_size or e.is_dir(), "scandir stat " + e.name)
    walked = sorted(os.path.relpath(os.path.join(d, f), M) for d, _, fs in os.walk(M) for f in fs)
    check(walked == sorted(FILES), "os.walk: %s" % walked)
    fd = os.open(M + "/sub", os.O_RDONLY | os.O_DIRECTORY)
    check(sorted(os.listdir(fd)) == ["dir", "top.bin"], "listdir(fd)")
    os.close(fd)


def mmaps():
    for name in FILES:
        data = local(name)
        if not data:
            continue
        with open(os.path.join(M, name), "rb") as f:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        check(m[:] == data, "mmap of " + name)
        m.close()
    with open(os.path.join(M, "chunks.bin"), "rb") as f:
        m = mmap.mmap(f.fileno(), 8192, access=mmap.ACCESS_COPY, offset=1 << 20)
    check(m[:] == local("chunks.bin")[1 << 20:(1 << 20) + 8192], "mmap with offset")
    m[0:4] = b"abcd"  # private copy is writable
    m.close()
    # an empty object: open/read/fstat work, and mmap behaves as on an empty local file
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    for d in (L, M):
        with open(os.path.join(d, "empty.bin"), "rb") as f:
            check(f.read() == b"" and os.fstat(f.fileno()).st_size == 0, "read of an empty file in " + d)
            try:
                mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                check(False, "mmap of an empty file succeeded")
            except ValueError:
                pass
            p = libc.mmap(None, 0, mmap.PROT_READ, mmap.MAP_PRIVATE, f.fileno(), 0)
            check(p == ctypes.c_void_p(-1).value and ctypes.get_errno() == errno.EINVAL,
                  "mmap(len 0) of an empty file in %s: %r errno %d" % (d, p, ctypes.get_errno()))


def load_safetensors(path):
    """safetensors 0.8 as FACTS.md records it: open twice, two whole-file MAP_PRIVATE mappings (the second
    read-write), both fds closed before use, header from the first, tensors copied from the second in
    name-sorted order."""
    import numpy as np
    f1 = open(path, "rb")
    m1 = mmap.mmap(f1.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    f2 = open(path, "rb")
    m2 = mmap.mmap(f2.fileno(), 0, access=mmap.ACCESS_COPY)
    f1.close()
    f2.close()
    n = struct.unpack("<Q", m1[:8])[0]
    header = json.loads(m1[8:8 + n])
    header.pop("__metadata__", None)
    dt = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name in sorted(header):
        t = header[name]
        a, b = t["data_offsets"]
        arr = np.frombuffer(m2, dtype=dt[t["dtype"]], count=(b - a) // np.dtype(dt[t["dtype"]]).itemsize,
                            offset=8 + n + a).reshape(t["shape"])
        out[name] = arr.copy()
        del arr
    return out


def safetensors():
    got, want = load_safetensors(M + "/model.safetensors"), load_safetensors(L + "/model.safetensors")
    check(sorted(got) == sorted(want), "tensor names")
    for k in want:
        check(got[k].tobytes() == want[k].tobytes(), "tensor " + k)


def numpy_group():
    import numpy as np
    for name in ["odd.bin", "chunks.bin"]:
        a = np.memmap(os.path.join(M, name), dtype=np.uint8, mode="r")
        check(a.tobytes() == local(name), "memmap " + name)
        b = np.fromfile(os.path.join(M, name), dtype=np.uint8)
        check(b.tobytes() == local(name), "fromfile " + name)


def torch_group():
    import torch
    with open(M + "/model.safetensors", "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    t = torch.frombuffer(m, dtype=torch.uint8)
    check(bytes(t.numpy()) == local("model.safetensors"), "torch.frombuffer")
    # transformers' path: a read-write private mapping (the one that gets huge pages moved in), bytes read
    # back through a tensor over it, for every file the test mount has
    for name in ["model.safetensors", "chunks.bin", "odd.bin"]:
        want = local(name)
        s = torch.UntypedStorage.from_file(M + "/" + name, shared=False, nbytes=len(want))
        u = torch.empty(0, dtype=torch.uint8).set_(s)
        check(u.numpy().tobytes() == want, "UntypedStorage.from_file(shared=False) " + name)


def threads():
    data = local("chunks.bin")
    errors = []

    def worker(i):
        try:
            fd = os.open(M + "/chunks.bin", os.O_RDONLY)
            for j in range(40):
                off = (i * 7919 + j * 104729) % len(data)
                if os.pread(fd, 65536, off) != data[off:off + 65536]:
                    errors.append((i, off))
            os.close(fd)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    check(not errors, "threads: %s" % errors[:3])


def fork():
    data = local("chunks.bin")
    with open(M + "/chunks.bin", "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    fd = os.open(M + "/odd.bin", os.O_RDONLY)
    pid = os.fork()
    if pid == 0:
        ok = m[:] == data and os.pread(fd, 1000, 500000) == local("odd.bin")[500000:501000]
        with open(M + "/one.bin", "rb") as g:  # a fresh open in the child: a new store
            ok = ok and g.read() == local("one.bin")
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    check(status == 0, "child read wrong bytes")
    check(m[:] == data, "parent mapping after fork")


def forkexec():
    """fork, then exec in the child (LD_PRELOAD is inherited: a fresh shim in the new image) while the parent
    holds a partly faulted mapping and an open fd; also subprocess (vfork/posix_spawn, no fork handlers)."""
    data, odd, top = local("chunks.bin"), local("odd.bin"), local("sub/top.bin")
    with open(M + "/chunks.bin", "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    check(m[:4096] == data[:4096], "first page before fork")
    fd = os.open(M + "/odd.bin", os.O_RDONLY)
    os.lseek(fd, 1000, os.SEEK_SET)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.execv("/bin/cat", ["cat", M + "/odd.bin"])
    os.close(w)
    out = b""
    while True:
        b = os.read(r, 1 << 20)
        if not b:
            break
        out += b
    os.close(r)
    _, status = os.waitpid(pid, 0)
    check(status == 0 and out == odd, "exec'd cat: status %d, %d bytes (want %d)" % (status, len(out), len(odd)))
    code = ("import mmap, os, sys\n"
            "p, l = sys.argv[1], sys.argv[2]\n"
            "want = open(l, 'rb').read()\n"
            "f = open(p, 'rb'); mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)\n"
            "sys.exit(0 if mm[:] == want and open(p, 'rb').read() == want else 3)\n")
    pid = os.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-c", code, M + "/model.safetensors", L + "/model.safetensors"])
    _, status = os.waitpid(pid, 0)
    check(status == 0, "exec'd python: status %d" % status)
    res = subprocess.run(["/bin/cat", M + "/sub/top.bin"], capture_output=True)
    check(res.returncode == 0 and res.stdout == top, "subprocess cat: %d bytes" % len(res.stdout))
    # a shell redirection dup2()s the virtual fd onto stdin and execs cat: the new image cannot serve it, so
    # it must fail (the fd stays close-on-exec) rather than read the memfd's zeros
    res = subprocess.run(["/bin/sh", "-c", 'cat < "$0"', M + "/odd.bin"], capture_output=True)
    check(res.stdout == odd or (res.returncode != 0 and res.stdout == b""),
          "cat < mounted file: rc %d, %d bytes, right bytes: %s" % (res.returncode, len(res.stdout), res.stdout == odd))
    check(os.read(fd, 5000) == odd[1000:6000], "parent fd offset after fork+exec")
    check(m[:] == data, "parent mapping after fork+exec")
    os.close(fd)
    m.close()


def errors():
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_CREAT):
        try:
            os.open(M + "/odd.bin", flags)
            check(False, "write-open succeeded")
        except OSError as e:
            check(e.errno == errno.EROFS, "write-open errno %d" % e.errno)
    for p in (M + "/missing.bin", M + "/sub/missing", M + "/nodir/x"):
        try:
            os.stat(p)
            check(False, "stat of missing")
        except FileNotFoundError:
            pass
        check(not os.path.exists(p), "exists " + p)
    try:
        open(M + "/new.txt", "w")
        check(False, "create succeeded")
    except OSError as e:
        check(e.errno == errno.EROFS, "create errno")
    # namespace and metadata changes: EROFS under the mount (after the kernel's lookup: ENOENT for chmod and
    # the like of a missing name, EEXIST for mkdir of an existing one), EXDEV across it; nothing
    # changes, and nothing appears on the local disk at the mount path
    before = (sorted(os.listdir(M)), local("odd.bin"))
    tmp = os.path.join(os.path.dirname(L), "outside.bin")
    with open(tmp, "wb") as f:
        f.write(b"x")
    calls = [("unlink", lambda: os.unlink(M + "/odd.bin"), errno.EROFS),
             ("unlink missing", lambda: os.unlink(M + "/missing.bin"), errno.EROFS),
             ("unlinkat", lambda: os.unlink("odd.bin", dir_fd=os.open(M, os.O_RDONLY | os.O_DIRECTORY)), errno.EROFS),
             ("rmdir", lambda: os.rmdir(M + "/sub/dir"), errno.EROFS),
             ("mkdir", lambda: os.mkdir(M + "/newdir"), errno.EROFS),
             ("mkdir mount", lambda: os.mkdir(M), errno.EEXIST),   # the kernel looks the new name up first
             ("mkdir existing", lambda: os.mkdir(M + "/sub"), errno.EEXIST),
             ("chmod missing", lambda: os.chmod(M + "/missing.bin", 0o777), errno.ENOENT),
             ("truncate missing", lambda: os.truncate(M + "/missing.bin", 0), errno.ENOENT),
             ("setxattr missing", lambda: os.setxattr(M + "/missing.bin", "user.x", b"1"), errno.ENOENT),
             ("rename inside", lambda: os.rename(M + "/odd.bin", M + "/odd2.bin"), errno.EROFS),
             ("rename out", lambda: os.rename(M + "/odd.bin", tmp + ".moved"), errno.EXDEV),
             ("rename in", lambda: os.rename(tmp, M + "/in.bin"), errno.EXDEV),
             ("replace", lambda: os.replace(tmp, M + "/odd.bin"), errno.EXDEV),
             ("link", lambda: os.link(M + "/odd.bin", tmp + ".link"), errno.EXDEV),
             ("symlink", lambda: os.symlink("/etc/passwd", M + "/evil"), errno.EROFS),
             ("truncate", lambda: os.truncate(M + "/odd.bin", 0), errno.EROFS),
             ("chmod", lambda: os.chmod(M + "/odd.bin", 0o777), errno.EROFS),
             ("utime", lambda: os.utime(M + "/odd.bin", (0, 0)), errno.EROFS),
             ("remove (stdio)", lambda: remove_c(M + "/odd.bin"), errno.EROFS),
             ("setxattr", lambda: os.setxattr(M + "/odd.bin", "user.x", b"1"), errno.EROFS),
             ("removexattr", lambda: os.removexattr(M + "/odd.bin", "user.x"), errno.EROFS)]
    fd = os.open(M + "/odd.bin", os.O_RDONLY)  # on a virtual fd: as on a read-only file system
    calls += [("ftruncate", lambda: os.ftruncate(fd, 0), errno.EINVAL),
              ("fchmod", lambda: os.fchmod(fd, 0o777), errno.EROFS),
              ("fchown", lambda: os.fchown(fd, 0, 0), errno.EROFS),
              ("futimens", lambda: os.utime(fd, (0, 0)), errno.EROFS),
              ("fsetxattr", lambda: os.setxattr(fd, "user.x", b"1"), errno.EROFS),
              ("fremovexattr", lambda: os.removexattr(fd, "user.x"), errno.EROFS)]
    mode = os.fstat(fd).st_mode
    for name, call, want in calls:
        try:
            call()
            check(False, name + " succeeded")
        except OSError as e:
            check(e.errno == want, "%s: errno %d, want %d" % (name, e.errno, want))
    check(os.fstat(fd).st_mode == mode and os.fstat(fd).st_size == len(before[1]), "the virtual fd changed")
    os.close(fd)
    check((sorted(os.listdir(M)), open(M + "/odd.bin", "rb").read()) == before, "the mount changed")
    check(os.path.exists(tmp) and not os.path.exists(tmp + ".moved"), "the local file moved")
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # the real disk, not the mount
    check(subprocess.call(["/bin/sh", "-c", 'test ! -e "$0/newdir" && test ! -e "$0/evil"', M], env=env) == 0,
          "a local path appeared under the mount path")
    os.unlink(tmp)  # outside the mount: passes through


def remove_c(path):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.remove(path.encode()) != 0:
        raise OSError(ctypes.get_errno(), "remove")


GROUPS = {"basic": basic, "dirs": dirs, "mmap": mmaps, "safetensors": safetensors, "numpy": numpy_group,
          "torch": torch_group, "threads": threads, "fork": fork, "forkexec": forkexec, "errors": errors}

if __name__ == "__main__":
    GROUPS[sys.argv[1]]()
    print("ok", sys.argv[1])
