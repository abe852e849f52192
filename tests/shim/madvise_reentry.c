/* MADV_DONTNEED on an eager mapping whose chunks have left the cache (run through harness.py with
 * MODELFETCH_UFFD=off and a cache of two 64 KiB chunks): the manager copies the object's bytes back under its
 * lock, and the miss reads the store through our hooks. Those must pass through (the madvise hook is our own
 * work) instead of taking the manager's lock again: without the guard this self-deadlocks (SIGALRM here).
 * Then every byte of the mapping is compared with the local copy. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "slurp.h"

#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

int main(void) {
  const char* local = getenv("MF_LOCAL_DIR");
  const char* mount = getenv("MF_MOUNT_DIR");
  if (!local || !mount) FAIL("MF_LOCAL_DIR and MF_MOUNT_DIR must be set");
  char p[4096];
  snprintf(p, sizeof p, "%s/chunks.bin", local);
  size_t n;
  char* want = slurp(p, &n);
  if (!want) FAIL("%s: %s", p, strerror(errno));
  snprintf(p, sizeof p, "%s/chunks.bin", mount);
  int fd = open(p, O_RDONLY);
  if (fd < 0) FAIL("open %s: %s", p, strerror(errno));
  alarm(60); /* a deadlock ends as SIGALRM */
  unsigned char* m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (m == MAP_FAILED) FAIL("mmap: %s", strerror(errno));
  if (memcmp(m, want, n) != 0) FAIL("wrong bytes in the mapping");
  long page = sysconf(_SC_PAGESIZE);
  int rounds = 0;
  for (size_t off = 0; off + (size_t)page <= n; off += 256 * 1024, ++rounds) {
    m[off] ^= 0xff; /* a private write, undone by the drop */
    if (madvise(m + off, (size_t)page, MADV_DONTNEED) != 0) FAIL("madvise at %zu: %s", off, strerror(errno));
    if (memcmp(m + off, want + off, (size_t)page) != 0) FAIL("wrong bytes after MADV_DONTNEED at %zu", off);
  }
  if (memcmp(m, want, n) != 0) FAIL("wrong bytes in the mapping at the end");
  munmap(m, n);
  close(fd);
  printf("ok madvise_reentry: %d drops refilled\n", rounds);
  return 0;
}
