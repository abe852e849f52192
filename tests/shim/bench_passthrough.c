// Benchmark (not a test): the cost of calls on non-model paths and fds, run once plain and once under
// LD_PRELOAD=libmodelfetch.so with a mount configured (scripts/bench-passthrough does both and prints the
// difference per call). Each loop is timed with CLOCK_MONOTONIC over many iterations.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char** argv) {
  const long n = argc > 1 ? atol(argv[1]) : 200000;
  char buf[64];
  int fd = open("/dev/zero", O_RDONLY);
  if (fd < 0) return 1;
  struct stat st;
  volatile long sink = 0;

  double t0 = now_ns();
  for (long i = 0; i < n; ++i) sink += pread(fd, buf, 1, 0);
  double t1 = now_ns();
  for (long i = 0; i < n; ++i) sink += fstat(fd, &st);
  double t2 = now_ns();
  for (long i = 0; i < n; ++i) sink += stat("/etc/hostname", &st);
  double t3 = now_ns();
  for (long i = 0; i < n; ++i) {
    int f = open("/dev/null", O_RDONLY);
    sink += close(f);
  }
  double t4 = now_ns();
  printf("{\"pread_ns\": %.1f, \"fstat_ns\": %.1f, \"stat_ns\": %.1f, \"open_close_ns\": %.1f}\n", (t1 - t0) / n,
         (t2 - t1) / n, (t3 - t2) / n, (t4 - t3) / n);
  return sink == -1;
}
