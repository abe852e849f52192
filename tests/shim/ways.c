/* The "ways to read a file" suite, C part (ways.py runs the Python and tool part): every test object under
 * MF_MOUNT_DIR is read through every C way a program can get at a file's bytes and compared with the same
 * file under MF_LOCAL_DIR. Each way must give the object's bytes; zero-filled, short or otherwise wrong
 * output, or an error, is a failure. The one exception is a raw syscall(SYS_read/SYS_pread64) on a virtual
 * fd, or an io_uring read, which no hook sees: it may fail with an error, but bytes it reports as read must
 * be the right ones.
 *
 * usage: shim_ways [METHOD...]   (default: every method; names as printed)
 * Prints one "FAIL method file: why" line per failure and a summary; exit 1 on any failure. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "slurp.h"

struct file {
  char rel[512];
  unsigned char* data;
  size_t n;
};

static const char *L, *M;
static struct file files[64];
static int nfiles, failures, checks;
static const char* method;  /* the method being run */
static const char* rel;     /* the file being read */
static char tmpdir[] = "/tmp/mf-ways-XXXXXX";

static void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stdout, "FAIL %s %s: ", method, rel);
  vfprintf(stdout, fmt, ap);
  fputc('\n', stdout);
  fflush(stdout);
  va_end(ap);
  ++failures;
}

/* Compares got[0..gotn) with want; on a difference reports what is wrong (size, first bad offset, and
 * whether the rest is zeros: the failure this suite exists to catch). */
static int same(const char* what, const unsigned char* got, size_t gotn, const unsigned char* want, size_t wantn) {
  size_t common = gotn < wantn ? gotn : wantn, i = 0;
  if (gotn == wantn && memcmp(got, want, gotn) == 0) return 1;
  while (i < common && got[i] == want[i]) ++i;
  size_t z = i;
  while (z < gotn && got[z] == 0) ++z;
  fail("%s: got %zu bytes, want %zu; first difference at %zu%s", what, gotn, wantn, i,
       i < gotn && z == gotn ? " (zeros from there to the end)" : "");
  return 0;
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

static int open_mounted(void) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", M, rel);
  int fd = open(p, O_RDONLY);
  if (fd < 0) fail("open: %s", strerror(errno));
  return fd;
}

/* A fresh output file outside the mount (for sendfile/copy_file_range). */
static int out_file(void) {
  char p[4096];
  snprintf(p, sizeof p, "%s/out", tmpdir);
  int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    perror(p);
    exit(2);
  }
  return fd;
}

static unsigned char* read_back(int fd, size_t* n) {
  struct stat st;
  fstat(fd, &st);
  unsigned char* b = malloc((size_t)st.st_size + 1);
  *n = 0;
  ssize_t r;
  while ((r = pread(fd, b + *n, (size_t)st.st_size - *n, (off_t)*n)) > 0) *n += (size_t)r;
  return b;
}

static void check_out(int out, const struct file* f, const char* what) {
  size_t n;
  unsigned char* b = read_back(out, &n);
  same(what, b, n, f->data, f->n);
  free(b);
  close(out);
}

static void m_read(const struct file* f) {
  int fd = open_mounted();
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) != 0 || (size_t)st.st_size != f->n)
    fail("fstat size %lld, want %zu", (long long)st.st_size, f->n);
  unsigned char* b = malloc(f->n + 70000);
  size_t got = 0;
  ssize_t r;
  while ((r = read(fd, b + got, 65537)) > 0) got += (size_t)r;  /* odd size: crosses pages and chunks */
  if (r < 0) fail("read at %zu: %s", got, strerror(errno));
  else same("read", b, got, f->data, f->n);
  free(b);
  close(fd);
}

static void m_pread(const struct file* f) {
  int fd = open_mounted();
  if (fd < 0) return;
  unsigned char* b = malloc(f->n + (1 << 20) + 8);
  size_t got = 0;
  ssize_t r;
  while ((r = pread(fd, b + got, (1 << 20) + 7, (off_t)got)) > 0) got += (size_t)r;
  if (r < 0) fail("pread at %zu: %s", got, strerror(errno));
  else same("pread", b, got, f->data, f->n);
  if (lseek(fd, 0, SEEK_CUR) != 0) fail("pread moved the file offset");
  /* reads that start just before a 1 MiB / 8 MiB edge and run past it, and one past the end */
  const size_t offs[] = {(1 << 20) - 3, (8 << 20) - 5, f->n ? f->n - 1 : 0, f->n + 10};
  for (int i = 0; i < 4; ++i) {
    unsigned char c[16];
    r = pread(fd, c, sizeof c, (off_t)offs[i]);
    size_t want = offs[i] >= f->n ? 0 : (f->n - offs[i] < 16 ? f->n - offs[i] : 16);
    if (r < 0) fail("pread(16) at %zu: %s", offs[i], strerror(errno));
    else if (offs[i] <= f->n) same("pread across an edge", c, (size_t)r, f->data + offs[i], want);
  }
  free(b);
  close(fd);
}

static void vec_read(const struct file* f, int kind) {
  /* kind 0 readv, 1 preadv, 2 preadv2 at an offset, 3 preadv2 at the file offset (-1) */
  static const char* names[] = {"readv", "preadv", "preadv2", "preadv2(-1)"};
  int fd = open_mounted();
  if (fd < 0) return;
  unsigned char* b = malloc(f->n + 80000);
  size_t got = 0;
  ssize_t r;
  for (;;) {
    struct iovec iov[3] = {{b + got, 1000}, {b + got + 1000, 70001}, {b + got + 71001, 4096}};
    switch (kind) {
      case 0: r = readv(fd, iov, 3); break;
      case 1: r = preadv(fd, iov, 3, (off_t)got); break;
      case 2: r = preadv2(fd, iov, 3, (off_t)got, 0); break;
      default: r = preadv2(fd, iov, 3, -1, 0); break;
    }
    if (r <= 0) break;
    got += (size_t)r;
  }
  if (r < 0) fail("%s at %zu: %s", names[kind], got, strerror(errno));
  else same(names[kind], b, got, f->data, f->n);
  free(b);
  close(fd);
}
static void m_readv(const struct file* f) { vec_read(f, 0); }
static void m_preadv(const struct file* f) { vec_read(f, 1); }
static void m_preadv2(const struct file* f) { vec_read(f, 2); }
static void m_preadv2_cur(const struct file* f) { vec_read(f, 3); }

static void map_check(const struct file* f, int prot, int flags, size_t off, const char* what) {
  int fd = open_mounted();
  if (fd < 0) return;
  size_t len = f->n - off;
  unsigned char* p = mmap(NULL, len, prot, flags, fd, (off_t)off);
  close(fd);  /* a mapping outlives its fd */
  if (p == MAP_FAILED) {
    fail("%s at offset %zu: %s", what, off, strerror(errno));
    return;
  }
  same(what, p, len, f->data + off, len);
  if (prot & PROT_WRITE) {
    /* private writes: visible in this mapping, never in the file or in another mapping of it */
    for (size_t i = 0; i < len; i += 4093) p[i] ^= 0x5a;
    int ok = 1;
    for (size_t i = 0; i < len && ok; ++i)
      ok = p[i] == (unsigned char)(i % 4093 == 0 ? f->data[off + i] ^ 0x5a : f->data[off + i]);
    if (!ok) fail("%s: the mapping does not hold its own writes", what);
    int fd2 = open_mounted();
    unsigned char* q = fd2 < 0 ? MAP_FAILED : mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd2, (off_t)off);
    if (q != MAP_FAILED) {
      same("a second mapping after private writes", q, len, f->data + off, len);
      munmap(q, len);
    }
    unsigned char* b = malloc(len);
    ssize_t r = fd2 < 0 ? -1 : pread(fd2, b, len, (off_t)off);
    if (r >= 0) same("pread after private writes", b, (size_t)r, f->data + off, len);
    free(b);
    if (fd2 >= 0) close(fd2);
  }
  munmap(p, len);
}

static void m_mmap(const struct file* f) {
  if (!f->n) return;
  map_check(f, PROT_READ, MAP_PRIVATE, 0, "mmap(PROT_READ, MAP_PRIVATE)");
  map_check(f, PROT_READ, MAP_SHARED, 0, "mmap(PROT_READ, MAP_SHARED)");
}

static void m_mmap_offset(const struct file* f) {
  const size_t offs[] = {4096, 1 << 20, (1 << 20) + 8192, 8 << 20};
  for (int i = 0; i < 4; ++i)
    if (offs[i] < f->n) map_check(f, PROT_READ, MAP_PRIVATE, offs[i], "mmap(PROT_READ, MAP_PRIVATE) at an offset");
}

static void m_mmap_rw(const struct file* f) {
  if (!f->n) return;
  map_check(f, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0, "mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE)");
  if (f->n > (1 << 20))
    map_check(f, PROT_READ | PROT_WRITE, MAP_PRIVATE, 1 << 20, "mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE) at 1 MiB");
}

/* The kernel reads a mapping's pages (write() from it into a file): they must be filled first. */
static void m_mmap_write_out(const struct file* f) {
  if (!f->n) return;
  int fd = open_mounted();
  if (fd < 0) return;
  unsigned char* p = mmap(NULL, f->n, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    fail("mmap: %s", strerror(errno));
    return;
  }
  int out = out_file();
  size_t put = 0;
  ssize_t w;
  while (put < f->n && (w = write(out, p + put, f->n - put)) > 0) put += (size_t)w;
  if (put < f->n) fail("write() from the mapping at %zu: %s", put, strerror(errno));
  check_out(out, f, "write() of an untouched mapping");
  munmap(p, f->n);
}

static void m_sendfile(const struct file* f) {
  for (int variant = 0; variant < 3; ++variant) {
    /* 0: sendfile with an offset pointer (the file offset must not move), 1: without (from and advancing
     * the file offset), 2: sendfile64 with an offset pointer */
    static const char* what[] = {"sendfile(&off)", "sendfile(NULL)", "sendfile64(&off)"};
    int fd = open_mounted();
    if (fd < 0) return;
    int out = out_file();
    off_t off = 0;
    off64_t off64 = 0;
    ssize_t r;
    for (;;) {
      if (variant == 0) r = sendfile(out, fd, &off, 1 << 20);
      else if (variant == 1) r = sendfile(out, fd, NULL, (1 << 20) + 3);
      else r = sendfile64(out, fd, &off64, 3 << 20);
      if (r <= 0) break;
    }
    if (r < 0) fail("%s: %s", what[variant], strerror(errno));
    check_out(out, f, what[variant]);
    off_t cur = lseek(fd, 0, SEEK_CUR);
    if (variant != 1 && cur != 0) fail("%s moved the file offset to %lld", what[variant], (long long)cur);
    if (variant == 1 && r == 0 && cur != (off_t)f->n)
      fail("sendfile(NULL) left the file offset at %lld, want %zu", (long long)cur, f->n);
    close(fd);
  }
}

/* sendfile into a socket (a server's use): chunks of at most the socket buffer, drained from the other end. */
static void m_sendfile_socket(const struct file* f) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) exit(2);
  int fd = open_mounted();
  if (fd < 0) return;
  unsigned char* b = malloc(f->n + 65536);
  size_t got = 0;
  off_t off = 0;
  ssize_t r;
  while ((r = sendfile(sv[0], fd, &off, 32768)) > 0) {
    size_t left = (size_t)r;
    while (left > 0) {
      ssize_t k = read(sv[1], b + got, left);
      if (k <= 0) exit(2);
      got += (size_t)k;
      left -= (size_t)k;
    }
  }
  if (r < 0) fail("sendfile to a socket at %zu: %s", got, strerror(errno));
  else same("sendfile to a socket", b, got, f->data, f->n);
  free(b);
  close(sv[0]);
  close(sv[1]);
  close(fd);
}

/* Into a file on disk and into a memfd. The mount is its own file system: EXDEV (the kernel's answer for
 * a copy between file systems that cannot do it, before anything is copied) is a clear error that programs
 * handle by falling back to read/write, so it is accepted; any bytes reported as copied must be right. A
 * memfd is where the kernel would copy a sparse memfd's holes (same superblock). */
static void m_copy_file_range(const struct file* f) {
  for (int variant = 0; variant < 4; ++variant) {
    static const char* what[] = {"copy_file_range(NULL) to a file", "copy_file_range(&off) to a file",
                                 "copy_file_range(NULL) to a memfd", "copy_file_range(&off) to a memfd"};
    int fd = open_mounted();
    if (fd < 0) return;
    int out = variant < 2 ? out_file() : memfd_create("mf-ways-out", 0);
    off64_t off = 0;
    ssize_t r;
    size_t copied = 0;
    while ((r = copy_file_range(fd, variant % 2 ? &off : NULL, out, NULL, (1 << 20) + 5, 0)) > 0) copied += (size_t)r;
    if (r < 0 && !(errno == EXDEV && copied == 0)) fail("%s: %s", what[variant], strerror(errno));
    if (r < 0) {  /* what was copied before the error must be right */
      size_t n;
      unsigned char* b = read_back(out, &n);
      if (n) same(what[variant], b, n, f->data, n);
      free(b);
      close(out);
    } else {
      check_out(out, f, what[variant]);
    }
    close(fd);
  }
}

static void m_splice(const struct file* f) {
  for (int variant = 0; variant < 2; ++variant) {
    static const char* what[] = {"splice(NULL) through a pipe", "splice(&off) through a pipe"};
    int fd = open_mounted();
    if (fd < 0) return;
    int pp[2];
    if (pipe(pp) != 0) exit(2);
    unsigned char* b = malloc(f->n + 65536);
    size_t got = 0;
    loff_t off = 0;
    ssize_t r;
    while ((r = splice(fd, variant ? &off : NULL, pp[1], NULL, 65536, 0)) > 0) {
      size_t left = (size_t)r;
      while (left > 0) {
        ssize_t k = read(pp[0], b + got, left);
        if (k <= 0) exit(2);
        got += (size_t)k;
        left -= (size_t)k;
      }
    }
    if (r < 0) fail("%s at %zu: %s", what[variant], got, strerror(errno));
    else same(what[variant], b, got, f->data, f->n);
    free(b);
    close(pp[0]);
    close(pp[1]);
    close(fd);
  }
}

static FILE* fopen_mounted(void) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", M, rel);
  FILE* s = fopen(p, "rb");
  if (!s) fail("fopen: %s", strerror(errno));
  return s;
}

static void m_fread(const struct file* f) {
  FILE* s = fopen_mounted();
  if (!s) return;
  unsigned char* b = malloc(f->n + 7777);
  size_t got = 0, r;
  while ((r = fread(b + got, 1, 7777, s)) > 0) got += r;
  if (ferror(s)) fail("fread: error at %zu", got);
  else same("fread", b, got, f->data, f->n);
  free(b);
  fclose(s);
}

static void m_fgets(const struct file* f) {
  FILE* s = fopen_mounted();
  if (!s) return;
  unsigned char* b = malloc(f->n + 1000);
  size_t got = 0;
  char line[1000];
  for (;;) {  /* binary data: how much fgets consumed is what ftell moved by */
    long before = ftell(s);
    if (!fgets(line, sizeof line, s)) break;
    long k = ftell(s) - before;
    memcpy(b + got, line, (size_t)k);
    got += (size_t)k;
  }
  if (ferror(s)) fail("fgets: error at %zu", got);
  else same("fgets", b, got, f->data, f->n);
  free(b);
  fclose(s);
}

static void m_getc(const struct file* f) {
  FILE* s = fopen_mounted();
  if (!s) return;
  unsigned char* b = malloc(f->n + 1);
  size_t got = 0;
  int c;
  while ((c = getc(s)) != EOF && got <= f->n) b[got++] = (unsigned char)c;
  if (ferror(s)) fail("getc: error at %zu", got);
  else same("getc", b, got, f->data, f->n);
  free(b);
  fclose(s);
}

static void m_fseek(const struct file* f) {
  FILE* s = fopen_mounted();
  if (!s) return;
  if (fseek(s, 0, SEEK_END) != 0 || ftell(s) != (long)f->n) fail("fseek(SEEK_END): ftell %ld", ftell(s));
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 40 && f->n; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t off = (size_t)(x % f->n), want = f->n - off < 5000 ? f->n - off : 5000;
    unsigned char c[5000];
    int rc = i % 2 ? fseek(s, (long)off - ftell(s), SEEK_CUR) : fseek(s, (long)off, SEEK_SET);
    if (rc != 0) {
      fail("fseek(%zu): %s", off, strerror(errno));
      break;
    }
    size_t r = fread(c, 1, 5000, s);
    if (!same("fread after fseek", c, r, f->data + off, want)) break;
  }
  fclose(s);
}

static void m_fdopen(const struct file* f) {
  int fd = open_mounted();
  if (fd < 0) return;
  FILE* s = fdopen(fd, "rb");
  if (!s) {
    fail("fdopen: %s", strerror(errno));
    close(fd);
    return;
  }
  unsigned char* b = malloc(f->n + 4096);
  size_t got = 0, r;
  while ((r = fread(b + got, 1, 4096, s)) > 0) got += r;
  same("fread on fdopen", b, got, f->data, f->n);
  free(b);
  fclose(s);
}

static void m_dup(const struct file* f) {
  int fd = open_mounted();
  if (fd < 0) return;
  int d1 = dup(fd), d2 = fcntl(fd, F_DUPFD, 100), d3 = dup2(fd, 200);
  close(fd);
  int fds[] = {d1, d2, d3};
  for (int i = 0; i < 3; ++i) {
    unsigned char* b = malloc(f->n + 1);
    ssize_t r = fds[i] < 0 ? -1 : pread(fds[i], b, f->n + 1, 0);
    if (r < 0) fail("pread on a copy (dup/F_DUPFD/dup2 %d): %s", i, strerror(errno));
    else same("pread on a dup'ed fd", b, (size_t)r, f->data, f->n);
    free(b);
    if (fds[i] >= 0) close(fds[i]);
  }
}

/* SEEK_DATA/SEEK_HOLE: cp and tar skip what a file reports as holes; a virtual file must not report its
 * data as a hole (a sparse memfd would: cp would then write zeros). An error is fine (they fall back). */
static void m_seek_data(const struct file* f) {
  if (!f->n) return;
  int fd = open_mounted();
  if (fd < 0) return;
  errno = 0;
  off_t d = lseek(fd, 0, SEEK_DATA);
  if (d != 0 && !(d < 0 && errno != ENXIO))
    fail("lseek(0, SEEK_DATA) = %lld (%s): the data reported as a hole", (long long)d, strerror(errno));
  errno = 0;
  off_t h = lseek(fd, 0, SEEK_HOLE);
  if (h != (off_t)f->n && !(h < 0 && errno != ENXIO))
    fail("lseek(0, SEEK_HOLE) = %lld, want %zu: the data reported as a hole", (long long)h, f->n);
  off_t e = lseek(fd, 0, SEEK_END);
  if (e != (off_t)f->n) fail("lseek(0, SEEK_END) = %lld, want %zu", (long long)e, f->n);
  unsigned char c[100];
  off_t at = f->n > 100 ? (off_t)f->n - 100 : 0;
  if (lseek(fd, at, SEEK_SET) != at) fail("lseek(SEEK_SET)");
  ssize_t r = read(fd, c, 100);
  if (r < 0) fail("read after lseek: %s", strerror(errno));
  else same("read after lseek", c, (size_t)r, f->data + at, f->n - (size_t)at);
  close(fd);
}

/* No hook sees a raw syscall: it must give the right bytes or fail, never report zeros as read. */
static void m_raw_syscall(const struct file* f) {
  for (int variant = 0; variant < 2; ++variant) {
    const char* what = variant ? "syscall(SYS_pread64)" : "syscall(SYS_read)";
    int fd = open_mounted();
    if (fd < 0) return;
    unsigned char* b = malloc(f->n + 65536);
    size_t got = 0;
    long r;
    while ((r = variant ? syscall(SYS_pread64, fd, b + got, 65536, (long)got) : syscall(SYS_read, fd, b + got, 65536)) > 0)
      got += (size_t)r;
    if (r < 0) {
      /* an error is an acceptable answer; what was reported read before it must still be right */
      if (got) same(what, b, got, f->data, got);
    } else {
      same(what, b, got, f->data, f->n);
    }
    free(b);
    close(fd);
  }
}

/* io_uring reads (IORING_OP_READ, raw syscalls, no liburing): no hook sees them either, so the same rule
 * as for raw syscalls: the right bytes, or an error; never zeros reported as read. */
static void m_io_uring(const struct file* f) {
  struct io_uring_params prm;
  memset(&prm, 0, sizeof prm);
  int ring = (int)syscall(SYS_io_uring_setup, 4, &prm);
  if (ring < 0) {
    static int said;
    if (!said++) printf("io_uring: not available here (%s): not checked\n", strerror(errno));
    return;
  }
  size_t sqsz = prm.sq_off.array + prm.sq_entries * sizeof(unsigned);
  size_t cqsz = prm.cq_off.cqes + prm.cq_entries * sizeof(struct io_uring_cqe);
  int single = (prm.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single && cqsz > sqsz) sqsz = cqsz;
  unsigned char* sq = mmap(NULL, sqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
  unsigned char* cq = single ? sq : mmap(NULL, cqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
  struct io_uring_sqe* sqes = mmap(NULL, prm.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
  if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
    fail("io_uring: mapping the rings: %s", strerror(errno));
    close(ring);
    return;
  }
  unsigned *sq_tail = (unsigned*)(sq + prm.sq_off.tail), *sq_mask = (unsigned*)(sq + prm.sq_off.ring_mask);
  unsigned* sq_array = (unsigned*)(sq + prm.sq_off.array);
  unsigned *cq_head = (unsigned*)(cq + prm.cq_off.head), *cq_mask = (unsigned*)(cq + prm.cq_off.ring_mask);
  struct io_uring_cqe* cqes = (struct io_uring_cqe*)(cq + prm.cq_off.cqes);
  int fd = open_mounted();
  unsigned char* b = malloc(f->n + 1);
  size_t got = 0;
  int res = 1;
  while (fd >= 0 && res > 0) {
    unsigned tail = *sq_tail, idx = tail & *sq_mask;
    struct io_uring_sqe* e = &sqes[idx];
    memset(e, 0, sizeof *e);
    e->opcode = IORING_OP_READ;
    e->fd = fd;
    e->addr = (uint64_t)(uintptr_t)(b + got);
    e->len = (unsigned)(f->n + 1 - got < (1u << 20) ? f->n + 1 - got : (1u << 20));
    e->off = got;
    sq_array[idx] = idx;
    __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
    if (syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
      fail("io_uring_enter: %s", strerror(errno));
      break;
    }
    unsigned head = __atomic_load_n(cq_head, __ATOMIC_ACQUIRE);
    res = cqes[head & *cq_mask].res;
    __atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
    if (res > 0) got += (size_t)res;
  }
  if (fd >= 0 && res < 0) {  /* an error is an acceptable answer; what was reported read must be right */
    if (got) same("io_uring read", b, got, f->data, got);
  } else if (fd >= 0) {
    same("io_uring read", b, got, f->data, f->n);
  }
  free(b);
  if (fd >= 0) close(fd);
  munmap(sqes, prm.sq_entries * sizeof(struct io_uring_sqe));
  if (!single) munmap(cq, cqsz);
  munmap(sq, sqsz);
  close(ring);
}

static void read_whole_fd(int fd, const struct file* f, const char* what) {
  unsigned char* b = malloc(f->n + 65536);
  size_t got = 0;
  ssize_t r;
  while ((r = read(fd, b + got, 65536)) > 0) got += (size_t)r;
  if (r < 0) fail("%s: read: %s", what, strerror(errno));
  else same(what, b, got, f->data, f->n);
  free(b);
}

/* Paths that reach a mounted file other than by its absolute name. */
static void m_proc_fd(const struct file* f) {
  int fd = open_mounted();
  if (fd < 0) return;
  char p[64];
  snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
  int fd2 = open(p, O_RDONLY);
  if (fd2 < 0) fail("open(/proc/self/fd/N): %s", strerror(errno));
  else read_whole_fd(fd2, f, "reopen through /proc/self/fd/N");
  if (fd2 >= 0) close(fd2);
  close(fd);
}

static void m_openat(const struct file* f) {
  int dfd = open(M, O_RDONLY | O_DIRECTORY);
  if (dfd < 0) {
    fail("open(mount, O_DIRECTORY): %s", strerror(errno));
    return;
  }
  int fd = openat(dfd, rel, O_RDONLY);
  if (fd < 0) fail("openat(mount dir fd, relative name): %s", strerror(errno));
  else read_whole_fd(fd, f, "openat(mount dir fd)");
  if (fd >= 0) close(fd);
  close(dfd);
}

static void m_chdir(const struct file* f) {
  char old[4096];
  if (!getcwd(old, sizeof old) || chdir(M) != 0) {
    fail("chdir into the mount: %s", strerror(errno));
    return;
  }
  int fd = open(rel, O_RDONLY);
  if (fd < 0) fail("open(relative name) after chdir into the mount: %s", strerror(errno));
  else read_whole_fd(fd, f, "relative open after chdir");
  if (fd >= 0) close(fd);
  if (chdir(old) != 0) exit(2);
}

static const struct {
  const char* name;
  void (*run)(const struct file*);
} methods[] = {
    {"read", m_read}, {"pread", m_pread}, {"readv", m_readv}, {"preadv", m_preadv}, {"preadv2", m_preadv2},
    {"preadv2-cur", m_preadv2_cur}, {"mmap", m_mmap}, {"mmap-offset", m_mmap_offset}, {"mmap-rw-private", m_mmap_rw},
    {"mmap-write-out", m_mmap_write_out}, {"sendfile", m_sendfile}, {"sendfile-socket", m_sendfile_socket}, {"copy_file_range", m_copy_file_range},
    {"splice", m_splice}, {"fread", m_fread}, {"fgets", m_fgets}, {"getc", m_getc}, {"fseek", m_fseek},
    {"fdopen", m_fdopen}, {"dup", m_dup}, {"lseek", m_seek_data}, {"raw-syscall", m_raw_syscall}, {"io_uring", m_io_uring},
    {"proc-self-fd", m_proc_fd}, {"openat-dirfd", m_openat}, {"chdir-relative", m_chdir},
};

static void on_alarm(int sig) {
  (void)sig;
  char m[600];
  int n = snprintf(m, sizeof m, "FAIL %s %s: no answer within the watchdog's time (hung)\n", method, rel);
  if (write(1, m, (size_t)n) < 0) _exit(3);
  _exit(3);
}

int main(int argc, char** argv) {
  signal(SIGALRM, on_alarm);
  alarm(100);
  L = getenv("MF_LOCAL_DIR");
  M = getenv("MF_MOUNT_DIR");
  if (!L || !M) {
    fprintf(stderr, "MF_LOCAL_DIR and MF_MOUNT_DIR must be set (run through harness.py)\n");
    return 2;
  }
  if (!mkdtemp(tmpdir)) return perror("mkdtemp"), 2;
  nftw(L, load_local, 16, FTW_PHYS);
  if (nfiles < 5) return fprintf(stderr, "only %d fixture files under %s\n", nfiles, L), 2;
  int nmethods = (int)(sizeof methods / sizeof methods[0]), ran = 0;
  for (int m = 0; m < nmethods; ++m) {
    int wanted = argc < 2;
    for (int a = 1; a < argc; ++a) wanted |= !strcmp(argv[a], methods[m].name);
    if (!wanted) continue;
    ++ran;
    int before = failures;
    method = methods[m].name;
    for (int i = 0; i < nfiles; ++i) {
      rel = files[i].rel;
      ++checks;
      methods[m].run(&files[i]);
    }
    printf("%-16s %s\n", method, failures == before ? "ok" : "FAILED");
  }
  char p[4096];
  snprintf(p, sizeof p, "%s/out", tmpdir);
  unlink(p);
  rmdir(tmpdir);
  if (!ran) return fprintf(stderr, "no such method\n"), 2;
  printf("ways (C): %d methods x %d files, %d failures\n", ran, nfiles, failures);
  return failures ? 1 : 0;
}
