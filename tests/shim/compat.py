#!/usr/bin/python3
"""Compatibility checks run under LD_PRELOAD (through harness.py): every operation on the mount must give
what the same operation gives on the local copy (MF_LOCAL_DIR), byte for byte.

usage: compat.py GROUP   (basic | dirs | mmap | safetensors | numpy | torch | threads | fork | forkexec | errors |
                         bytes | paths)
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


def bytes_group():
    """The byte-moving calls from Python: os.sendfile (with and without an offset), os.copy_file_range,
    os.splice through a pipe, shutil.copyfile/copyfileobj: the object's bytes, never zeros."""
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp()
    out = os.path.join(tmp, "out")
    for name in FILES:
        data = local(name)
        p = os.path.join(M, name)
        shutil.copyfile(p, out)
        check(open(out, "rb").read() == data, "shutil.copyfile of " + name)
        with open(p, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        check(open(out, "rb").read() == data, "shutil.copyfileobj of " + name)
        fd = os.open(p, os.O_RDONLY)
        # os.sendfile at an offset: the fd offset stays
        with open(out, "wb") as dst:
            off = 0
            while True:
                n = os.sendfile(dst.fileno(), fd, off, 100003)
                if n == 0:
                    break
                off += n
        check(open(out, "rb").read() == data, "os.sendfile(offset) of " + name)
        check(os.lseek(fd, 0, os.SEEK_CUR) == 0, "os.sendfile(offset) moved the fd offset")
        # at the fd offset (offset None)
        with open(out, "wb") as dst:
            while os.sendfile(dst.fileno(), fd, None, 1 << 20) > 0:
                pass
        check(open(out, "rb").read() == data, "os.sendfile(None) of " + name)
        check(os.lseek(fd, 0, os.SEEK_CUR) == len(data), "os.sendfile(None) offset")
        # copy_file_range
        os.lseek(fd, 0, os.SEEK_SET)
        with open(out, "wb") as dst:
            while os.copy_file_range(fd, dst.fileno(), 65536) > 0:
                pass
        check(open(out, "rb").read() == data, "os.copy_file_range of " + name)
        with open(out, "wb") as dst:
            off = 0
            while True:
                n = os.copy_file_range(fd, dst.fileno(), 1 << 20, off, off)
                if n == 0:
                    break
                off += n
        check(open(out, "rb").read() == data, "os.copy_file_range(offsets) of " + name)
        # splice through a pipe
        r, w = os.pipe()
        os.lseek(fd, 0, os.SEEK_SET)
        got = bytearray()
        while True:
            n = os.splice(fd, w, 1 << 20)
            if n == 0:
                break
            while n > 0:
                piece = os.read(r, n)
                got += piece
                n -= len(piece)
        os.close(r)
        os.close(w)
        check(bytes(got) == data, "os.splice of " + name)
        os.close(fd)
    # a virtual fd is read-only: as a destination, EBADF
    fd = os.open(os.path.join(M, "odd.bin"), os.O_RDONLY)
    src = os.open(os.path.join(L, "odd.bin"), os.O_RDONLY)
    for what, call in [("sendfile", lambda: os.sendfile(fd, src, 0, 10)),
                       ("copy_file_range", lambda: os.copy_file_range(src, fd, 10))]:
        try:
            call()
            check(False, what + " to a virtual fd should fail")
        except OSError as e:
            check(e.errno == errno.EBADF, "%s to a virtual fd: errno %d" % (what, e.errno))
    os.close(src)
    os.close(fd)
    shutil.rmtree(tmp)


def paths():
    """Paths that lead into the mount indirectly: /proc/self/fd/N and /dev/fd/N of a virtual fd, chdir into
    the mount and relative paths, openat/stat/scandir relative to a mount directory fd, os.fwalk."""
    import fcntl
    import shutil
    data = local("odd.bin")
    p = os.path.join(M, "odd.bin")
    fd = os.open(p, os.O_RDONLY)
    for link in ["/proc/self/fd/%d" % fd, "/proc/%d/fd/%d" % (os.getpid(), fd), "/dev/fd/%d" % fd,
                 "/proc/thread-self/fd/%d" % fd]:
        with open(link, "rb") as f:
            check(f.read() == data, "reopen " + link)
        check(os.stat(link).st_size == len(data), "stat " + link)
        check(os.stat(link).st_ino == os.stat(p).st_ino, "stat identity " + link)
        check(os.path.realpath(link) == p, "realpath %s: %s" % (link, os.path.realpath(link)))
    check(os.readlink("/proc/self/fd/%d" % fd) == p, "readlink: %s" % os.readlink("/proc/self/fd/%d" % fd))
    check(os.path.islink("/proc/self/fd/%d" % fd), "lstat of the link is the link")
    shutil.copyfile("/proc/self/fd/%d" % fd, "/tmp/mf-paths-copy-%d" % os.getpid())
    check(open("/tmp/mf-paths-copy-%d" % os.getpid(), "rb").read() == data, "copy via /proc/self/fd")
    os.unlink("/tmp/mf-paths-copy-%d" % os.getpid())
    os.close(fd)
    # a directory fd's link, and a file below it
    dfd = os.open(M + "/sub", os.O_RDONLY | os.O_DIRECTORY)
    with open("/proc/self/fd/%d/top.bin" % dfd, "rb") as f:
        check(f.read() == local("sub/top.bin"), "/proc/self/fd/DIR/top.bin")
    # openat/fstatat/listdir relative to the directory fd
    fd = os.open("dir/nested.bin", os.O_RDONLY, dir_fd=dfd)
    check(os.read(fd, 1 << 20) == local("sub/dir/nested.bin"), "openat(dfd)")
    os.close(fd)
    check(os.stat("top.bin", dir_fd=dfd).st_size == len(local("sub/top.bin")), "fstatat(dfd)")
    check(os.access("top.bin", os.R_OK, dir_fd=dfd), "faccessat(dfd)")
    check(sorted(e.name for e in os.scandir(dfd)) == ["dir", "top.bin"], "scandir(dfd)")
    os.close(dfd)
    walked = sorted(os.path.normpath(os.path.join(d, f)) for d, _, fs, _ in os.fwalk(M) for f in fs)
    check(walked == sorted(os.path.join(M, n) for n in FILES), "os.fwalk: %s" % walked)
    # chdir into the mount, relative paths, getcwd, chdir back out
    home = os.getcwd()
    os.chdir(M)
    check(os.getcwd() == M, "getcwd after chdir: " + os.getcwd())
    with open("odd.bin", "rb") as f:
        check(f.read() == data, "open relative to the mount cwd")
    check(os.stat("sub/top.bin").st_size == len(local("sub/top.bin")), "stat relative")
    check(os.path.exists("config.json") and os.access("config.json", os.R_OK), "access relative")
    check(sorted(os.listdir(".")) == sorted(os.listdir(L)), "listdir('.')")
    check(os.path.abspath("x") == M + "/x", "abspath")
    os.chdir("sub")
    check(os.getcwd() == M + "/sub", "relative chdir: " + os.getcwd())
    check(sorted(os.listdir()) == ["dir", "top.bin"], "listdir() in the cwd")
    with open("../odd.bin", "rb") as f:
        check(f.read() == data, "open ../")
    dfd = os.open("dir", os.O_RDONLY | os.O_DIRECTORY)
    os.chdir(dfd)  # fchdir to a virtual directory fd
    check(os.getcwd() == M + "/sub/dir", "fchdir: " + os.getcwd())
    os.close(dfd)
    for bad, code in [("nested.bin", errno.ENOTDIR), ("nope", errno.ENOENT)]:
        try:
            os.chdir(bad)
            check(False, "chdir %s should fail" % bad)
        except OSError as e:
            check(e.errno == code, "chdir %s: errno %d" % (bad, e.errno))
    check(os.getcwd() == M + "/sub/dir", "a failed chdir keeps the cwd")
    # a relative path that leads out of the mount reaches the real file it names
    rel_home = os.path.relpath(os.path.join(L, "odd.bin"), M + "/sub/dir")
    with open(rel_home, "rb") as f:
        check(f.read() == data, "relative path out of the mount: " + rel_home)
    # ... also for calls that create, rename and remove (their real call gets the rewritten absolute path)
    import tempfile
    t = tempfile.mkdtemp()
    rel_a = os.path.relpath(os.path.join(t, "a"), M + "/sub/dir")
    rel_b = os.path.relpath(os.path.join(t, "b"), M + "/sub/dir")
    with open(rel_a, "w") as f:
        f.write("x")
    check(os.path.isfile(os.path.join(t, "a")), "create by a relative path out of the mount")
    os.rename(rel_a, rel_b)
    check(os.listdir(t) == ["b"], "rename by relative paths out of the mount: %s" % os.listdir(t))
    os.unlink(rel_b)
    os.mkdir(rel_a)
    check(os.path.isdir(os.path.join(t, "a")), "mkdir by a relative path out of the mount")
    os.rmdir(rel_a)
    check(os.listdir(t) == [], "rmdir by a relative path out of the mount")
    os.rmdir(t)
    # the cwd is per process: a thread sees it, a forked child keeps it
    seen = []
    t = threading.Thread(target=lambda: seen.append(os.getcwd()))
    t.start()
    t.join()
    check(seen == [M + "/sub/dir"], "thread cwd %s" % seen)
    pid = os.fork()
    if pid == 0:
        ok = os.getcwd() == M + "/sub/dir" and open("nested.bin", "rb").read() == local("sub/dir/nested.bin")
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    check(status == 0, "the forked child keeps the cwd")
    # subprocess with cwd= in the mount: the child's chdir (after vfork, in our memory) must not move ours;
    # an exec'd program cannot start inside the mount (the cwd is the shim's, lost at exec)
    try:
        subprocess.run(["/bin/true"], cwd=M + "/sub")
    except OSError:
        pass
    check(os.getcwd() == M + "/sub/dir", "subprocess cwd= moved the parent's cwd: " + os.getcwd())
    os.chdir(home)
    check(os.getcwd() == home, "chdir back out: " + os.getcwd())
    check(open(os.path.basename(__file__) if os.path.exists(os.path.basename(__file__)) else __file__, "rb")
          .read(2) == b"#!", "relative paths outside the mount again")
    os.chdir(M + "/sub")
    os.chdir(os.path.relpath(L, M + "/sub"))  # a relative path out of the mount: a real directory again
    check(os.getcwd() == os.path.realpath(L), "relative chdir out of the mount: " + os.getcwd())
    with open("odd.bin", "rb") as f:  # the real cwd again: L/odd.bin
        check(f.read() == data, "relative open after leaving the mount")
    os.chdir(M)
    try:
        os.chdir("..")  # lexically out of the mount, to a directory that does not exist on disk here
        check(os.path.isdir(os.path.dirname(M)), "chdir .. to a missing directory succeeded")
    except FileNotFoundError:
        check(not os.path.isdir(os.path.dirname(M)), "chdir .. to an existing directory failed")
    os.chdir(home)


GROUPS = {"basic": basic, "dirs": dirs, "mmap": mmaps, "safetensors": safetensors, "numpy": numpy_group, "bytes": bytes_group, "paths": paths,
          "torch": torch_group, "threads": threads, "fork": fork, "forkexec": forkexec, "errors": errors}

if __name__ == "__main__":
    GROUPS[sys.argv[1]]()
    print("ok", sys.argv[1])
