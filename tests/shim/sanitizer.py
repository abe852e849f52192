"""LD_PRELOAD for a shim built with sanitizers (meson -Db_sanitize=address,undefined or thread).

A sanitized libmodelfetch.so needs its sanitizer runtime loaded before anything else ("ASan runtime does not
come first in initial library list"); an uninstrumented program (python3, cat) does not load it itself. The
runtime is found from the shim's own dependencies (ldd), so no build option has to be passed down: an
ordinary build gets LD_PRELOAD=shim and nothing else changes.

Options set for sanitized runs, and why:
  detect_leaks=0     the preloaded programs are CPython and coreutils, whose interpreter-lifetime allocations
                     LeakSanitizer reports at exit; the core's own leaks are checked by the unit tests.
  handle_sigbus=0    a failed mapped read must reach the program as SIGBUS (tests assert the signal), not
                     be turned into an ASan "deadly signal" report.
  abort_on_error=1, halt_on_error=1   a finding fails the test (non-zero status) instead of scrolling by.
"""
import os
import re
import subprocess


def runtime(lib):
    """Path of the sanitizer runtime `lib` links against, or None for an ordinary build."""
    try:
        out = subprocess.run(["ldd", lib], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        m = re.match(r"\s*lib(?:asan|tsan)\.so\S* => (\S+)", line)
        if m:
            return m.group(1)
    return None


def blocked(lib, program):
    """Why `program` cannot run under the sanitized `lib`, or None. An uninstrumented program (CPython, ls)
    initialises ASan lazily, from its first malloc, which happens inside libp11-kit's constructor (pulled in
    by libcurl → gnutls) while newlocale() holds libc's locale lock; ASan's init calls dlerror() → gettext,
    which releases that lock underneath newlocale, and the next setlocale() waits forever. An instrumented
    program initialises ASan from its own .preinit_array, before any constructor, and is unaffected."""
    rt = runtime(lib)
    if not rt:
        return None
    if runtime(program):
        return None
    return ("%s is not instrumented: a sanitized shim hangs it at startup (ASan initialised inside "
            "libp11-kit's newlocale; see tests/shim/sanitizer.py)" % program)


def preload_env(lib, env):
    """Sets LD_PRELOAD (runtime first when sanitized) and the sanitizer options in `env`; returns env."""
    lib = os.path.abspath(lib)
    rt = runtime(lib)
    env["LD_PRELOAD"] = rt + ":" + lib if rt else lib
    if rt:
        extra = "detect_leaks=0:handle_sigbus=0:abort_on_error=1:halt_on_error=1"
        for var in ("ASAN_OPTIONS", "TSAN_OPTIONS"):
            env[var] = (env.get(var, "") + ":" + extra).lstrip(":")
        env["UBSAN_OPTIONS"] = (env.get("UBSAN_OPTIONS", "") + ":print_stacktrace=1:halt_on_error=1").lstrip(":")
    return env
