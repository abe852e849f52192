/* pthread_cancel of a thread blocked in read() inside the shim's hook (run through harness.py): the forced
 * unwind passes through the thin library and the engine's guard (which must rethrow it, not swallow it as an
 * exception: glibc would abort with "exception not rethrown") and the thread ends as PTHREAD_CANCELED. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static int g_pipe[2];

static void* reader(void* arg) {
  (void)arg;
  char c;
  read(g_pipe[0], &c, 1); /* blocks: nothing is ever written */
  return NULL;
}

int main(void) {
  const char* mount = getenv("MF_MOUNT_DIR");
  if (!mount) FAIL("MF_MOUNT_DIR must be set");
  if (dlsym(RTLD_DEFAULT, "__asan_init")) {
    /* ASan's no-return hook on the rethrow of the forced unwind (PlatformUnpoisonStacks) reports its own
     * sigaltstack() result buffer as a stack-buffer-overflow on a cancelled thread: a sanitizer artefact. */
    printf("skipped: thread cancellation under ASan (its sigaltstack interceptor reports the unwind)\n");
    return 77;
  }
  char p[4096];
  snprintf(p, sizeof p, "%s/odd.bin", mount);
  struct stat st;
  if (stat(p, &st) != 0) FAIL("stat %s: %s", p, strerror(errno)); /* loads the engine */
  if (pipe(g_pipe) != 0) FAIL("pipe");
  alarm(30);
  for (int i = 0; i < 3; ++i) {
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    usleep(50000);
    if (pthread_cancel(t) != 0) FAIL("pthread_cancel");
    void* ret;
    if (pthread_join(t, &ret) != 0 || ret != PTHREAD_CANCELED) FAIL("the reader was not cancelled");
  }
  if (stat(p, &st) != 0 || st.st_size != 1000003) FAIL("the mount after the cancellations");
  printf("ok cancel: 3 threads cancelled inside read()\n");
  return 0;
}
