// Page-placement costs on this machine (a benchmark, not a test): why chunk buffers are huge pages and why
// read-write mappings get the chunk buffers' huge pages moved in (UFFDIO_MOVE) rather than copied, while a
// staging page per move does not pay (docs/PERFORMANCE.md, "Page costs").
//   buffers: write 512 MB into fresh 8 MiB buffers (mmap, memcpy in 512 KiB pieces, munmap), as the receive
//            thread does, with 4 KiB pages, MAP_POPULATE, MADV_HUGEPAGE, MADV_HUGEPAGE + MADV_POPULATE_WRITE;
//   placement: place 512 MB into a userfaultfd-registered region in 2 MiB blocks, with UFFDIO_COPY and with
//            UFFDIO_MOVE of a huge staging page, then read the region once (the loader's first touch); and,
//            UFFDIO_COPY again with another thread reading one byte per page first (the filler's pre-touch;
//            "place" then includes that thread's time); for comparison, the same bytes written into a memfd (page cache) with pwrite and read once through
//            a MAP_PRIVATE mapping of it;
//   chunked: per 8 MiB chunk a fresh huge-page buffer written like the receive thread's, then placed by
//            UFFDIO_COPY + pre-touch or by UFFDIO_MOVE of its huge pages (what the shim does), then read.
// Usage: page_costs [MiB]   (default 512)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
struct move_args { uint64_t dst, src, len, mode; int64_t move; };  // struct uffdio_move (Linux 6.8)
#define IOCTL_MOVE _IOWR(UFFDIO, 0x05, struct move_args)
#define FEATURE_MOVE (1ull << 16)
#define HUGE (2ul << 20)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static char* map_aligned(size_t n) {  // HUGE-aligned anonymous memory (the slack is left mapped: a benchmark)
  char* raw = mmap(NULL, n + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) { perror("mmap"); exit(1); }
  return (char*)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
}

static void buffers(size_t total) {
  const size_t chunk = 8ul << 20, piece = 512ul << 10;
  char* src = malloc(piece);
  memset(src, 1, piece);
  const char* names[] = {"4 KiB pages", "MAP_POPULATE", "MADV_HUGEPAGE", "MADV_HUGEPAGE + MADV_POPULATE_WRITE"};
  for (int mode = 0; mode < 4; ++mode) {
    double t0 = now();
    for (size_t c = 0; c < total / chunk; ++c) {
      char* raw = mmap(NULL, chunk + HUGE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | (mode == 1 ? MAP_POPULATE : 0), -1, 0);
      char* d = (char*)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
      if (mode >= 2) madvise(d, chunk, MADV_HUGEPAGE);
      if (mode == 3) madvise(d, chunk, MADV_POPULATE_WRITE);
      for (size_t o = 0; o < chunk; o += piece) memcpy(d + o, src, piece);
      munmap(raw, chunk + HUGE);
    }
    printf("buffers   %-38s %.3f s\n", names[mode], now() - t0);
  }
  free(src);
}

static int open_uffd(uint64_t features) {
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
  if (fd < 0) return -1;
  struct uffdio_api api = {.api = UFFD_API, .features = features};
  if (ioctl(fd, UFFDIO_API, &api) != 0) { close(fd); return -1; }
  return fd;
}

// The loader's part: copy the whole region out in 1 MiB pieces; returns a checksum so nothing is elided.
static long first_read(const char* base, size_t total) {
  char* out = malloc(1 << 20);
  long sum = 0;
  for (size_t o = 0; o < total; o += 1 << 20) {
    memcpy(out, base + o, 1 << 20);
    __asm__ volatile("" ::: "memory");
    sum += out[o % 4096];
  }
  free(out);
  return sum;
}

struct touch_args { const char* base; size_t len; };
static void* touch_pages(void* p) {  // one byte per page, from another thread (the filler's pre-touch)
  const struct touch_args* t = p;
  volatile char sink = 0;
  for (size_t o = 0; o < t->len; o += 4096) sink += ((const volatile char*)t->base)[o];
  (void)sink;
  return NULL;
}

// move: UFFDIO_MOVE instead of UFFDIO_COPY; touch: another thread reads one byte per page before the read.
static void placement(size_t total, int move, int touch) {
  int u = open_uffd(move ? FEATURE_MOVE : 0);
  if (u < 0) { printf("placement %-38s unavailable (%s)\n", move ? "UFFDIO_MOVE" : "UFFDIO_COPY", strerror(errno)); return; }
  char* dst = map_aligned(total);
  char* staging = map_aligned(HUGE);
  char* src = map_aligned(HUGE);
  madvise(staging, HUGE, MADV_HUGEPAGE);
  madvise(src, HUGE, MADV_HUGEPAGE);
  memset(src, 7, HUGE);
  struct uffdio_register reg = {.range = {(uintptr_t)dst, total}, .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(u, UFFDIO_REGISTER, &reg) != 0) { perror("UFFDIO_REGISTER"); exit(1); }
  double t0 = now();
  for (size_t o = 0; o < total; o += HUGE) {
    if (move) {
      memcpy(staging, src, HUGE);
      struct move_args m = {(uintptr_t)dst + o, (uintptr_t)staging, HUGE, 0, 0};
      if (ioctl(u, IOCTL_MOVE, &m) != 0) { perror("UFFDIO_MOVE"); exit(1); }
    } else {
      struct uffdio_copy c = {(uintptr_t)dst + o, (uintptr_t)src, HUGE, 0, 0};
      if (ioctl(u, UFFDIO_COPY, &c) != 0) { perror("UFFDIO_COPY"); exit(1); }
    }
  }
  if (touch) {
    pthread_t th;
    struct touch_args args = {dst, total};
    pthread_create(&th, NULL, touch_pages, &args);
    pthread_join(th, NULL);
  }
  double t1 = now();
  long sum = first_read(dst, total);
  double t2 = now();
  printf("placement %-38s place %.3f s, first read %.3f s, total %.3f s (check %ld)\n",
         move ? "UFFDIO_MOVE of huge staging pages" : touch ? "UFFDIO_COPY, other thread touches" : "UFFDIO_COPY",
         t1 - t0, t2 - t1, t2 - t0, sum);
  close(u);
}

static void memfd_placement(size_t total) {
  int fd = memfd_create("page_costs", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, (off_t)total) != 0) { perror("memfd"); exit(1); }
  char* src = map_aligned(HUGE);
  memset(src, 7, HUGE);
  double t0 = now();
  for (size_t o = 0; o < total; o += HUGE)
    if (pwrite(fd, src, HUGE, (off_t)o) != (ssize_t)HUGE) { perror("pwrite"); exit(1); }
  double t1 = now();
  char* m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (m == MAP_FAILED) { perror("mmap"); exit(1); }
  long sum = first_read(m, total);
  double t2 = now();
  printf("placement %-38s place %.3f s, first read %.3f s, total %.3f s (check %ld)\n",
         "memfd pwrite + MAP_PRIVATE read", t1 - t0, t2 - t1, t2 - t0, sum);
  munmap(m, total);
  close(fd);
}

// What the shim does per 8 MiB chunk: a fresh huge-page buffer (MADV_HUGEPAGE + MADV_POPULATE_WRITE) the
// bytes are written into, then placed into the registered region either by UFFDIO_COPY + one read per page
// (the copy path with the filler's pre-touch; the buffer stays cached) or by UFFDIO_MOVE of the buffer's huge
// pages straight into the region (the move path; the emptied buffer is unmapped); then the loader's first read.
static void chunked(size_t total, int move) {
  const size_t chunk = 8ul << 20, piece = 512ul << 10;
  int u = open_uffd(move ? FEATURE_MOVE : 0);
  if (u < 0) { printf("chunked   %-38s unavailable (%s)\n", move ? "UFFDIO_MOVE" : "UFFDIO_COPY", strerror(errno)); return; }
  char* dst = map_aligned(total);
  struct uffdio_register reg = {.range = {(uintptr_t)dst, total}, .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(u, UFFDIO_REGISTER, &reg) != 0) { perror("UFFDIO_REGISTER"); exit(1); }
  char* src = malloc(piece);
  memset(src, 3, piece);
  double t0 = now(), fill = 0, place = 0;
  for (size_t o = 0; o < total; o += chunk) {
    double a = now();
    char* raw = mmap(NULL, chunk + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) { perror("mmap"); exit(1); }
    char* d = (char*)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    madvise(d, chunk, MADV_HUGEPAGE);
    madvise(d, chunk, MADV_POPULATE_WRITE);
    for (size_t q = 0; q < chunk; q += piece) memcpy(d + q, src, piece);
    double b = now();
    fill += b - a;
    if (move) {
      struct move_args m = {(uintptr_t)dst + o, (uintptr_t)d, chunk, 0, 0};
      if (ioctl(u, IOCTL_MOVE, &m) != 0) { perror("UFFDIO_MOVE"); exit(1); }
      munmap(raw, chunk + HUGE);
    } else {
      struct uffdio_copy c = {(uintptr_t)dst + o, (uintptr_t)d, chunk, 0, 0};
      if (ioctl(u, UFFDIO_COPY, &c) != 0) { perror("UFFDIO_COPY"); exit(1); }
      volatile char sink = 0;
      for (size_t q = 0; q < chunk; q += 4096) sink += ((volatile char*)dst)[o + q];
      (void)sink;
    }
    place += now() - b;
  }
  double t1 = now();
  long sum = first_read(dst, total);
  double t2 = now();
  printf("chunked   %-38s buffers+write %.3f s, place %.3f s, first read %.3f s, total %.3f s (check %ld)\n",
         move ? "UFFDIO_MOVE out of the chunk buffer" : "UFFDIO_COPY + pre-touch", fill, place, t2 - t1, t2 - t0, sum);
  free(src);
  close(u);
}

int main(int argc, char** argv) {
  size_t total = (argc > 1 ? strtoul(argv[1], NULL, 10) : 512) << 20;
  total = total / (8ul << 20) * (8ul << 20);
  if (total == 0) total = 8ul << 20;
  buffers(total);
  placement(total, 0, 0);
  placement(total, 0, 1);
  placement(total, 1, 0);
  memfd_placement(total);
  chunked(total, 0);
  chunked(total, 1);
  return 0;
}
