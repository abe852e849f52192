/* The byte-moving calls on a virtual fd, from C: libc's sendfile (with and without an offset pointer),
 * copy_file_range (with and without offsets), splice through a pipe give the object's bytes (compared with
 * MF_LOCAL_DIR); the calls the shim cannot intercept (raw syscall(SYS_read/pread64/readv/sendfile/splice/
 * copy_file_range/mmap), io_uring reads, tee, vmsplice) fail with EBADF instead of returning the memfd's
 * zeros; lseek, fcntl(F_GETFL/F_SETFL/locks), flock, posix_fadvise, readahead, fsync answer as on a
 * read-only regular file. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "slurp.h"

#define CHECK(c, ...)                                 \
  do {                                                \
    if (!(c)) {                                       \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                   \
      fputc('\n', stderr);                            \
      exit(1);                                        \
    }                                                 \
  } while (0)

static const char* L;
static const char* M;
static char tmpdir[] = "/tmp/mf-bytes-XXXXXX";

static char* path_in(const char* dir, const char* name) {
  static char p[2][4096];
  static int k;
  k ^= 1;
  snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
  return p[k];
}

static void same_file(const char* out, const char* name, const char* how) {
  size_t nl = 0, no = 0;
  char* a = slurp(path_in(L, name), &nl);
  char* b = slurp(out, &no);
  CHECK(a && b, "%s %s: cannot read back", how, name);
  CHECK(nl == no, "%s %s: %zu bytes, want %zu", how, name, no, nl);
  CHECK(memcmp(a, b, nl) == 0, "%s %s: bytes differ", how, name);
  free(a);
  free(b);
}

static int fresh_out(void) {
  int fd = open(path_in(tmpdir, "out"), O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0, "create out: %s", strerror(errno));
  return fd;
}

static void copies(const char* name) {
  const char* out = path_in(tmpdir, "out");
  int in = open(path_in(M, name), O_RDONLY);
  CHECK(in >= 0, "open %s: %s", name, strerror(errno));
  /* sendfile with an offset pointer, an odd count: the fd offset stays */
  int o = fresh_out();
  off_t off = 0;
  ssize_t n;
  while ((n = sendfile(o, in, &off, 100003)) > 0) {}
  CHECK(n == 0, "sendfile(&off) %s: %s", name, strerror(errno));
  CHECK(lseek(in, 0, SEEK_CUR) == 0, "sendfile(&off) moved the fd offset");
  close(o);
  same_file(out, name, "sendfile(&off)");
  /* sendfile at the fd offset */
  o = fresh_out();
  while ((n = sendfile(o, in, NULL, 1 << 20)) > 0) {}
  CHECK(n == 0, "sendfile(NULL) %s: %s", name, strerror(errno));
  struct stat st;
  CHECK(fstat(in, &st) == 0, "fstat");
  CHECK(lseek(in, 0, SEEK_CUR) == st.st_size, "sendfile(NULL) left the offset at %lld",
        (long long)lseek(in, 0, SEEK_CUR));
  close(o);
  same_file(out, name, "sendfile(NULL)");
  /* copy_file_range at the fd offsets, then with offsets (written back to front in two halves) */
  CHECK(lseek(in, 0, SEEK_SET) == 0, "lseek");
  o = fresh_out();
  while ((n = copy_file_range(in, NULL, o, NULL, 65536, 0)) > 0) {}
  CHECK(n == 0, "copy_file_range %s: %s", name, strerror(errno));
  close(o);
  same_file(out, name, "copy_file_range(NULL)");
  o = fresh_out();
  loff_t half = st.st_size / 2, ia = half, oa = half, ib = 0, ob = 0;
  while ((n = copy_file_range(in, &ia, o, &oa, 1 << 30, 0)) > 0) {}
  CHECK(n == 0 && ia == st.st_size && oa == st.st_size, "copy_file_range(&off) tail");
  while (ib < half && (n = copy_file_range(in, &ib, o, &ob, (size_t)(half - ib), 0)) > 0) {}
  CHECK(ib == half && ob == half, "copy_file_range(&off) head");
  close(o);
  same_file(out, name, "copy_file_range(&off)");
  /* splice through a pipe, one thread: never more than the pipe holds */
  int p[2];
  CHECK(pipe(p) == 0, "pipe");
  o = fresh_out();
  loff_t soff = 0;
  char* buf = malloc(1 << 20);
  while ((n = splice(in, &soff, p[1], NULL, 1 << 20, 0)) > 0) {
    ssize_t left = n;
    while (left > 0) {
      ssize_t r = read(p[0], buf, (size_t)left);
      CHECK(r > 0, "read pipe");
      CHECK(write(o, buf, (size_t)r) == r, "write out");
      left -= r;
    }
  }
  CHECK(n == 0, "splice %s: %s", name, strerror(errno));
  free(buf);
  close(o);
  close(p[0]);
  close(p[1]);
  same_file(out, name, "splice");
  close(in);
}

/* An io_uring IORING_OP_READ of fd; returns the completion's res, or 1 when io_uring is unavailable. */
static int uring_read(int fd, void* buf, unsigned len) {
  struct io_uring_params prm;
  memset(&prm, 0, sizeof prm);
  int ring = (int)syscall(SYS_io_uring_setup, 4, &prm);
  if (ring < 0) {
    fprintf(stderr, "io_uring unavailable here (%s): that part is not run\n", strerror(errno));
    return 1;
  }
  size_t sq_len = prm.sq_off.array + prm.sq_entries * sizeof(unsigned);
  size_t cq_len = prm.cq_off.cqes + prm.cq_entries * sizeof(struct io_uring_cqe);
  char* sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
  char* cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
  struct io_uring_sqe* sqes = mmap(NULL, prm.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
  CHECK(sq != MAP_FAILED && cq != MAP_FAILED && sqes != MAP_FAILED, "io_uring mmap");
  unsigned tail = *(unsigned*)(sq + prm.sq_off.tail);
  unsigned idx = tail & *(unsigned*)(sq + prm.sq_off.ring_mask);
  memset(&sqes[idx], 0, sizeof sqes[idx]);
  sqes[idx].opcode = IORING_OP_READ;
  sqes[idx].fd = fd;
  sqes[idx].addr = (unsigned long)buf;
  sqes[idx].len = len;
  sqes[idx].off = 0;
  ((unsigned*)(sq + prm.sq_off.array))[idx] = idx;
  __atomic_store_n((unsigned*)(sq + prm.sq_off.tail), tail + 1, __ATOMIC_RELEASE);
  int r = (int)syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
  CHECK(r == 1, "io_uring_enter: %d %s", r, strerror(errno));
  unsigned head = __atomic_load_n((unsigned*)(cq + prm.cq_off.head), __ATOMIC_ACQUIRE);
  struct io_uring_cqe* cqe =
      (struct io_uring_cqe*)(cq + prm.cq_off.cqes) + (head & *(unsigned*)(cq + prm.cq_off.ring_mask));
  int res = cqe->res;
  close(ring);
  return res;
}

static void refused(void) {
  int in = open(path_in(M, "chunks.bin"), O_RDONLY);
  CHECK(in >= 0, "open chunks.bin");
  char buf[4096];
  memset(buf, 0x5a, sizeof buf);
  int devnull = open("/dev/null", O_WRONLY);
  int p[2];
  CHECK(pipe(p) == 0, "pipe");
  struct iovec iov = {buf, sizeof buf};
#define REFUSED(call)                                                                          \
  do {                                                                                         \
    errno = 0;                                                                                 \
    long r_ = (long)(call);                                                                    \
    CHECK(r_ == -1 && errno == EBADF, "%s on a virtual fd: %ld (%s), want -1 EBADF", #call, r_, \
          strerror(errno));                                                                    \
  } while (0)
  REFUSED(syscall(SYS_read, in, buf, sizeof buf));
  REFUSED(syscall(SYS_pread64, in, buf, sizeof buf, 0));
  REFUSED(syscall(SYS_readv, in, &iov, 1));
  REFUSED(syscall(SYS_preadv2, in, &iov, 1, 0, 0, 0));
  REFUSED(syscall(SYS_sendfile, devnull, in, NULL, sizeof buf));
  REFUSED(syscall(SYS_splice, in, NULL, p[1], NULL, sizeof buf, 0));
  REFUSED(syscall(SYS_copy_file_range, in, NULL, devnull, NULL, sizeof buf, 0));
  REFUSED(syscall(SYS_lseek, in, 0, SEEK_CUR));
  CHECK((void*)syscall(SYS_mmap, NULL, 4096, PROT_READ, MAP_PRIVATE, in, 0) == MAP_FAILED && errno == EBADF,
        "raw mmap of a virtual fd");
  /* tee and vmsplice want pipes: the kernel refuses a virtual fd */
  errno = 0;
  CHECK(tee(in, p[1], 4096, 0) == -1 && (errno == EBADF || errno == EINVAL), "tee from a virtual fd");
  errno = 0;
  CHECK(vmsplice(in, &iov, 1, 0) == -1 && errno == EBADF, "vmsplice to a virtual fd");
  /* a virtual fd as destination */
  int real_in = open(path_in(L, "chunks.bin"), O_RDONLY);
  REFUSED(sendfile(in, real_in, NULL, 10));
  REFUSED(copy_file_range(real_in, NULL, in, NULL, 10, 0));
  int in2 = open(path_in(M, "odd.bin"), O_RDONLY);
  REFUSED(sendfile(in2, in, NULL, 10));
  REFUSED(copy_file_range(in, NULL, in2, NULL, 10, 0));
  errno = 0;
  CHECK(splice(in, NULL, devnull, NULL, 10, 0) == -1 && errno == EINVAL, "splice to a non-pipe: EINVAL");
  close(in2);
  close(real_in);
  /* Reopening the inode behind the shim's back (a raw open of /proc/self/fd/N, as another process would):
   * EACCES (mode 0) unless we bypass permissions (root); never silently for an unprivileged process. */
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", in);
  errno = 0;
  long ro = syscall(SYS_openat, AT_FDCWD, link, O_RDONLY);
  if (geteuid() != 0) {
    CHECK(ro == -1 && errno == EACCES, "raw reopen of %s: %ld (%s), want EACCES", link, ro, strerror(errno));
  } else {
    fprintf(stderr, "root: a raw reopen of a virtual fd's inode is not refused (CAP_DAC_OVERRIDE)\n");
    if (ro >= 0) close((int)ro);
  }
  int res = uring_read(in, buf, sizeof buf);
  CHECK(res == 1 || res == -EBADF, "io_uring read of a virtual fd: res %d, want -EBADF", res);
  for (size_t i = 0; i < sizeof buf; ++i) CHECK(buf[i] == 0x5a, "something wrote the buffer");
  close(p[0]);
  close(p[1]);
  close(devnull);
  close(in);
}

static void fd_calls(void) {
  int in = open(path_in(M, "chunks.bin"), O_RDONLY | O_CLOEXEC);
  struct stat st;
  CHECK(fstat(in, &st) == 0, "fstat");
  CHECK(lseek(in, 0, SEEK_END) == st.st_size, "SEEK_END");
  CHECK(lseek(in, 10, SEEK_DATA) == 10, "SEEK_DATA");
  CHECK(lseek(in, 10, SEEK_HOLE) == st.st_size, "SEEK_HOLE");
  errno = 0;
  CHECK(lseek(in, st.st_size, SEEK_DATA) == -1 && errno == ENXIO, "SEEK_DATA at the end");
  errno = 0;
  CHECK(lseek(in, -1, SEEK_SET) == -1 && errno == EINVAL, "negative lseek");
  CHECK(lseek(in, 5, SEEK_SET) == 5 && lseek(in, 3, SEEK_CUR) == 8, "SEEK_SET/CUR");
  int d = dup(in);
  CHECK(lseek(d, 0, SEEK_CUR) == 8, "a dup shares the offset");
  char a[16], b[16];
  CHECK(read(d, a, 16) == 16 && lseek(in, 0, SEEK_CUR) == 24, "read on the dup moves the shared offset");
  CHECK(pread(in, b, 16, 8) == 16 && memcmp(a, b, 16) == 0, "pread");
  close(d);
  CHECK(fcntl(in, F_GETFL) == (O_RDONLY | O_LARGEFILE), "F_GETFL %#x", fcntl(in, F_GETFL));
  CHECK(fcntl(in, F_SETFL, O_NONBLOCK) == 0, "F_SETFL");
  CHECK(fcntl(in, F_GETFL) == (O_RDONLY | O_LARGEFILE | O_NONBLOCK), "F_GETFL after F_SETFL");
  CHECK(fcntl(in, F_GETFD) == FD_CLOEXEC, "F_GETFD");
  CHECK(flock(in, LOCK_SH) == 0 && flock(in, LOCK_UN) == 0, "flock");
  CHECK(lockf(in, F_TEST, 0) == 0, "lockf(F_TEST)");
  errno = 0;
  CHECK(lockf(in, F_LOCK, 0) == -1 && errno == EBADF, "lockf(F_LOCK) on a read-only fd: EBADF");
  struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
  CHECK(fcntl(in, F_SETLK, &fl) == 0, "F_SETLK read lock");
  CHECK(posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL) == 0, "posix_fadvise");
  CHECK(posix_fadvise(in, 0, 0, 99) == EINVAL, "posix_fadvise bad advice");
  CHECK(readahead(in, 0, 1 << 20) == 0, "readahead");
  CHECK(fsync(in) == 0 && fdatasync(in) == 0, "fsync");
  char names[64];
  CHECK(flistxattr(in, names, sizeof names) == 0, "flistxattr: none");
  errno = 0;
  CHECK(fgetxattr(in, "user.x", names, sizeof names) == -1 && errno == ENODATA, "fgetxattr: ENODATA");
  close(in);
}

int main(void) {
  L = getenv("MF_LOCAL_DIR");
  M = getenv("MF_MOUNT_DIR");
  CHECK(L && M, "MF_LOCAL_DIR and MF_MOUNT_DIR");
  CHECK(mkdtemp(tmpdir), "mkdtemp");
  const char* names[] = {"empty.bin", "one.bin", "page.bin", "odd.bin", "chunks.bin", "sub/dir/nested.bin",
                         "config.json", "model.safetensors"};
  for (size_t i = 0; i < sizeof names / sizeof *names; ++i) copies(names[i]);
  refused();
  fd_calls();
  unlink(path_in(tmpdir, "out"));
  rmdir(tmpdir);
  puts("ok");
  return 0;
}
