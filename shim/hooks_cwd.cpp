// The working directory: chdir into the mount (or fchdir to a virtual directory fd) sets the engine's virtual
// cwd (Vfs::cwd) and leaves the kernel's where it was; relative paths then resolve against it
// (shim/paths.cpp), getcwd reports it, and a chdir/fchdir to a real directory clears it. It is per process,
// like the kernel's: every thread sees it, a forked child keeps it, exec loses it (the new image starts in
// the kernel's cwd). A child that shares our memory without fork (vfork, posix_spawn: CPython's subprocess
// with cwd=) must not set it, since it is the parent's: there chdir/fchdir go to the kernel, which fails for
// a mount path (ENOENT: the exec'd program cannot start inside the mount) instead of moving the parent.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim/shim.hpp"

using mf::shim::real;

namespace mf::shim {
namespace {

// getcwd's contract for a path we know: buf == NULL allocates (size bytes, or just enough when size is 0).
char* copy_cwd(const std::string& cwd, char* buf, size_t size) {
  size_t need = cwd.size() + 1;
  if (buf == nullptr) {
    if (size != 0 && size < need) return (errno = ERANGE), nullptr;
    buf = static_cast<char*>(malloc(size != 0 ? size : need));
    if (!buf) return (errno = ENOMEM), nullptr;
  } else if (size == 0) {
    return (errno = EINVAL), nullptr;
  } else if (size < need) {
    return (errno = ERANGE), nullptr;
  }
  memcpy(buf, cwd.c_str(), need);
  return buf;
}

}  // namespace
}  // namespace mf::shim

using namespace mf;
using namespace mf::shim;

MF_EXPORT int chdir(const char* path) {
  Vfs* v = active();
  if (!v) return real.chdir(path);
  auto p = mounted(v, AT_FDCWD, path);  // relative to the virtual cwd when set (then rewritten if outside)
  if (!p || in_vfork_child()) {
    int r = real.chdir(path);
    if (r == 0 && !in_vfork_child()) {
      Work w;
      v->clear_cwd();
      w.ok(0);
    }
    return r;
  }
  Work w;
  auto r = v->chdir(*p);
  return r ? w.ok(0) : w.fail(r.error().code);
}

MF_EXPORT int fchdir(int fd) {
  Vfs* v = active();
  if (v && v->maybe_virtual(fd) && !in_vfork_child()) {
    Work w;
    auto r = v->fchdir(fd);
    if (r) return w.ok(0);
    if (r.error().code != EBADF || v->maybe_virtual(fd)) return w.fail(r.error().code);
  }
  int r = real.fchdir(fd);
  if (r == 0 && v && !in_vfork_child()) {
    Work w;
    v->clear_cwd();
    w.ok(0);
  }
  return r;
}

MF_EXPORT char* getcwd(char* buf, size_t size) {
  Vfs* v = active();
  if (!v || !v->has_cwd()) return real.getcwd(buf, size);
  std::optional<std::string> cwd;
  {
    Work w;
    cwd = v->cwd();
    w.ok(0);
  }
  if (!cwd) return real.getcwd(buf, size);
  return copy_cwd(*cwd, buf, size);
}
MF_EXPORT char* __getcwd_chk(char* buf, size_t size, size_t buflen) {
  if (size > buflen) abort();  // what glibc's __chk_fail does, minus the message
  return getcwd(buf, size);
}
MF_EXPORT char* get_current_dir_name() {
  Vfs* v = active();
  if (v && v->has_cwd()) return getcwd(nullptr, 0);
  return real.get_current_dir_name();
}
