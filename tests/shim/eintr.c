/* Signals during slow reads (run under LD_PRELOAD by tests/integration/test_hardening.py, against an
 * emulator with a high first-byte latency so that a read of an uncached region blocks).
 *
 * usage: eintr restart|norestart MOUNTED_FILE LOCAL_FILE MOUNTED_FILE2 LOCAL_FILE2
 *
 * SIGUSR1 (sent to the reading thread by a pinger thread every 2 ms) and SIGALRM (process-directed, every
 * 3 ms, from setitimer) have handlers installed with or without SA_RESTART. The main thread read()s
 * MOUNTED_FILE in odd-sized pieces and pread()s its tail, then memcmp()s an mmap of MOUNTED_FILE2 (faults
 * served through userfaultfd while signals arrive). Every read must return correct bytes, or -1/EINTR
 * (allowed without SA_RESTART only); never wrong bytes, a 0 before the end, or a hang (the driver's
 * timeout). Signals must actually have arrived during the blocking calls, or the run proves nothing. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <dirent.h>
#include <unistd.h>

#include "slurp.h"

static volatile sig_atomic_t g_signals;
static atomic_int g_stop;
static pthread_t g_main;

static void on_signal(int sig) {
  (void)sig;
  g_signals = g_signals + 1;
}

static void* pinger(void* arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);  /* SIGALRM goes to the main thread */
  while (!atomic_load(&g_stop)) {
    pthread_kill(g_main, SIGUSR1);
    usleep(2000);
  }
  return NULL;
}

#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

/* Threads other than the main one (the shim's, and our pinger) that can take SIGALRM: must be none, or a
 * process-directed signal could run the program's handler on a thread it does not know. */
static int threads_taking_sigalrm(void) {
  DIR* d = opendir("/proc/self/task");
  struct dirent* e;
  int n = 0;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.' || atoi(e->d_name) == getpid()) continue;
    char p[300], line[256];
    snprintf(p, sizeof p, "/proc/self/task/%s/status", e->d_name);
    FILE* f = fopen(p, "r");
    while (f && fgets(line, sizeof line, f))
      if (strncmp(line, "SigBlk:", 7) == 0 && !(strtoull(line + 7, NULL, 16) & (1ull << (SIGALRM - 1)))) {
        fprintf(stderr, "thread %s does not block SIGALRM\n", e->d_name);
        ++n;
      }
    if (f) fclose(f);
  }
  if (d) closedir(d);
  return n;
}

int main(int argc, char** argv) {
  if (argc != 6) FAIL("usage: eintr restart|norestart MOUNTED LOCAL MOUNTED2 LOCAL2");
  int restart = strcmp(argv[1], "restart") == 0;
  size_t n, n2;
  char* want = slurp(argv[3], &n);
  char* want2 = slurp(argv[5], &n2);
  if (!want || !want2) FAIL("cannot read the local copies %s, %s: %s", argv[3], argv[5], strerror(errno));
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = restart ? SA_RESTART : 0;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGALRM, &sa, NULL);
  g_main = pthread_self();
  pthread_t t;
  pthread_create(&t, NULL, pinger, NULL);
  struct itimerval it = {{0, 3000}, {0, 3000}};
  setitimer(ITIMER_REAL, &it, NULL);

  long eintr = 0, partial = 0, calls = 0, sigs_in_calls = 0;
  int fd = open(argv[2], O_RDONLY);
  while (fd < 0 && errno == EINTR && !restart) fd = open(argv[2], O_RDONLY);
  if (fd < 0) FAIL("open %s: %s", argv[2], strerror(errno));
  char* got = malloc(n + 1);
  size_t off = 0;
  const size_t piece = 700001;  /* crosses chunk edges */
  while (off < n) {
    size_t want_n = n - off < piece ? n - off : piece;
    long before = g_signals;
    ssize_t r = read(fd, got + off, want_n);
    sigs_in_calls += g_signals - before;
    ++calls;
    if (r < 0 && errno == EINTR) {
      if (restart) FAIL("read returned EINTR with SA_RESTART");
      ++eintr;
      continue;
    }
    if (r < 0) FAIL("read at %zu: %s", off, strerror(errno));
    if (r == 0) FAIL("read returned 0 at %zu of %zu", off, n);
    if (memcmp(got + off, want + off, (size_t)r) != 0) FAIL("wrong bytes from read at %zu+%zd", off, r);
    if ((size_t)r < want_n) ++partial;
    off += (size_t)r;
  }
  if (lseek(fd, 0, SEEK_CUR) != (off_t)n) FAIL("offset after reads");
  /* pread of a region read above (cached) and of the head of a fresh descriptor: same rules */
  for (int i = 0; i < 4; ++i) {
    size_t o = (n / 5) * (size_t)i, len = 65536 < n - o ? 65536 : n - o;
    long before = g_signals;
    ssize_t r = pread(fd, got, len, (off_t)o);
    sigs_in_calls += g_signals - before;
    ++calls;
    if (r < 0 && errno == EINTR && !restart) { ++eintr; --i; continue; }
    if (r <= 0 || memcmp(got, want + o, (size_t)r) != 0) FAIL("pread at %zu", o);
  }
  close(fd);

  /* mmap of a second, uncached file: each fault waits for its chunk while signals arrive */
  int fd2 = open(argv[4], O_RDONLY);
  if (fd2 < 0) FAIL("open %s: %s", argv[4], strerror(errno));
  const unsigned char* m = mmap(NULL, n2, PROT_READ, MAP_PRIVATE, fd2, 0);
  if (m == MAP_FAILED) FAIL("mmap: %s", strerror(errno));
  close(fd2);
  long before = g_signals;
  for (size_t o = 0; o < n2; o += 4096) {
    size_t len = n2 - o < 4096 ? n2 - o : 4096;
    if (memcmp(m + o, want2 + o, len) != 0) FAIL("wrong bytes in the mapping at %zu", o);
  }
  long sigs_in_faults = g_signals - before;
  munmap((void*)m, n2);
  int foreign = threads_taking_sigalrm();

  struct itimerval off_timer = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off_timer, NULL);
  atomic_store(&g_stop, 1);
  pthread_join(t, NULL);
  printf("%s: %ld calls, %ld EINTR, %ld partial, %ld signals during reads, %ld during mapping faults\n",
         argv[1], calls, eintr, partial, sigs_in_calls, sigs_in_faults);
  if (sigs_in_calls == 0) FAIL("no signal arrived during a read: the test proved nothing");
  if (sigs_in_faults == 0) FAIL("no signal arrived while faulting the mapping");
  if (foreign) FAIL("%d threads besides the main one take SIGALRM", foreign);
  puts("ok eintr");
  return 0;
}
