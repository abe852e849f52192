// libmf_asan_initfirst.so: preloaded next to an ASan-built shim in an *uninstrumented* program (CPython,
// coreutils) so that the ASan runtime initialises before any library constructor runs.
//
// Why: an instrumented executable calls __asan_init from its .preinit_array, before every constructor. An
// uninstrumented one has none, so a preloaded libasan initialises lazily on its first intercepted call. ld.so
// runs constructors dependencies-first, latest-loaded first, so libp11-kit's (libcurl -> gnutls -> p11-kit)
// runs long before libasan's own; it calls newlocale(), which mallocs while holding libc's locale write lock,
// and ASan initialises right there. Its init ends in dlsym("swift_demangle") + dlerror(); dlerror formats the
// message through gettext, which read-locks the same lock (EDEADLK: this thread is the writer) and then
// unlocks it, releasing newlocale's write lock underneath it; newlocale's own unlock then corrupts the lock
// and the program's next setlocale() waits forever (traced with gdb; scripts/sanitize, docs/DESIGN.md).
//
// Fix: -z initfirst (DF_1_INITFIRST) makes glibc's _dl_init run this object's initialisers before all
// others; the constructor below calls __asan_init there, the point where an instrumented executable's
// .preinit_array would. Relocation and libc's early init are done by then; nothing holds a lock. (The file
// is also compiled with -fsanitize=address, whose module constructor calls __asan_init as well; the explicit
// call does not depend on that. Repeated calls return at once.) Only one object per process can be initfirst
// (the last one loaded wins); nothing else in the test processes sets the flag.
void __asan_init(void);

__attribute__((constructor)) static void mf_asan_init_first(void) { __asan_init(); }
