// The thin library's pre-filter (shim/thin.cpp): the mount paths read from the environment, and whether a
// path may lie under one of them. No allocation, no C++ runtime: it runs in every process that inherits
// LD_PRELOAD, on every path-taking call until the engine is loaded. Conservative by design: "may" loads the
// engine, which decides exactly (Vfs::match); a "no" here must be right, and it is, because both normalise
// paths the same lexical way (core/vfs/path.cpp).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace mf::thin {

struct Mounts {
  static constexpr size_t kMaxMounts = 64;
  static constexpr size_t kBytes = 8192;
  char text[kBytes];           // the normalised mount paths, back to back
  uint32_t start[kMaxMounts];
  uint32_t len[kMaxMounts];
  size_t count;
};

enum class MountsFound {
  none,     // neither MODELFETCH_MOUNTS nor MODELFETCH_REMOTE / MODELFETCH_MOUNT is set
  some,     // every mount path and remote read in the plain form: m holds the paths
  unclear,  // set, but not in the form the thin library reads (or too many): the engine must parse it
};

// getenv_fn: getenv, or a test's lookup.
MountsFound read_mounts(Mounts& m, const char* (*getenv_fn)(const char*));

// The lexical normal form of path (absolute: "/a/./b//../c/" -> "/a/c"), into out (size n). False when it
// does not fit.
bool normalize(const char* path, char* out, size_t n);

// True when (dirfd, path) may name a path under one of m's mounts: an absolute path whose normal form is a
// mount or below one; a relative path against the cwd (AT_FDCWD) the same way after joining it to the cwd
// (or when the cwd cannot be read). Relative to any other dirfd: false (before the engine is loaded no fd
// is a mount directory).
bool may_be_mounted(const Mounts& m, int dirfd, const char* path);

}  // namespace mf::thin
