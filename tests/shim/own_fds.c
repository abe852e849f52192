/* The shim's own fds survive the program (run through harness.py, userfaultfd mode where available):
 *   dup2-bad     dup2(bad oldfd, virtual fd) fails with EBADF and the virtual fd still reads the object's bytes
 *   close-range  close_range(3, ~0U, 0) after mapping a file
 *   closefrom    closefrom(3)
 *   close-each   close(fd) for every fd 3..1023 (or the soft RLIMIT_NOFILE), one by one
 *   dup2-ours    dup2 of /dev/null onto each of the shim's fds (found in /proc/self/fd: the userfaultfd, its
 *                eventfd, the SIGBUS memfd, sockets), then dup3 onto each found again: the call returns the
 *                number, which is the program's /dev/null afterwards (the shim moved its fd); only a
 *                connection may refuse with EBUSY
 * After each, every byte of the mapping (never touched before) and of a file opened afterwards through the
 * mount must equal the local copy: a closed userfaultfd would fill the pages with zeros. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slurp.h"

#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static int is_shim_fd(const char* link) {
  return strcmp(link, "anon_inode:[userfaultfd]") == 0 || strcmp(link, "anon_inode:[eventfd]") == 0 ||
         strstr(link, "modelfetch-sigbus") != NULL || strncmp(link, "socket:", 7) == 0;
}

static void fd_link(int fd, char* link, size_t len) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t r = readlink(path, link, len - 1);
  link[r > 0 ? r : 0] = '\0';
}

static int shim_fds_now(int* fds, int max) {
  DIR* d = opendir("/proc/self/fd");
  if (!d) FAIL("opendir /proc/self/fd: %s", strerror(errno));
  int k = 0;
  struct dirent* e;
  while ((e = readdir(d)) && k < max) {
    char link[256];
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    fd_link(atoi(e->d_name), link, sizeof link);
    if (is_shim_fd(link)) fds[k++] = atoi(e->d_name);
  }
  closedir(d);
  return k;
}

int main(int argc, char** argv) {
  const char* local = getenv("MF_LOCAL_DIR");
  const char* mount = getenv("MF_MOUNT_DIR");
  if (argc < 2 || !local || !mount) FAIL("usage: own_fds MODE (under harness.py)");
  const char* mode = argv[1];
  char p[PATH_MAX];
  size_t n, n2;
  snprintf(p, sizeof p, "%s/chunks.bin", local);
  char* want = slurp(p, &n);
  snprintf(p, sizeof p, "%s/odd.bin", local);
  char* want2 = slurp(p, &n2);
  if (!want || !want2) FAIL("local copies: %s", strerror(errno));
  alarm(60);
  snprintf(p, sizeof p, "%s/chunks.bin", mount);
  int fd = open(p, O_RDONLY);
  if (fd < 0) FAIL("open %s: %s", p, strerror(errno));

  if (strcmp(mode, "dup2-bad") == 0) {
    int bad = 1000;
    while (fcntl(bad, F_GETFD) >= 0) ++bad;
    errno = 0;
    if (dup2(bad, fd) != -1 || errno != EBADF) FAIL("dup2(bad, virtual): want -1 EBADF, errno %d", errno);
    if (dup3(bad, fd, 0) != -1 || errno != EBADF) FAIL("dup3(bad, virtual): want -1 EBADF, errno %d", errno);
    char* got = malloc(n);
    size_t off = 0;
    ssize_t r;
    while (off < n && (r = pread(fd, got + off, n - off, (off_t)off)) > 0) off += (size_t)r;
    if (off != n || memcmp(got, want, n) != 0) FAIL("the virtual fd reads wrong bytes after a failed dup2 (%zu)", off);
    printf("ok own_fds dup2-bad\n");
    return 0;
  }

  unsigned char* m = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
  if (m == MAP_FAILED) FAIL("mmap: %s", strerror(errno));
  if (m[0] != (unsigned char)want[0]) FAIL("first byte");  /* starts the fault handling (its fds) */
  int shim_fds = 0, refused = 0, moved = 0;
  if (strcmp(mode, "close-range") == 0) {
    if (close_range(3, ~0U, 0) != 0) FAIL("close_range: %s", strerror(errno));
  } else if (strcmp(mode, "closefrom") == 0) {
    closefrom(3);
  } else if (strcmp(mode, "close-each") == 0) {
    struct rlimit rl;
    int hi = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 1024;
    for (int i = 3; i < hi; ++i) close(i);
  } else if (strcmp(mode, "dup2-ours") == 0) {
    /* Twice: dup2 onto each shim fd, then dup3 onto each shim fd found again (the moved ones). */
    int null_fd = open("/dev/null", O_RDONLY);
    struct stat nul;
    if (null_fd < 0 || fstat(null_fd, &nul) != 0) FAIL("open /dev/null: %s", strerror(errno));
    for (int round = 0; round < 2; ++round) {
      int fds[256];
      int k = shim_fds_now(fds, 256);
      if (k == 0) FAIL("dup2-ours: no shim fd in /proc/self/fd after mapping a file (at least the SIGBUS memfd)");
      for (int i = 0; i < k; ++i) {
        char link[256];
        fd_link(fds[i], link, sizeof link);
        int sock = strncmp(link, "socket:", 7) == 0;
        errno = 0;
        int r = round == 0 ? dup2(null_fd, fds[i]) : dup3(null_fd, fds[i], O_CLOEXEC);
        struct stat st;
        if (r == fds[i]) {
          if (fstat(fds[i], &st) != 0 || st.st_rdev != nul.st_rdev || st.st_ino != nul.st_ino)
            FAIL("%s onto the shim's fd %d (%s) returned it, but it is not the program's /dev/null",
                 round ? "dup3" : "dup2", fds[i], link);
          ++moved;
          close(fds[i]);
        } else if (r == -1 && errno == EBUSY && sock) {
          ++refused;  /* a connection: curl keeps its number (README, DESIGN.md) */
        } else {
          FAIL("%s onto the shim's fd %d (%s): %d errno %d (%s), want the fd back", round ? "dup3" : "dup2",
               fds[i], link, r, errno, strerror(errno));
        }
      }
      shim_fds += k;
      if (round == 0 && memcmp(m, want, n / 2) != 0) FAIL("dup2-ours: the first half differs after round 1");
    }
    close(null_fd);
  } else {
    FAIL("unknown mode %s", mode);
  }
  if (memcmp(m, want, n) != 0) {
    size_t i = 0;
    while (i < n && m[i] == (unsigned char)want[i]) ++i;
    FAIL("%s: the mapping differs from the local copy at byte %zu (a zero page?)", mode, i);
  }
  munmap(m, n);
  snprintf(p, sizeof p, "%s/odd.bin", mount);
  size_t got_n;
  char* got = slurp(p, &got_n);
  if (!got || got_n != n2 || memcmp(got, want2, n2) != 0) FAIL("%s: a file opened afterwards reads wrong bytes", mode);
  unsigned char* m2;
  int fd2 = open(p, O_RDONLY);
  if (fd2 < 0 || (m2 = mmap(NULL, n2, PROT_READ, MAP_PRIVATE, fd2, 0)) == MAP_FAILED)
    FAIL("%s: mapping a file afterwards: %s", mode, strerror(errno));
  if (memcmp(m2, want2, n2) != 0) FAIL("%s: a mapping made afterwards reads wrong bytes", mode);
  printf("ok own_fds %s (%d shim fds found, %d moved, %d refused)\n", mode, shim_fds, moved, refused);
  return 0;
}
