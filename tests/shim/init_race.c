/* Many threads race their first call on the mount at program start (run under LD_PRELOAD through
 * harness.py, several times by test_hardening.py): 16 threads released together by a barrier each open,
 * stat, read and mmap a mounted file before any other call has touched the mount, so the engine's lazy
 * start (cache, store, connections, mapping manager) happens under contention. Every thread must get the
 * same bytes as the local copy (MF_LOCAL_DIR); a deadlock ends as SIGALRM. `init_race N` repeats it in N
 * fresh processes. (The library's own init, pthread_once from its constructor and from every hook, has run
 * before main under LD_PRELOAD; what races here is the engine's start on the first mounted path.) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "slurp.h"

enum { kThreads = 16 };
static const char* kNames[] = {"odd.bin", "chunks.bin", "sub/dir/nested.bin", "model.safetensors"};
static pthread_barrier_t g_start;
static atomic_int g_errors;

static void error(int i, const char* what) {
  fprintf(stderr, "thread %d: %s (%s)\n", i, what, strerror(errno));
  atomic_fetch_add(&g_errors, 1);
}

static void* worker(void* arg) {
  int i = (int)(long)arg;
  const char* name = kNames[i % 4];
  char local[4096], mounted[4096];
  snprintf(local, sizeof local, "%s/%s", getenv("MF_LOCAL_DIR"), name);
  snprintf(mounted, sizeof mounted, "%s/%s", getenv("MF_MOUNT_DIR"), name);
  size_t n = 0, got_n = 0;
  char* want = slurp(local, &n);  /* a local file: not the mount */
  pthread_barrier_wait(&g_start);
  char* got = NULL;
  struct stat st;
  switch (i % 3) {
    case 0:  /* open + read first */
      got = slurp(mounted, &got_n);
      if (!got || got_n != n || memcmp(got, want, n) != 0) error(i, "read: wrong bytes");
      break;
    case 1:  /* stat first, then mmap */
      if (stat(mounted, &st) != 0 || (size_t)st.st_size != n) { error(i, "stat"); break; }
      {
        int fd = open(mounted, O_RDONLY);
        if (fd < 0) { error(i, "open"); break; }
        void* m = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (m == MAP_FAILED) { error(i, "mmap"); break; }
        if (memcmp(m, want, n) != 0) error(i, "mmap: wrong bytes");
        munmap(m, n);
      }
      break;
    default:  /* pread from the end backwards */
      {
        int fd = open(mounted, O_RDONLY);
        if (fd < 0) { error(i, "open"); break; }
        got = malloc(n + 1);
        for (size_t end = n; end > 0;) {
          size_t len = end < 300007 ? end : 300007;
          if (pread(fd, got + end - len, len, (off_t)(end - len)) != (ssize_t)len) { error(i, "pread"); break; }
          end -= len;
        }
        close(fd);
        if (memcmp(got, want, n) != 0) error(i, "pread: wrong bytes");
      }
  }
  free(got);
  free(want);
  return NULL;
}

int main(int argc, char** argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 1;
  if (runs > 1) {  /* each run a fresh process: a fresh engine whose start is raced */
    for (int r = 0; r < runs; ++r) {
      pid_t pid = fork();
      if (pid == 0) {
        execl("/proc/self/exe", argv[0], "1", (char*)NULL);
        _exit(127);
      }
      int status;
      if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "FAIL: run %d: status 0x%x\n", r, status);
        return 1;
      }
    }
    printf("ok init_race: %d runs\n", runs);
    return 0;
  }
  alarm(60);
  pthread_barrier_init(&g_start, NULL, kThreads);
  pthread_t t[kThreads];
  for (long i = 0; i < kThreads; ++i) pthread_create(&t[i], NULL, worker, (void*)i);
  for (int i = 0; i < kThreads; ++i) pthread_join(t[i], NULL);
  if (atomic_load(&g_errors)) {
    fprintf(stderr, "FAIL: %d errors\n", atomic_load(&g_errors));
    return 1;
  }
  puts("ok init_race");
  return 0;
}
