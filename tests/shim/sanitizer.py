"""LD_PRELOAD for a shim built with sanitizers (meson -Db_sanitize=address,undefined or thread).

A sanitized libmodelfetch.so needs its sanitizer runtime loaded before anything else ("ASan runtime does not
come first in initial library list"); an uninstrumented program (python3, cat) does not load it itself. The
runtime is found from the shim's own dependencies (ldd), so no build option has to be passed down: an
ordinary build gets LD_PRELOAD=shim and nothing else changes.

ASan also needs to initialise before any library constructor, as it does in an instrumented program (from
the executable's .preinit_array). In an uninstrumented one it would initialise lazily inside libp11-kit's
constructor, under libc's locale lock, and hang the program; the ASan build's libmf_asan_initfirst.so
(tests/sanitizers/asan_initfirst.c, linked -z initfirst) is preloaded too and initialises it first.
So LD_PRELOAD is libasan:libmf_asan_initfirst.so:shim.

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

INITFIRST = os.path.join("tests", "sanitizers", "libmf_asan_initfirst.so")  # relative to the build root


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


def build_root(lib):
    """The meson build directory `lib` was built in (the nearest parent holding meson-private)."""
    d = os.path.dirname(os.path.abspath(lib))
    while d != os.path.dirname(d):
        if os.path.isdir(os.path.join(d, "meson-private")):
            return d
        d = os.path.dirname(d)
    raise RuntimeError("%s is not inside a meson build directory" % lib)


def runtime_preload(lib):
    """What must precede the sanitized `lib` in LD_PRELOAD ("libasan.so:initfirst helper", "libtsan.so"),
    or None for an ordinary build."""
    rt = runtime(lib)
    if not rt:
        return None
    if os.path.basename(rt).startswith("libasan."):
        helper = os.path.join(build_root(lib), INITFIRST)
        if not os.path.exists(helper):  # would hang uninstrumented programs: fail loudly instead
            raise RuntimeError("ASan build without %s (tests/sanitizers/meson.build)" % helper)
        return rt + ":" + helper
    return rt


def blocked(lib, program):
    """Why `program` cannot run under the sanitized `lib`, or None. Under ASan every program runs (see the
    module docstring). The TSan build is only for the concurrency unit tests (scripts/sanitize tsan): TSan
    needs every thread in the process instrumented, so an uninstrumented program is not run under it."""
    rt = runtime(lib)
    if not rt or os.path.basename(rt).startswith("libasan.") or runtime(program):
        return None
    return "%s is not instrumented: the TSan build of the shim is only run by instrumented tests" % program


def preload_env(lib, env):
    """Sets LD_PRELOAD (runtime first when sanitized) and the sanitizer options in `env`; returns env."""
    lib = os.path.abspath(lib)
    first = runtime_preload(lib)
    env["LD_PRELOAD"] = first + ":" + lib if first else lib
    if first:
        extra = "detect_leaks=0:handle_sigbus=0:abort_on_error=1:halt_on_error=1"
        for var in ("ASAN_OPTIONS", "TSAN_OPTIONS"):
            env[var] = (env.get(var, "") + ":" + extra).lstrip(":")
        env["UBSAN_OPTIONS"] = (env.get("UBSAN_OPTIONS", "") + ":print_stacktrace=1:halt_on_error=1").lstrip(":")
    return env
