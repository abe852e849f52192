// The engine's entry points, one per hook: mf_hook_NAME runs the engine's hook NAME (shim/hooks_*.cpp)
// inside guarded() (shim/guard.hpp). The thin library (shim/thin.cpp) looks these up, and only these: the
// engine's own definitions under the libc names stay local to it (libmodelfetch-engine.map), so the
// engine's and core's calls to read() bind to the engine's hook directly and the guard cannot be bypassed.
// Generated from shim/hooks.def: a hook added there is guarded without another line.
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <stdexcept>

#include "core/util/log.hpp"
#include "core/util/thread.hpp"
#include "shim/guard.hpp"
#include "shim/hook_decls.hpp"
#include "shim/shim.hpp"

namespace mf::shim {

void report_exception(const char* name, const char* what, int code) noexcept {
  log_message(LogLevel::error, "%s: %s inside the shim; the call fails with %s", name, what,
              code == ENOMEM ? "ENOMEM" : "EIO");
  errno = code;
}

#ifdef MF_TEST_THROW
// MODELFETCH_TEST_THROW=NAME[,NAME...][:bad_alloc]
void maybe_throw_for_test(const char* name) {
  static const char* knob = getenv("MODELFETCH_TEST_THROW");
  if (!knob || t_busy || on_internal_thread()) return;
  const char* kind = strchr(knob, ':');
  const size_t list_len = kind ? static_cast<size_t>(kind - knob) : strlen(knob);
  const size_t n = strlen(name);
  for (const char* p = knob; p < knob + list_len;) {
    const char* end = static_cast<const char*>(memchr(p, ',', static_cast<size_t>(knob + list_len - p)));
    if (!end) end = knob + list_len;
    if (static_cast<size_t>(end - p) == n && strncmp(p, name, n) == 0) {
      if (kind && strcmp(kind, ":bad_alloc") == 0) throw std::bad_alloc();
      throw std::runtime_error("test exception (MODELFETCH_TEST_THROW)");
    }
    p = end + 1;
  }
}
#endif

}  // namespace mf::shim

#define MF_GUARDED extern "C" __attribute__((visibility("default")))

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // readdir_r: hooked because programs call it
#define MF_HOOK(ret, name, params, args, trigger)                                      \
  MF_GUARDED ret mf_hook_##name params {                                      \
    return mf::shim::guarded<ret>(#name, [&]() -> ret { return ::name args; });        \
  }
#include "shim/hooks.def"
#undef MF_HOOK
#pragma GCC diagnostic pop

// The variadic hooks and the memory hooks: their extra argument is passed explicitly (see shim/thin.cpp).
#define MF_GUARDED_OPEN(name)                                                                        \
  MF_GUARDED int mf_hook_##name(const char* path, int flags, ...) {                         \
    va_list ap;                                                                                      \
    va_start(ap, flags);                                                                             \
    mode_t mode = __OPEN_NEEDS_MODE(flags) ? static_cast<mode_t>(va_arg(ap, int)) : 0;               \
    va_end(ap);                                                                                      \
    return mf::shim::guarded<int>(#name, [&] { return ::name(path, flags, mode); });                 \
  }
#define MF_GUARDED_OPENAT(name)                                                                      \
  MF_GUARDED int mf_hook_##name(int dirfd, const char* path, int flags, ...) {              \
    va_list ap;                                                                                      \
    va_start(ap, flags);                                                                             \
    mode_t mode = __OPEN_NEEDS_MODE(flags) ? static_cast<mode_t>(va_arg(ap, int)) : 0;               \
    va_end(ap);                                                                                      \
    return mf::shim::guarded<int>(#name, [&] { return ::name(dirfd, path, flags, mode); });          \
  }
#define MF_GUARDED_FCNTL(name)                                                                       \
  MF_GUARDED int mf_hook_##name(int fd, int cmd, ...) {                                     \
    va_list ap;                                                                                      \
    va_start(ap, cmd);                                                                               \
    long arg = va_arg(ap, long);                                                                     \
    va_end(ap);                                                                                      \
    return mf::shim::guarded<int>(#name, [&] { return ::name(fd, cmd, arg); });                      \
  }
MF_GUARDED_OPEN(open)
MF_GUARDED_OPEN(open64)
MF_GUARDED_OPENAT(openat)
MF_GUARDED_OPENAT(openat64)
MF_GUARDED_FCNTL(fcntl)
MF_GUARDED_FCNTL(fcntl64)
MF_GUARDED void* mf_hook_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mf::shim::guarded<void*>("mmap", [&] { return ::mmap(addr, len, prot, flags, fd, off); });
}
MF_GUARDED void* mf_hook_mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mf::shim::guarded<void*>("mmap64", [&] { return ::mmap64(addr, len, prot, flags, fd, off); });
}
MF_GUARDED int mf_hook_munmap(void* addr, size_t len) {
  return mf::shim::guarded<int>("munmap", [&] { return ::munmap(addr, len); });
}
MF_GUARDED int mf_hook_madvise(void* addr, size_t len, int advice) {
  return mf::shim::guarded<int>("madvise", [&] { return ::madvise(addr, len, advice); });
}
MF_GUARDED void* mf_hook_mremap(void* old_addr, size_t old_size, size_t new_size, int flags, ...) {
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void*);
    va_end(ap);
  }
  return mf::shim::guarded<void*>("mremap", [&] { return ::mremap(old_addr, old_size, new_size, flags, new_addr); });
}
