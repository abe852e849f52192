// libmodelfetch.so init: resolves the real libc symbols, reads the configuration, installs the fork
// handlers and, at exit, writes MODELFETCH_STATS.
//
// Init runs through pthread_once from our constructor and from every hook (another preloaded library's
// constructor may call open() before ours runs). It allocates only the small Vfs object: the cache, the
// mapping manager, any thread and any connection wait for the first mounted path (LD_PRELOAD is inherited by
// every child process; one that never touches the mount pays the symbol lookups and nothing else).
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>

#include <cstdlib>

#include "core/util/log.hpp"
#include "shim/shim.hpp"
#include "shim/store_factory.hpp"

namespace mf::shim {

constinit Real real{};
constinit std::atomic<Vfs*> g_vfs{nullptr};
thread_local bool t_busy __attribute__((tls_model("initial-exec"))) = false;

namespace {

constinit pthread_once_t g_once = PTHREAD_ONCE_INIT;
constinit std::atomic<pid_t> g_pid{0};  // the process that owns the engine's state (updated after fork)

// Whether p is inside this library. (Comparing with &::open would not do: that address comes through the
// GOT, which under dlopen() is bound to libc's open, not ours.)
bool in_this_library(void* p) {
  Dl_info self{}, other{};
  static const int anchor = 0;
  return dladdr(&anchor, &self) != 0 && dladdr(p, &other) != 0 && self.dli_fbase == other.dli_fbase;
}

// The thin library's resolver (mf_engine_start): libc's definition as seen from the preloaded object, i.e.
// the next one after it in the global scope. From the engine, dlopen'ed RTLD_LOCAL, RTLD_NEXT searches the
// engine's own dependencies instead, which in a sanitized build start with the sanitizer runtime: its
// interceptor would call the thin library's hook again, forever.
using Resolver = void* (*)(const char*);
constinit Resolver g_resolver = nullptr;

// RTLD_NEXT: the next definition after us (libc, or another interposer between us and libc). Loaded with
// dlopen() instead of LD_PRELOAD, the library comes last in the global scope and RTLD_NEXT finds nothing:
// then libc's own definition, from libc's handle.
void* resolve(const char* name) {
  void* p = g_resolver ? g_resolver(name) : dlsym(RTLD_NEXT, name);
  if (p == nullptr || in_this_library(p)) {
    static void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    p = libc ? dlsym(libc, name) : nullptr;
  }
  if (p == nullptr || in_this_library(p)) {
    log_message(LogLevel::error, "cannot resolve the real %s (%s)", name, p ? "resolves to ourselves" : "missing");
    std::abort();
  }
  return p;
}

// The fork handlers run our own work on the program's thread: under Work, so the libc calls they make
// (the client's wakeup write, the fills' reads) pass through instead of re-entering the locked manager.
void atfork_prepare() {
  Work w;
  if (Vfs* v = g_vfs.load(std::memory_order_acquire)) v->before_fork();
}
void atfork_parent() {
  Work w;
  if (Vfs* v = g_vfs.load(std::memory_order_acquire)) v->after_fork_parent();
}
void atfork_child() {
  g_pid.store(getpid(), std::memory_order_relaxed);
  Work w;
  if (Vfs* v = g_vfs.load(std::memory_order_acquire)) v->after_fork_child();
}

uint64_t physical_ram() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : (8ull << 30);
}

void init_once() {
  t_busy = true;
#define MF_RESOLVE(name, ret, ...) \
  real.name = reinterpret_cast<ret (*)(__VA_ARGS__)>(resolve(#name));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // readdir_r: hooked because programs call it
  MF_REAL_SYMBOLS(MF_RESOLVE)
#pragma GCC diagnostic pop
#undef MF_RESOLVE
  auto config = parse_config(process_env(), physical_ram());
  if (!config) {
    log_message(LogLevel::error, "%s; passing every call through", config.error().message.c_str());
    t_busy = false;
    return;
  }
  set_log_level(config->log_level);
  VfsDeps deps;
  deps.make_store = &make_store;
  deps.map_sys = MapSyscalls{real.mmap, real.munmap, real.madvise, real.mremap};
  g_vfs.store(new Vfs(std::move(*config), std::move(deps)), std::memory_order_release);
  g_pid.store(getpid(), std::memory_order_relaxed);
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  t_busy = false;
}

// No constructor init: the thin library starts the engine (mf_engine_start, below) once dlopen returned, with
// its resolver; a hook reached earlier initialises through ensure_init() as before.

// The Vfs is never destroyed: other threads (and mapped tensors being faulted in) may outlive this.
__attribute__((destructor)) void on_unload() {
  Vfs* v = g_vfs.load(std::memory_order_acquire);
  if (!v) return;
  t_busy = true;
  v->write_stats();
}

}  // namespace

// While init runs on this thread (t_busy), a hook re-entered from it (e.g. an allocator whose own init opens
// a /proc file when our first allocation reaches it) must not wait on the pthread_once
// it is inside: it passes through to the real symbol, which init resolved before allocating anything.
void ensure_init() {
  if (!t_busy) pthread_once(&g_once, init_once);
}

bool in_vfork_child() {
  pid_t owner = g_pid.load(std::memory_order_relaxed);
  return owner != 0 && getpid() != owner;
}

}  // namespace mf::shim

MF_EXPORT const char* modelfetch_version() { return "0.1.0"; }

// Called by the thin library right after it loaded the engine, before it publishes the hooks.
MF_EXPORT void mf_engine_start(void* (*resolver)(const char*)) {
  mf::shim::g_resolver = resolver;
  mf::shim::ensure_init();
}
