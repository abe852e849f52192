/* libmodelfetch.so loaded with dlopen() (not LD_PRELOAD) by a program whose threads are busy with file I/O
 * (run through harness.py: MF_LOCAL_DIR, MF_MOUNT_DIR and LD_PRELOAD=LIB are set; the program re-executes
 * itself without LD_PRELOAD and dlopen()s LIB instead).
 *
 * Checks: dlopen returns within the watchdog (the constructor's init takes no lock the busy threads hold);
 * the threads' reads of local files and their stat() of mounted paths go on with the same results before,
 * during and after (the program's calls stay bound to libc: a dlopen'd library interposes nothing, so the
 * mount is invisible to them, ENOENT); the library's own entry points, called explicitly through dlsym, do
 * serve the mount with the right bytes (init completed in the dlopen context). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slurp.h"

#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static const char* g_local;
static const char* g_mount;
static char* g_want;
static size_t g_n;
static atomic_int g_stop, g_errors;
static atomic_long g_loops;

static void* worker(void* arg) {
  (void)arg;
  char local[4096], mounted[4096];
  snprintf(local, sizeof local, "%s/odd.bin", g_local);
  snprintf(mounted, sizeof mounted, "%s/odd.bin", g_mount);
  while (!atomic_load(&g_stop)) {
    size_t n;
    char* b = slurp(local, &n);
    if (!b) FAIL("open %s: %s", local, strerror(errno));
    if (n != g_n || memcmp(b, g_want, n) != 0) atomic_fetch_add(&g_errors, 1);
    free(b);
    struct stat st;
    if (stat(mounted, &st) == 0 || errno != ENOENT) atomic_fetch_add(&g_errors, 1);
    atomic_fetch_add(&g_loops, 1);
  }
  return NULL;
}

int main(int argc, char** argv) {
  (void)argc;
  const char* pre = getenv("LD_PRELOAD");
  if (pre && *pre) {  /* first run, from the harness: drop LD_PRELOAD, pass the library on */
    const char* lib = strrchr(pre, ':') ? strrchr(pre, ':') + 1 : pre;
    setenv("MF_DLOPEN_LIB", lib, 1);
    unsetenv("LD_PRELOAD");
    execv("/proc/self/exe", argv);
    FAIL("execv: %s", strerror(errno));
  }
  const char* lib = getenv("MF_DLOPEN_LIB");
  g_local = getenv("MF_LOCAL_DIR");
  g_mount = getenv("MF_MOUNT_DIR");
  if (!lib || !g_local || !g_mount) FAIL("MF_DLOPEN_LIB, MF_LOCAL_DIR and MF_MOUNT_DIR must be set");
  char p[4096];
  snprintf(p, sizeof p, "%s/odd.bin", g_local);
  g_want = slurp(p, &g_n);
  if (!g_want) FAIL("open %s: %s", p, strerror(errno));
  alarm(60);  /* a deadlock ends as SIGALRM: the test fails instead of hanging */
  enum { kThreads = 8 };
  pthread_t t[kThreads];
  for (int i = 0; i < kThreads; ++i) pthread_create(&t[i], NULL, worker, NULL);
  usleep(50000);
  long before = atomic_load(&g_loops);
  void* h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
  if (!h) FAIL("dlopen: %s", dlerror());
  const char* (*version)(void) = (const char* (*)(void))dlsym(h, "modelfetch_version");
  if (!version || !version()[0]) FAIL("modelfetch_version");
  usleep(100000);
  long during = atomic_load(&g_loops);
  if (during <= before) FAIL("the threads made no progress across dlopen");

  /* The library's own open/read/mmap, called explicitly, serve the mount. */
  int (*mf_open)(const char*, int, ...) = (int (*)(const char*, int, ...))dlsym(h, "open");
  ssize_t (*mf_pread)(int, void*, size_t, off_t) = (ssize_t(*)(int, void*, size_t, off_t))dlsym(h, "pread");
  int (*mf_close)(int) = (int (*)(int))dlsym(h, "close");
  if (!mf_open || !mf_pread || !mf_close) FAIL("dlsym of the hooks");
  snprintf(p, sizeof p, "%s/odd.bin", g_mount);
  int fd = mf_open(p, O_RDONLY);
  if (fd < 0) FAIL("the library's open of %s: %s", p, strerror(errno));
  char* got = malloc(g_n);
  size_t off = 0;
  ssize_t r;
  while (off < g_n && (r = mf_pread(fd, got + off, g_n - off, (off_t)off)) > 0) off += (size_t)r;
  if (off != g_n || memcmp(got, g_want, g_n) != 0) FAIL("wrong bytes through the library's pread (%zu)", off);
  mf_close(fd);

  usleep(50000);
  atomic_store(&g_stop, 1);
  for (int i = 0; i < kThreads; ++i) pthread_join(t[i], NULL);
  if (atomic_load(&g_errors)) FAIL("%d wrong results in the busy threads", atomic_load(&g_errors));
  /* the program's own calls are still libc's: the mount is not visible to them */
  struct stat st;
  if (stat(p, &st) == 0) FAIL("stat of a mounted path succeeded without LD_PRELOAD");
  printf("ok dlopen_threads: %ld loops of the busy threads, %ld before dlopen\n", atomic_load(&g_loops), before);
  return 0;
}
