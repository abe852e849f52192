/* C-level compatibility under LD_PRELOAD: stdio fopen/fread/fseek, raw syscall(SYS_statx) on a virtual fd
 * (the kernel answers: the memfd has the object's size), fstat, readdir. Compares with MF_LOCAL_DIR. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <linux/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static char* slurp(const char* dir, const char* name, long* n) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE* f = fopen(p, "rb");
  if (!f) { perror(p); exit(1); }
  fseek(f, 0, SEEK_END);
  *n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* buf = malloc(*n + 1);
  size_t got = 0, r;
  while ((r = fread(buf + got, 1, 7777, f)) > 0) got += r;  /* odd block size: crosses buffer edges */
  if ((long)got != *n) { fprintf(stderr, "%s: short fread %zu/%ld\n", p, got, *n); exit(1); }
  fclose(f);
  return buf;
}

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); return 1; } } while (0)

int main(void) {
  const char* L = getenv("MF_LOCAL_DIR");
  const char* M = getenv("MF_MOUNT_DIR");
  const char* names[] = {"odd.bin", "chunks.bin", "config.json", "one.bin"};
  for (int i = 0; i < 4; ++i) {
    long nl, nm;
    char* a = slurp(L, names[i], &nl);
    char* b = slurp(M, names[i], &nm);
    CHECK(nl == nm && memcmp(a, b, nl) == 0, "stdio bytes differ for %s", names[i]);
    free(a);
    free(b);
  }
  char p[4096];
  snprintf(p, sizeof p, "%s/chunks.bin", M);
  FILE* f = fopen(p, "r");
  CHECK(f && fileno(f) >= 0, "fileno of a virtual FILE");
  CHECK(fseek(f, 1048570, SEEK_SET) == 0, "fseek");
  unsigned char c[12];
  CHECK(fread(c, 1, 12, f) == 12, "fread after fseek");
  CHECK(ftell(f) == 1048582, "ftell %ld", ftell(f));
  fclose(f);
  int fd = open(p, O_RDONLY);
  struct statx sx;
  CHECK(syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_SIZE, &sx) == 0, "raw statx");
  struct stat st;
  snprintf(p, sizeof p, "%s/chunks.bin", L);
  stat(p, &st);
  CHECK((long long)sx.stx_size == (long long)st.st_size && S_ISREG(sx.stx_mode), "raw statx size %llu",
        (unsigned long long)sx.stx_size);
  CHECK(statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &sx) == 0 && (long long)sx.stx_size == st.st_size, "statx");
  CHECK(write(fd, "x", 1) == -1, "write to a virtual fd");
  close(fd);
  DIR* d = opendir(M);
  CHECK(d, "opendir");
  int n = 0, saw_sub = 0;
  struct dirent* e;
  while ((e = readdir(d))) {
    ++n;
    if (!strcmp(e->d_name, "sub")) saw_sub = (e->d_type == DT_DIR);
  }
  closedir(d);
  CHECK(n == 12 && saw_sub, "readdir: %d entries", n);
  struct dirent** list;
  CHECK(scandir(M, &list, NULL, alphasort) == 12 && !strcmp(list[0]->d_name, "."), "scandir");
  puts("ok c_compat");
  return 0;
}
