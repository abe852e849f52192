// libmodelfetch.so, the preloaded object: a thin library whose only dependency is libc. It exports every
// hooked symbol (libmodelfetch.map); each one calls the engine's hook when the engine is loaded, and libc's
// function otherwise. The engine (libmodelfetch-engine.so: the hook bodies in shim/hooks_*.cpp, core/, curl,
// TLS) is loaded with dlopen(RTLD_NOW | RTLD_LOCAL) from the thin library's directory the first time a call
// may name a mounted path (the mount paths from MODELFETCH_MOUNT / MODELFETCH_MOUNTS, compared as prefixes).
// A process that never touches a mount maps this small library and nothing else: no curl, no TLS library
// constructors, no C++ runtime.
//
// Built in C++ without its runtime (-fno-exceptions -fno-rtti -fno-threadsafe-statics, no new, no standard
// library types beyond <atomic>'s header-only atomics); tests/shim/thin_deps.py checks DT_NEEDED.
//
// How the engine is reached: it defines the hooks under their libc names with the same version script, and
// the thin library looks them up with dlsym(engine, "read"). RTLD_LOCAL keeps the engine's definitions out
// of the global scope, so the engine's (and curl's) own calls to read() bind to the thin library's read(),
// which forwards to the engine's hook, whose recursion guard passes them to libc as before.
//
// The real libc functions are resolved lazily, one atomic pointer per symbol: a process pays a dlsym only
// for the functions it calls. The memory calls (mmap, munmap, madvise, mremap) pass to the raw system call
// while the engine is not loaded: sanitizer runtimes map memory from inside dlsym's own allocations.
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>

#include "shim/thin_paths.hpp"

#ifndef MF_ENGINE_NAME
#error "MF_ENGINE_NAME (the engine's file name, next to this library) must be defined by the build"
#endif

#define MF_EXPORT extern "C" __attribute__((visibility("default")))

#include "shim/hook_decls.hpp"

namespace mf::thin {
namespace {

// ---- the engine ----------------------------------------------------------------------------------------

// 0: not loaded; 1: loading (on some thread); 2: loaded (the hook pointers are published); 3: failed.
constinit std::atomic<int> g_engine_state{0};
constinit pthread_once_t g_engine_once = PTHREAD_ONCE_INIT;
constinit thread_local bool t_loading __attribute__((tls_model("initial-exec"))) = false;
constinit char g_engine_path[PATH_MAX + 64] = {};

// One atomic pointer per hook: the engine's definition (null until loaded) and libc's (null until used).
#define MF_HOOK(ret, name, params, args, trigger)                   \
  constinit std::atomic<ret(*) params> e_##name{nullptr};            \
  constinit std::atomic<ret(*) params> r_##name{nullptr};
#include "shim/hooks.def"
#undef MF_HOOK
#define MF_VARIADIC_HOOKS(X)                                           \
  X(int, open, (const char* path, int flags, ...))                   \
  X(int, open64, (const char* path, int flags, ...))                 \
  X(int, openat, (int dirfd, const char* path, int flags, ...))      \
  X(int, openat64, (int dirfd, const char* path, int flags, ...))    \
  X(int, fcntl, (int fd, int cmd, ...))                              \
  X(int, fcntl64, (int fd, int cmd, ...))                            \
  X(void*, mremap, (void* old_addr, size_t old_size, size_t new_size, int flags, ...)) \
  X(void*, mmap, (void* addr, size_t len, int prot, int flags, int fd, off_t off))     \
  X(void*, mmap64, (void* addr, size_t len, int prot, int flags, int fd, off_t off))   \
  X(int, munmap, (void* addr, size_t len))                           \
  X(int, madvise, (void* addr, size_t len, int advice))
#define MF_SLOTS(ret, name, params)                                 \
  constinit std::atomic<ret(*) params> e_##name{nullptr};            \
  constinit std::atomic<ret(*) params> r_##name{nullptr};
MF_VARIADIC_HOOKS(MF_SLOTS)
#undef MF_SLOTS

void say(const char* a, const char* b = "", const char* c = "", const char* d = "") {
  char line[1024];
  size_t n = 0;
  for (const char* s : {"modelfetch: error: ", a, b, c, d, "\n"})
    for (; *s && n < sizeof line - 1; ++s) line[n++] = *s;
  (void)!syscall(SYS_write, 2, line, n);
}

// Whether p is inside this library (RTLD_NEXT can find ourselves when we were dlopen'ed).
bool in_this_library(void* p) {
  Dl_info self{}, other{};
  static const int anchor = 0;
  return dladdr(&anchor, &self) != 0 && dladdr(p, &other) != 0 && self.dli_fbase == other.dli_fbase;
}

// libc's definition of name: the next one after us (another interposer between us and libc counts), or,
// loaded with dlopen() instead of LD_PRELOAD, libc's own. Aborts when there is none (a program calling a
// function its libc does not have cannot have linked).
void* find_real(const char* name) {
  int saved = errno;
  void* p = dlsym(RTLD_NEXT, name);
  if (p == nullptr || in_this_library(p)) {
    void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    p = libc ? dlsym(libc, name) : nullptr;
  }
  if (p == nullptr || in_this_library(p)) {
    say("cannot resolve the real ", name);
    abort();
  }
  errno = saved;
  return p;
}

template <class F>
F real_of(std::atomic<F>& slot, const char* name) {
  F f = slot.load(std::memory_order_relaxed);
  if (f == nullptr) {
    f = reinterpret_cast<F>(find_real(name));
    slot.store(f, std::memory_order_relaxed);
  }
  return f;
}

// The engine's file: MF_ENGINE_NAME in the directory this library was loaded from. Computed at load (a
// relative LD_PRELOAD path must be taken against the cwd of that moment, before the program changes it).
void find_engine_path() {
  if (g_engine_path[0]) return;
  Dl_info self{};
  static const int anchor = 0;
  const char* me = dladdr(&anchor, &self) && self.dli_fname ? self.dli_fname : "";
  const char* slash = strrchr(me, '/');
  size_t n = 0;
  auto put = [&](const char* s, size_t len) {
    for (size_t i = 0; i < len && n < sizeof g_engine_path - 1; ++i) g_engine_path[n++] = s[i];
  };
  if (slash) {
    if (me[0] != '/') {
      char cwd[PATH_MAX];
      if (syscall(SYS_getcwd, cwd, sizeof cwd) > 0) {
        put(cwd, strlen(cwd));
        put("/", 1);
      }
    }
    put(me, static_cast<size_t>(slash - me) + 1);
  }
  put(MF_ENGINE_NAME, strlen(MF_ENGINE_NAME));
  g_engine_path[n] = '\0';
}

void load_engine_once() {
  g_engine_state.store(1, std::memory_order_relaxed);
  t_loading = true;
  find_engine_path();
  int saved = errno;
  void* h = dlopen(g_engine_path, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* why = dlerror();
    say("cannot load the engine ", g_engine_path, ": ", why ? why : "?");
    say("passing every call through");
    errno = saved;
    t_loading = false;
    g_engine_state.store(3, std::memory_order_release);
    return;
  }
  // The engine resolves libc through us (find_real: the next definition after the preloaded object), then
  // initialises.
  auto start = reinterpret_cast<void (*)(void* (*)(const char*))>(dlsym(h, "mf_engine_start"));
  if (start == nullptr) {
    say("the engine ", g_engine_path, " does not define mf_engine_start; passing every call through");
    errno = saved;
    t_loading = false;
    g_engine_state.store(3, std::memory_order_release);
    return;
  }
  start(find_real);
  bool complete = true;
  auto look = [&](auto& slot, const char* name) {
    using F = typename std::remove_reference_t<decltype(slot)>::value_type;
    void* p = dlsym(h, name);
    if (p == nullptr) {
      say("the engine ", g_engine_path, " does not define ", name);
      complete = false;
    }
    return reinterpret_cast<F>(p);
  };
  // Looked up first, published only when every hook is there: a mismatched engine is not half used.
#define MF_HOOK(ret, name, params, args, trigger) auto f_##name = look(e_##name, "mf_hook_" #name);
#include "shim/hooks.def"
#undef MF_HOOK
#define MF_LOOK(ret, name, params) auto f_##name = look(e_##name, "mf_hook_" #name);
  MF_VARIADIC_HOOKS(MF_LOOK)
#undef MF_LOOK
  if (complete) {
#define MF_HOOK(ret, name, params, args, trigger) e_##name.store(f_##name, std::memory_order_release);
#include "shim/hooks.def"
#undef MF_HOOK
#define MF_PUBLISH(ret, name, params) e_##name.store(f_##name, std::memory_order_release);
    MF_VARIADIC_HOOKS(MF_PUBLISH)
#undef MF_PUBLISH
  } else {
    say("passing every call through");
  }
  errno = saved;
  t_loading = false;
  g_engine_state.store(complete ? 2 : 3, std::memory_order_release);
}

// Loads the engine (once; other threads wait for it). False when it is not there (every call then passes
// through) or when this thread is the one loading it (its calls from inside dlopen pass through).
bool load_engine() {
  if (t_loading) return false;
  pthread_once(&g_engine_once, load_engine_once);
  return g_engine_state.load(std::memory_order_acquire) == 2;
}

// ---- configuration ---------------------------------------------------------------------------------------

constinit Mounts g_mounts{};
const char* env_of(const char* name) { return getenv(name); }
constinit pthread_once_t g_config_once = PTHREAD_ONCE_INIT;

void config_once() {
  switch (read_mounts(g_mounts, env_of)) {
    case MountsFound::none:
      // The same line the engine prints for it (core/vfs/config.cpp), without loading the engine.
      say("MODELFETCH_REMOTE and MODELFETCH_MOUNT are not both set: expected "
          "MODELFETCH_REMOTE=s3://bucket/prefix (or https://host/path) and "
          "MODELFETCH_MOUNT=/local/path, or MODELFETCH_MOUNTS=\"/local/a=s3://bucket/x;...\"; ",
          "passing every call through");
      break;
    case MountsFound::some:
      break;
    case MountsFound::unclear:  // set, but not in the plain form: the engine parses it now and reports
      load_engine();
      break;
  }
}

inline void ensure_config() {
  if (!t_loading) pthread_once(&g_config_once, config_once);
}

// True when (dirfd, path) may name a mounted path: then the engine must see the call.
inline bool may_mount(int dirfd, const char* path) {
  ensure_config();
  return g_mounts.count != 0 && may_be_mounted(g_mounts, dirfd, path);
}

#define PATH(p) may_mount(AT_FDCWD, p)
#define PATH_AT(d, p) may_mount(d, p)

__attribute__((constructor)) void on_load() {
  find_engine_path();
  ensure_config();
}

}  // namespace
}  // namespace mf::thin

using namespace mf::thin;

// Each hook: the engine's when it is loaded; else, when the call may name a mounted path, load the engine
// and call it; else libc's.
#define MF_HOOK(ret, name, params, args, trigger)                                            \
  MF_EXPORT ret name params {                                                                \
    if (auto e = e_##name.load(std::memory_order_acquire)) return e args;                    \
    if ((trigger) && load_engine()) return e_##name.load(std::memory_order_acquire) args;    \
    return real_of(r_##name, #name) args;                                                    \
  }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // readdir_r: hooked because programs call it
#include "shim/hooks.def"
#pragma GCC diagnostic pop
#undef MF_HOOK

namespace {
inline mode_t open_mode(int flags, va_list ap) {
  return __OPEN_NEEDS_MODE(flags) ? static_cast<mode_t>(va_arg(ap, int)) : 0;
}
}  // namespace

#define MF_OPEN_HOOK(name)                                                                     \
  MF_EXPORT int name(const char* path, int flags, ...) {                                       \
    va_list ap;                                                                                \
    va_start(ap, flags);                                                                       \
    mode_t mode = open_mode(flags, ap);                                                        \
    va_end(ap);                                                                                \
    if (auto e = e_##name.load(std::memory_order_acquire)) return e(path, flags, mode);        \
    if (PATH(path) && load_engine()) return e_##name.load(std::memory_order_acquire)(path, flags, mode); \
    return real_of(r_##name, #name)(path, flags, mode);                                        \
  }
#define MF_OPENAT_HOOK(name)                                                                   \
  MF_EXPORT int name(int dirfd, const char* path, int flags, ...) {                            \
    va_list ap;                                                                                \
    va_start(ap, flags);                                                                       \
    mode_t mode = open_mode(flags, ap);                                                        \
    va_end(ap);                                                                                \
    if (auto e = e_##name.load(std::memory_order_acquire)) return e(dirfd, path, flags, mode); \
    if (PATH_AT(dirfd, path) && load_engine())                                                 \
      return e_##name.load(std::memory_order_acquire)(dirfd, path, flags, mode);               \
    return real_of(r_##name, #name)(dirfd, path, flags, mode);                                 \
  }
MF_OPEN_HOOK(open)
MF_OPEN_HOOK(open64)
MF_OPENAT_HOOK(openat)
MF_OPENAT_HOOK(openat64)

// Every fcntl argument is an int or a pointer; on x86-64 both travel in one register, so forwarding it as a
// long is exact.
#define MF_FCNTL_HOOK(name)                                                   \
  MF_EXPORT int name(int fd, int cmd, ...) {                                  \
    va_list ap;                                                               \
    va_start(ap, cmd);                                                        \
    long arg = va_arg(ap, long);                                              \
    va_end(ap);                                                               \
    if (auto e = e_##name.load(std::memory_order_acquire)) return e(fd, cmd, arg); \
    return real_of(r_##name, #name)(fd, cmd, arg);                            \
  }
MF_FCNTL_HOOK(fcntl)
MF_FCNTL_HOOK(fcntl64)

// Memory: until the engine is loaded no mapping is ours; the raw system call (see the top of the file).
MF_EXPORT void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (auto e = e_mmap.load(std::memory_order_acquire)) return e(addr, len, prot, flags, fd, off);
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}
MF_EXPORT void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (auto e = e_mmap64.load(std::memory_order_acquire)) return e(addr, len, prot, flags, fd, off);
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}
MF_EXPORT int munmap(void* addr, size_t len) {
  if (auto e = e_munmap.load(std::memory_order_acquire)) return e(addr, len);
  return static_cast<int>(syscall(SYS_munmap, addr, len));
}
MF_EXPORT int madvise(void* addr, size_t len, int advice) {
  if (auto e = e_madvise.load(std::memory_order_acquire)) return e(addr, len, advice);
  return static_cast<int>(syscall(SYS_madvise, addr, len, advice));
}
MF_EXPORT void* mremap(void* old_addr, size_t old_size, size_t new_size, int flags, ...) {
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void*);
    va_end(ap);
  }
  if (auto e = e_mremap.load(std::memory_order_acquire)) return e(old_addr, old_size, new_size, flags, new_addr);
  return reinterpret_cast<void*>(syscall(SYS_mremap, old_addr, old_size, new_size, flags, new_addr));
}

MF_EXPORT const char* modelfetch_version() { return "0.1.0"; }
