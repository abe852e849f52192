// Prints, for each allocator entry point, the object that RTLD_DEFAULT resolves it to. Run under the
// preloaded shim by malloc_untouched.py: all must be libc (the shim must not change the app's allocator).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

int main(void) {
  const char* names[] = {"malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc"};
  for (unsigned i = 0; i < sizeof names / sizeof names[0]; ++i) {
    void* p = dlsym(RTLD_DEFAULT, names[i]);
    Dl_info info;
    if (!p || !dladdr(p, &info)) return 1;
    printf("%s %s\n", names[i], info.dli_fname);
  }
  return 0;
}
