/* No C++ exception leaves a hook (run through harness.py with the test engine, whose guard honours
 * MODELFETCH_TEST_THROW=HOOK[:bad_alloc]: the hook throws when the program calls it). argv[1] is the
 * expected errno name: EIO for a std::runtime_error, ENOMEM for std::bad_alloc. The call must fail with it
 * (one modelfetch: line), the process must go on, and the same hook must keep working for other calls. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

int main(int argc, char** argv) {
  const char* mount = getenv("MF_MOUNT_DIR");
  const char* knob = getenv("MODELFETCH_TEST_THROW");
  if (argc < 2 || !mount || !knob) FAIL("usage: MODELFETCH_TEST_THROW=stat,stat64 guard EIO|ENOMEM (under harness.py)");
  int want = strcmp(argv[1], "ENOMEM") == 0 ? ENOMEM : EIO;
  char p[4096];
  snprintf(p, sizeof p, "%s/odd.bin", mount);
  struct stat st;
  errno = 0;
  int r = stat(p, &st);
  if (r != -1 || errno != want) FAIL("stat with a throwing hook: %d, errno %d (%s), want -1 and %s", r, errno,
                                     strerror(errno), argv[1]);
  /* the engine still serves the mount through the other hooks */
  int fd = open(p, O_RDONLY);
  if (fd < 0) FAIL("open %s after the exception: %s", p, strerror(errno));
  if (fstat(fd, &st) != 0 || st.st_size != 1000003) FAIL("fstat after the exception");
  close(fd);
  printf("ok guard: stat failed with %s and the process went on\n", argv[1]);
  return 0;
}
