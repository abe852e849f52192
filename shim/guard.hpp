// The guard every hook runs inside (shim/guard.cpp wraps each hook of shim/hooks.def in it; the thin library
// calls only the wrapped entry points, mf_hook_NAME). Inside a hook body, Work (shim/shim.hpp) marks our own
// work for the recursion guard and restores the program's errno unless the call fails; guarded() makes sure
// no C++ exception leaves the hook into C code: it logs one modelfetch: line and fails the call with ENOMEM
// (std::bad_alloc) or EIO (anything else), returning the call's error value.
#pragma once

#include <sys/mman.h>

#include <cxxabi.h>

#include <cerrno>
#include <exception>
#include <new>
#include <type_traits>

namespace mf::shim {

// Logs the failure of hook `name` ("what" happened) and sets errno to code.
void report_exception(const char* name, const char* what, int code) noexcept;

// The value a hook returns when it fails with errno `code`: -1 for the int-returning calls, NULL for the
// pointer-returning ones (MAP_FAILED for mmap/mremap: error_value below), the error number itself for the
// readdir_r family.
template <class R>
R error_value(const char* name, int code) noexcept {
  if constexpr (std::is_void_v<R>) {
    return;
  } else if constexpr (std::is_pointer_v<R>) {
    (void)code;
    if (__builtin_strncmp(name, "mmap", 4) == 0 || __builtin_strcmp(name, "mremap") == 0)
      return reinterpret_cast<R>(MAP_FAILED);
    return nullptr;
  } else {
    if (__builtin_strncmp(name, "readdir", 7) == 0 && __builtin_strstr(name, "_r")) return static_cast<R>(code);
    return static_cast<R>(-1);
  }
}

// Test builds only (MF_TEST_THROW): MODELFETCH_TEST_THROW=NAME or NAME:bad_alloc makes hook NAME throw when
// the program calls it, to check that guarded() contains it (tests/shim/guard.c).
void maybe_throw_for_test(const char* name);

template <class R, class F>
R guarded(const char* name, F&& body) {
  try {
#ifdef MF_TEST_THROW
    maybe_throw_for_test(name);
#endif
    return body();
  } catch (const std::bad_alloc&) {
    report_exception(name, "out of memory", ENOMEM);
    return error_value<R>(name, ENOMEM);
  } catch (const std::exception& e) {
    report_exception(name, e.what(), EIO);
    return error_value<R>(name, EIO);
  } catch (...) {
    // A foreign exception, i.e. glibc's forced unwind of a cancelled thread (read() is a cancellation point):
    // it must go on unwinding. (Not `catch (abi::__forced_unwind&)`: that binds a reference to no object.)
    if (abi::__cxa_current_exception_type() == nullptr) throw;
    report_exception(name, "unknown exception", EIO);
    return error_value<R>(name, EIO);
  }
}

}  // namespace mf::shim
