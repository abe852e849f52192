/* Focused checks for issue 13's findings about fds: the program's fd calls must not break the shim's
 * state, and a failed dup2 must not lose a virtual fd. One case per run (harness.py runs it under the
 * shim); each reads through the mount afterwards and compares with MF_LOCAL_DIR.
 *
 *   dup2-bad-oldfd     dup2(bad_oldfd, virtual_fd) and dup3(...) fail with EBADF; the virtual fd still
 *                      reads the object's bytes (it used to be forgotten first: reads gave the memfd's zeros)
 *   close-range        map files (one touched, one not), close their fds, close_range(3, ~0U, 0), then read
 *                      every byte of both mappings, and open, read and map another file
 *   closefrom          the same with closefrom(3) (glibc calls the close_range syscall itself)
 *   close-each         close() each fd the program did not open (the shim's userfaultfd, eventfds, sockets),
 *                      then the same reads; each closed number must be free for the program afterwards
 *   dup2-onto          dup2(program_fd, fd) onto each fd the program did not open, then the same reads
 *
 * A hang (a fault nobody serves) is caught by a watchdog; a SIGBUS is a failure. Exit 0 pass, 1 fail. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slurp.h"

static const char *L, *M;
static int failures;

static void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("FAIL ", stdout);
  vfprintf(stdout, fmt, ap);
  fputc('\n', stdout);
  fflush(stdout);
  va_end(ap);
  ++failures;
}

static void on_signal(int sig) {
  const char* m = sig == SIGALRM ? "FAIL hung: no answer within 60 s (a fault or a read nobody serves)\n"
                                 : "FAIL SIGBUS reading a mapping\n";
  if (write(1, m, strlen(m)) < 0) _exit(3);
  _exit(3);
}

static char* local(const char* name, size_t* n) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", L, name);
  char* b = slurp(p, n);
  if (!b) {
    perror(p);
    exit(2);
  }
  return b;
}

static int same(const char* what, const unsigned char* got, size_t gotn, const char* want, size_t wantn) {
  if (gotn == wantn && memcmp(got, want, gotn) == 0) return 1;
  size_t i = 0, common = gotn < wantn ? gotn : wantn;
  while (i < common && got[i] == (unsigned char)want[i]) ++i;
  size_t z = i;
  while (z < gotn && got[z] == 0) ++z;
  fail("%s: got %zu bytes, want %zu; first difference at %zu%s", what, gotn, wantn, i,
       i < gotn && z == gotn ? " (zeros from there to the end)" : "");
  return 0;
}

static int open_mounted(const char* name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", M, name);
  int fd = open(p, O_RDONLY);
  if (fd < 0) fail("open %s: %s", p, strerror(errno));
  return fd;
}

static unsigned char* map_mounted(const char* name, size_t n) {
  int fd = open_mounted(name);
  if (fd < 0) exit(1);
  unsigned char* p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) {
    fail("mmap %s: %s", name, strerror(errno));
    exit(1);
  }
  close(fd);  /* the mapping needs no fd */
  return p;
}

/* The fds >= 3 that this program did not open (the shim's), in out[]; returns how many. */
/* Whether fd is a socket (the shim's connections: the one kind of its fds it cannot move for dup2). */
static int is_socket(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int foreign_fds(int* out, int max, const int* own, int nown) {
  DIR* d = opendir("/proc/self/fd");
  int n = 0, self = dirfd(d);
  struct dirent* e;
  while ((e = readdir(d)) && n < max) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name), mine = fd < 3 || fd == self;
    for (int i = 0; i < nown; ++i) mine |= own[i] == fd;
    if (!mine) out[n++] = fd;
  }
  closedir(d);
  return n;
}

static void describe_fd(int fd, char* buf, size_t len) {
  char p[64];
  snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
  ssize_t k = readlink(p, buf, len - 1);
  buf[k < 0 ? 0 : k] = 0;
}

/* After the program's fd calls: every byte of both mappings, then a fresh open+read and a fresh map. */
static void read_after(const char* what, unsigned char* touched, unsigned char* untouched, const char* big,
                       size_t nbig, const char* odd, size_t nodd) {
  char w[200];
  snprintf(w, sizeof w, "%s: the mapping read before, every byte", what);
  same(w, touched, nbig, big, nbig);
  snprintf(w, sizeof w, "%s: the mapping never read before, every byte", what);
  same(w, untouched, nodd, odd, nodd);
  size_t nc;
  char* chunks = local("chunks.bin", &nc);
  int fd = open_mounted("chunks.bin");
  if (fd >= 0) {
    unsigned char* b = malloc(nc + 1);
    size_t got = 0;
    ssize_t r;
    while ((r = read(fd, b + got, nc + 1 - got)) > 0) got += (size_t)r;
    snprintf(w, sizeof w, "%s: a new open + read", what);
    if (r < 0) fail("%s: read: %s", w, strerror(errno));
    else same(w, b, got, chunks, nc);
    unsigned char* m = mmap(NULL, nc, PROT_READ, MAP_PRIVATE, fd, 0);
    snprintf(w, sizeof w, "%s: a new mapping", what);
    if (m == MAP_FAILED) fail("%s: mmap: %s", w, strerror(errno));
    else same(w, m, nc, chunks, nc), munmap(m, nc);
    free(b);
    close(fd);
  }
  free(chunks);
}

static int dup2_bad_oldfd(void) {
  size_t n;
  char* want = local("odd.bin", &n);
  int v = open_mounted("odd.bin");
  if (v < 0) return 1;
  int bad = 1000;
  while (fcntl(bad, F_GETFD) != -1) ++bad;  /* an fd number that is not open */
  errno = 0;
  int r = dup2(bad, v);
  if (r != -1 || errno != EBADF) fail("dup2(bad fd %d, virtual fd %d) = %d, errno %d, want -1 EBADF", bad, v, r, errno);
  errno = 0;
  r = dup3(bad, v, O_CLOEXEC);
  if (r != -1 || errno != EBADF) fail("dup3(bad fd, virtual fd) = %d, errno %d, want -1 EBADF", r, errno);
  unsigned char* b = malloc(n + 1);
  ssize_t k = pread(v, b, n + 1, 0);
  if (k < 0) fail("pread of the virtual fd after the failed dup2: %s", strerror(errno));
  else same("pread of the virtual fd after the failed dup2", b, (size_t)k, want, n);
  size_t got = 0;
  while ((k = read(v, b + got, n + 1 - got)) > 0) got += (size_t)k;
  if (k < 0) fail("read of the virtual fd after the failed dup2: %s", strerror(errno));
  else same("read of the virtual fd after the failed dup2", b, got, want, n);
  unsigned char* m = mmap(NULL, n, PROT_READ, MAP_PRIVATE, v, 0);
  if (m == MAP_FAILED) fail("mmap of the virtual fd after the failed dup2: %s", strerror(errno));
  else same("mmap of the virtual fd after the failed dup2", m, n, want, n), munmap(m, n);
  if (close(v) != 0) fail("close of the virtual fd: %s", strerror(errno));
  free(b);
  free(want);
  return failures ? 1 : 0;
}

static int after_fd_calls(const char* mode) {
  size_t nbig, nodd;
  char* big = local("big.bin", &nbig);
  char* odd = local("odd.bin", &nodd);
  unsigned char* touched = map_mounted("big.bin", nbig);
  unsigned char* untouched = map_mounted("odd.bin", nodd);
  /* touch the first one: the shim's fault machinery (and in s3 mode its connections) is running now */
  same("first page before the fd calls", touched, 4096, big, 4096);
  int foreign[256], nf = foreign_fds(foreign, 256, NULL, 0);
  printf("%s: %d fds the program did not open:", mode, nf);
  for (int i = 0; i < nf; ++i) {
    char what[256];
    describe_fd(foreign[i], what, sizeof what);
    printf(" %d=%s", foreign[i], what);
  }
  printf("\n");
  fflush(stdout);
  if (!strcmp(mode, "close-range")) {
    if (close_range(3, ~0U, 0) != 0) fail("close_range(3, ~0U, 0): %s", strerror(errno));
  } else if (!strcmp(mode, "closefrom")) {
    closefrom(3);
  } else if (!strcmp(mode, "close-each")) {
    int devnull = open("/dev/null", O_RDONLY);  /* before: it cannot take one of the numbers closed below */
    int sock[256];
    for (int i = 0; i < nf; ++i) sock[i] = is_socket(foreign[i]);
    for (int i = 0; i < nf; ++i)
      if (close(foreign[i]) != 0 && errno != EBADF)  /* EBADF: the shim closed it itself meanwhile */
        fail("close(%d): %s", foreign[i], strerror(errno));
    struct stat nul, st;
    fstat(devnull, &nul);
    for (int i = 0; i < nf; ++i) {  /* each number is the program's to use now */
      if (dup2(devnull, foreign[i]) != foreign[i] || fstat(foreign[i], &st) != 0 || st.st_rdev != nul.st_rdev) {
        if (sock[i] && errno == EBUSY) {  /* the documented limit: curl's connections cannot be moved */
          printf("note: fd %d is one of the shim's connections: dup2 onto it refused with EBUSY (README)\n",
                 foreign[i]);
          continue;
        }
        fail("fd %d is not the program's after closing it: %s", foreign[i], strerror(errno));
      }
      close(foreign[i]);
    }
    close(devnull);
  } else if (!strcmp(mode, "dup2-onto")) {
    int devnull = open("/dev/null", O_RDONLY);
    for (int i = 0; i < nf; ++i) {
      if (foreign[i] == devnull) continue;
      const int sock = is_socket(foreign[i]);
      if (dup2(devnull, foreign[i]) == foreign[i]) continue;
      if (sock && errno == EBUSY) {  /* the documented limit: curl's connections cannot be moved */
        printf("note: fd %d is one of the shim's connections: dup2 onto it refused with EBUSY (README)\n",
               foreign[i]);
        continue;
      }
      fail("dup2(/dev/null, %d): %s", foreign[i], strerror(errno));
    }
    for (int i = 0; i < nf; ++i)
      if (foreign[i] != devnull) close(foreign[i]);
    close(devnull);
  }
  read_after(mode, touched, untouched, big, nbig, odd, nodd);
  munmap(touched, nbig);
  munmap(untouched, nodd);
  free(big);
  free(odd);
  return failures ? 1 : 0;
}

int main(int argc, char** argv) {
  L = getenv("MF_LOCAL_DIR");
  M = getenv("MF_MOUNT_DIR");
  if (!L || !M || argc != 2) {
    fprintf(stderr, "usage: shim_own_fds CASE (MF_LOCAL_DIR, MF_MOUNT_DIR set: run through harness.py)\n");
    return 2;
  }
  signal(SIGALRM, on_signal);
  signal(SIGBUS, on_signal);
  alarm(60);
  int rc;
  if (!strcmp(argv[1], "dup2-bad-oldfd")) rc = dup2_bad_oldfd();
  else if (!strcmp(argv[1], "close-range") || !strcmp(argv[1], "closefrom") || !strcmp(argv[1], "close-each") ||
           !strcmp(argv[1], "dup2-onto"))
    rc = after_fd_calls(argv[1]);
  else return fprintf(stderr, "unknown case %s\n", argv[1]), 2;
  printf("%s %s\n", rc ? "FAILED" : "ok", argv[1]);
  return rc;
}
