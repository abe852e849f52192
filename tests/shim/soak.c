/* Soak under the shim (harness.py): 8 threads and 2 forked children repeat open / fstat / pread / mmap /
 * memcmp / madvise(MADV_DONTNEED) / munmap / read / close over every fixture file for a bounded time, while
 * another thread (one per process) closes the fds the program did not open (the shim's userfaultfd,
 * eventfds, sockets, ...) one by one and with close_range() over a range that holds none of the program's.
 *
 * Asserts: every byte read is the local copy's (MF_LOCAL_DIR); the fd count and RSS of the parent stay
 * stable (the last quarter's maximum within a bound of the first quarter's); nothing hangs (a watchdog
 * alarm, and a watchdog process for when signals cannot be delivered, fail the test); both children exit 0.
 *
 * The program's own fds are tracked in owned[]: a worker opens and marks (and unmarks and closes) under a
 * read lock, the closer scans /proc/self/fd and closes under the write lock, so it never sees one of the
 * program's fds unmarked.
 *
 * usage: shim_soak [SECONDS]   (default 20, or MF_SOAK_SECONDS)
 *        MF_SOAK_RSS_SLACK_MB: allowed RSS growth (default 48; +320 under ASan, whose quarantine keeps
 *        freed memory resident, and TSan). Plain C and pthreads so it runs under ASan and TSan. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "slurp.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

#define NWORKERS 8
#define CHILD_WORKERS 2
#define MAXFD 65536
#define MAXSAMPLES 4096

struct file {
  char rel[512];
  unsigned char* data;
  size_t n;
};

static const char *L, *M;
static struct file files[64];
static int nfiles;
static double deadline;
static pthread_rwlock_t fdlock = PTHREAD_RWLOCK_INITIALIZER;
static _Atomic unsigned char owned[MAXFD];
static atomic_long failures, iterations, bytes_checked;
static atomic_long closed_individually, close_range_calls, closed_kind[6];
static const char* kinds[6] = {"userfaultfd", "eventfd", "socket", "memfd", "pipe", "other"};
static long fd_samples[MAXSAMPLES], rss_samples[MAXSAMPLES];
static int nsamples;
static const char* who = "parent";

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fail(const char* fmt, ...) {
  if (atomic_fetch_add(&failures, 1) >= 20) return;  /* the first 20 are enough to see what is wrong */
  char line[1024];
  int k = snprintf(line, sizeof line, "FAIL soak (%s): ", who);
  va_list ap;
  va_start(ap, fmt);
  k += vsnprintf(line + k, sizeof line - (size_t)k, fmt, ap);
  va_end(ap);
  if (k > (int)sizeof line - 2) k = (int)sizeof line - 2;
  line[k++] = '\n';
  if (write(1, line, (size_t)k) < 0) _exit(3);
}

static void on_signal(int sig) {
  char m[200];
  int n = snprintf(m, sizeof m, "FAIL soak (%s): %s\n", who,
                   sig == SIGALRM ? "hung: the watchdog fired (a deadlock, or a read or fault nobody serves)"
                                  : "SIGBUS reading a mapping");
  if (write(1, m, (size_t)n) < 0) _exit(3);
  _exit(3);
}

static void check_bytes(const char* what, const struct file* f, size_t off, const unsigned char* got, size_t n) {
  if (memcmp(got, f->data + off, n) == 0) {
    atomic_fetch_add(&bytes_checked, (long)n);
    return;
  }
  size_t i = 0, z;
  while (got[i] == f->data[off + i]) ++i;
  for (z = i; z < n && got[z] == 0; ++z) {
  }
  fail("%s of %s: wrong byte at %zu (range %zu+%zu)%s", what, f->rel, off + i, off, n,
       z == n ? ", zeros from there to the end of the range" : "");
}

static int load_local(const char* fpath, const struct stat* st, int type, struct FTW* ftw) {
  (void)ftw;
  if (type != FTW_F || nfiles == (int)(sizeof files / sizeof files[0])) return 0;
  struct file* f = &files[nfiles++];
  snprintf(f->rel, sizeof f->rel, "%s", fpath + strlen(L) + 1);
  f->n = (size_t)st->st_size;
  size_t got = 0;
  f->data = (unsigned char*)slurp(fpath, &got);
  if (!f->data || got != f->n) {
    fprintf(stderr, "cannot read the local copy %s\n", fpath);
    exit(2);
  }
  return 0;
}

static uint64_t next(uint64_t* x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static int open_owned(const char* path) {
  pthread_rwlock_rdlock(&fdlock);
  int fd = open(path, O_RDONLY);
  if (fd >= 0 && fd < MAXFD) atomic_store(&owned[fd], 1);
  pthread_rwlock_unlock(&fdlock);
  if (fd >= MAXFD) fail("fd %d out of the tracked range (an fd leak?)", fd), _exit(1);
  return fd;
}

static void close_owned(int fd) {
  pthread_rwlock_rdlock(&fdlock);
  atomic_store(&owned[fd], 0);
  if (close(fd) != 0) fail("close(%d) of the program's own fd: %s", fd, strerror(errno));
  pthread_rwlock_unlock(&fdlock);
}

static void one_round(const struct file* f, uint64_t* rng, unsigned char* buf) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", M, f->rel);
  int fd = open_owned(p);
  if (fd < 0) {
    fail("open %s: %s", f->rel, strerror(errno));
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || (size_t)st.st_size != f->n)
    fail("fstat %s: size %lld, want %zu (%s)", f->rel, (long long)st.st_size, f->n, strerror(errno));
  if (f->n) {
    /* a random range with pread */
    size_t off = (size_t)(next(rng) % f->n), len = f->n - off < 300000 ? f->n - off : 300000;
    ssize_t r = pread(fd, buf, len, (off_t)off);
    if (r != (ssize_t)len) fail("pread %s at %zu: %zd of %zu (%s)", f->rel, off, r, len, strerror(errno));
    else check_bytes("pread", f, off, buf, len);
    /* a mapping (whole file or from a page-aligned offset; read-only or private read-write), every byte */
    size_t moff = (next(rng) % 2) ? 0 : (size_t)(next(rng) % f->n) & ~(size_t)4095;
    size_t mlen = f->n - moff;
    int rw = (int)(next(rng) % 2);
    unsigned char* m = mmap(NULL, mlen, PROT_READ | (rw ? PROT_WRITE : 0), MAP_PRIVATE, fd, (off_t)moff);
    if (m == MAP_FAILED) {
      fail("mmap %s at %zu: %s", f->rel, moff, strerror(errno));
    } else {
      check_bytes(rw ? "mmap (rw private)" : "mmap", f, moff, m, mlen);
      if (rw) m[mlen / 2] ^= 0xff;  /* private: never seen by anyone else */
      if (mlen > 8192) {  /* dropped pages refill with the file's bytes */
        size_t half = (mlen / 2) & ~(size_t)4095;
        if (madvise(m, half, MADV_DONTNEED) != 0) fail("madvise %s: %s", f->rel, strerror(errno));
        else check_bytes("mmap after MADV_DONTNEED", f, moff, m, half);
      }
      if (munmap(m, mlen) != 0) fail("munmap %s: %s", f->rel, strerror(errno));
    }
  }
  /* the whole file with read(), in odd-sized pieces */
  size_t got = 0;
  ssize_t r;
  while ((r = read(fd, buf + got, 262147)) > 0) got += (size_t)r;
  if (r < 0) fail("read %s at %zu: %s", f->rel, got, strerror(errno));
  else if (got != f->n) fail("read %s: %zu bytes, want %zu", f->rel, got, f->n);
  else check_bytes("read", f, 0, buf, got);
  close_owned(fd);
  atomic_fetch_add(&iterations, 1);
}

static void* worker(void* arg) {
  uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)((intptr_t)arg + 1) + (uint64_t)getpid();
  size_t max = 0;
  for (int i = 0; i < nfiles; ++i) max = files[i].n > max ? files[i].n : max;
  unsigned char* buf = malloc(max + 262147);
  for (int i = (int)(intptr_t)arg; now() < deadline; ++i) one_round(&files[i % nfiles], &rng, buf);
  free(buf);
  return NULL;
}

static int kind_of(int fd) {
  char p[64], t[256];
  snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
  ssize_t k = readlink(p, t, sizeof t - 1);
  t[k < 0 ? 0 : k] = 0;
  if (strstr(t, "userfaultfd")) return 0;
  if (strstr(t, "eventfd")) return 1;
  if (!strncmp(t, "socket:", 7)) return 2;
  if (!strncmp(t, "/memfd:", 7)) return 3;
  if (!strncmp(t, "pipe:", 5)) return 4;
  return 5;
}

static long rss_bytes(void) {
  int fd = open("/proc/self/statm", O_RDONLY);
  char b[128] = {0};
  ssize_t k = fd < 0 ? -1 : read(fd, b, sizeof b - 1);
  if (fd >= 0) close(fd);
  long size = 0, rss = 0;
  if (k <= 0 || sscanf(b, "%ld %ld", &size, &rss) != 2) return -1;
  return rss * sysconf(_SC_PAGESIZE);
}

/* One pass of the closer, under the write lock: sample, then close foreign fds and close_range above the
 * program's highest fd. */
static void closer_pass(uint64_t* rng, int sample) {
  pthread_rwlock_wrlock(&fdlock);
  long rss = sample ? rss_bytes() : 0;
  DIR* d = opendir("/proc/self/fd");
  if (!d) {
    fail("opendir /proc/self/fd: %s", strerror(errno));
    pthread_rwlock_unlock(&fdlock);
    return;
  }
  int self = dirfd(d), foreign[1024], nf = 0, count = 0, maxown = 2;
  struct dirent* e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd == self) continue;
    ++count;
    if (fd >= MAXFD) continue;
    if (atomic_load(&owned[fd])) maxown = fd > maxown ? fd : maxown;
    else if (fd >= 3 && nf < 1024) foreign[nf++] = fd;
  }
  closedir(d);
  if (sample && nsamples < MAXSAMPLES) fd_samples[nsamples] = count, rss_samples[nsamples++] = rss;
  for (int i = 0; i < nf; ++i) {
    if (next(rng) % 2) continue;
    int kind = kind_of(foreign[i]);
    if (close(foreign[i]) != 0) {
      /* EBADF: the shim closed it itself since the scan (its fds come and go; the program's cannot) */
      if (errno != EBADF) fail("close(%d) of an fd the program did not open: %s", foreign[i], strerror(errno));
    } else {
      atomic_fetch_add(&closed_individually, 1);
      atomic_fetch_add(&closed_kind[kind], 1);
    }
  }
  if (next(rng) % 2) {
    if (close_range((unsigned)maxown + 1, ~0U, 0) != 0) fail("close_range(%d, ~0U, 0): %s", maxown + 1, strerror(errno));
    else atomic_fetch_add(&close_range_calls, 1);
  }
  pthread_rwlock_unlock(&fdlock);
}

static void* closer(void* arg) {
  uint64_t rng = 0x2545f4914f6cdd1dull + (uint64_t)getpid();
  int sample = arg != NULL;
  double last_sample = 0;
  while (now() < deadline) {
    struct timespec t = {0, (long)(5 + next(&rng) % 45) * 1000000L};
    nanosleep(&t, NULL);
    int take = sample && now() - last_sample >= 0.1;
    if (take) last_sample = now();
    closer_pass(&rng, take);
  }
  return NULL;
}

/* A child's threads (the parent starts its own in main, to fork while they run). */
static void run_threads(int nworkers, int sample) {
  pthread_t w[NWORKERS], c;
  for (int i = 0; i < nworkers; ++i) pthread_create(&w[i], NULL, worker, (void*)(intptr_t)i);
  pthread_create(&c, NULL, closer, sample ? (void*)1 : NULL);
  for (int i = 0; i < nworkers; ++i) pthread_join(w[i], NULL);
  pthread_join(c, NULL);
}

static pthread_t pw[NWORKERS], pc;

static pid_t fork_child(int i) {
  /* no worker is between open and marking, or closing and unmarking, while we fork; the shim's own
   * locks are its business (its atfork handlers) */
  pthread_rwlock_wrlock(&fdlock);
  pid_t pid = fork();
  if (pid != 0) {
    pthread_rwlock_unlock(&fdlock);
    return pid;
  }
  /* the lock's copy may record the parent's waiting threads, which do not exist here: a fresh one */
  pthread_rwlock_init(&fdlock, NULL);
  who = i ? "child 2" : "child 1";
  atomic_store(&failures, 0);
  atomic_store(&iterations, 0);
  atomic_store(&bytes_checked, 0);
  atomic_store(&closed_individually, 0);
  atomic_store(&close_range_calls, 0);
  alarm((unsigned)(deadline - now()) + 60);
  /* the workers' fds came along: they are the program's, and no thread here uses them */
  for (int fd = 3; fd < MAXFD; ++fd)
    if (atomic_load(&owned[fd])) atomic_store(&owned[fd], 0), close(fd);
  run_threads(CHILD_WORKERS, 0);
  long f = atomic_load(&failures);
  printf("soak (%s): %ld rounds, %ld MiB checked, %ld fds closed, %ld close_range calls, %ld failures\n", who,
         atomic_load(&iterations), atomic_load(&bytes_checked) >> 20, atomic_load(&closed_individually),
         atomic_load(&close_range_calls), f);
  fflush(stdout);
  exit(f ? 1 : 0);
}

/* A watchdog process: SIGALRM alone is not enough, since TSan delivers a signal only when the thread
 * reaches one of its safe points, which a thread blocked on a mutex never does. The soak is its own process
 * group (so its children are in it too); after `limit` seconds the watchdog reports and kills the group. */
static pid_t start_watchdog(double limit) {
  setpgid(0, 0);
  pid_t parent = getpid(), pid = fork();
  if (pid != 0) return pid;
  double end = now() + limit;
  while (getppid() == parent) {
    if (now() > end) {
      const char m[] = "FAIL soak (watchdog): hung, killing the process group (a deadlock, or a read or fault "
                       "nobody serves)\n";
      if (write(1, m, sizeof m - 1) < 0) _exit(3);
      kill(-parent, SIGKILL);
      _exit(3);
    }
    struct timespec t = {0, 200000000L};
    nanosleep(&t, NULL);
  }
  _exit(0);
}

static long quarter_max(const long* s, int from, int to) {
  long m = 0;
  for (int i = from; i < to; ++i) m = s[i] > m ? s[i] : m;
  return m;
}

int main(int argc, char** argv) {
  L = getenv("MF_LOCAL_DIR");
  M = getenv("MF_MOUNT_DIR");
  if (!L || !M) return fprintf(stderr, "MF_LOCAL_DIR and MF_MOUNT_DIR must be set (harness.py)\n"), 2;
  double seconds = argc > 1 ? atof(argv[1]) : getenv("MF_SOAK_SECONDS") ? atof(getenv("MF_SOAK_SECONDS")) : 20;
  long slack_mb = getenv("MF_SOAK_RSS_SLACK_MB") ? atol(getenv("MF_SOAK_RSS_SLACK_MB")) : 48 + (SANITIZED ? 320 : 0);
  nftw(L, load_local, 16, FTW_PHYS);
  if (nfiles < 5) return fprintf(stderr, "only %d fixture files under %s\n", nfiles, L), 2;
  signal(SIGALRM, on_signal);
  signal(SIGBUS, on_signal);
  deadline = now() + seconds;
  alarm((unsigned)seconds + 60);
  pid_t watchdog = start_watchdog(seconds + 75);
  for (int i = 0; i < NWORKERS; ++i) pthread_create(&pw[i], NULL, worker, (void*)(intptr_t)i);
  pthread_create(&pc, NULL, closer, (void*)1);
  /* MF_SOAK_CHILDREN=0 (scripts/sanitize): TSan cannot follow a child of a multi-threaded process that starts
   * threads (it aborts with "dup thread with used id"), and GCC 12's ASan allocator is not fork-safe there (a
   * child can block for ever in malloc); the children run in the normal suite. */
  int nkids = getenv("MF_SOAK_CHILDREN") ? atoi(getenv("MF_SOAK_CHILDREN")) : 2;
  if (nkids < 0 || nkids > 2) nkids = 2;
  pid_t kids[2];
  for (int i = 0; i < nkids; ++i) {
    struct timespec t = {0, 300000000L};
    nanosleep(&t, NULL);  /* fork while the workers run */
    kids[i] = fork_child(i);
    if (kids[i] < 0) return perror("fork"), 2;
  }
  for (int i = 0; i < NWORKERS; ++i) pthread_join(pw[i], NULL);
  pthread_join(pc, NULL);
  for (int i = 0; i < nkids; ++i) {
    int status;
    if (waitpid(kids[i], &status, 0) != kids[i]) fail("waitpid child %d: %s", i + 1, strerror(errno));
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail("child %d: %s %d", i + 1, WIFEXITED(status) ? "exit status" : "killed by signal",
           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
  kill(watchdog, SIGKILL);
  waitpid(watchdog, NULL, 0);
  int q = nsamples / 4;
  if (q < 2) {
    fail("only %d samples of fd count and RSS", nsamples);
  } else {
    long fd0 = quarter_max(fd_samples, 0, q), fd1 = quarter_max(fd_samples, nsamples - q, nsamples);
    long rss0 = quarter_max(rss_samples, 0, q), rss1 = quarter_max(rss_samples, nsamples - q, nsamples);
    printf("soak: fds (max) first quarter %ld, last quarter %ld; RSS (max) first quarter %ld MiB, last %ld MiB\n",
           fd0, fd1, rss0 >> 20, rss1 >> 20);
    if (fd1 > fd0 + NWORKERS) fail("fd count grew from %ld to %ld (a leak)", fd0, fd1);
    if (rss1 > rss0 + (slack_mb << 20)) fail("RSS grew from %ld MiB to %ld MiB (more than %ld MiB)", rss0 >> 20, rss1 >> 20, slack_mb);
  }
  printf("soak (parent): %.0f s, %ld rounds over %d files, %ld MiB checked; closed %ld foreign fds (", seconds,
         atomic_load(&iterations), nfiles, atomic_load(&bytes_checked) >> 20, atomic_load(&closed_individually));
  for (int k = 0; k < 6; ++k) printf("%s%s %ld", k ? ", " : "", kinds[k], atomic_load(&closed_kind[k]));
  printf("), %ld close_range calls; %ld failures\n", atomic_load(&close_range_calls), atomic_load(&failures));
  return atomic_load(&failures) ? 1 : 0;
}
