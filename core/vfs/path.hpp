// Path arithmetic for mounts: lexical normalisation (the mount is virtual, so there is no symlink inside it
// for `..` to cross), mount matching, and splitting a remote URL into the store it lives in and the key
// prefix below it. Pure functions, tested table-driven in tests/unit/vfs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/util/result.hpp"

namespace mf {

// Precondition: path starts with '/'. Collapses "//", "." and ".." ("/.." is "/"), drops a trailing '/'.
std::string normalize_path(std::string_view path);

// base must be absolute; rel absolute (base ignored) or relative. Returns the normalised result.
std::string join_path(std::string_view base, std::string_view rel);

// For a normalised path: the part below mount ("" for the mount itself, "a/b" for mount/a/b), or nothing.
std::optional<std::string_view> path_below(std::string_view path, std::string_view mount);

// True when a path needs normalising before a prefix comparison means anything ("//", "/.", "/..").
bool needs_normalising(std::string_view path);

// A path through this process's fd links: /proc/self/fd/N, /proc/thread-self/fd/N, /proc/PID/fd/N with PID
// this process (self_pid), /proc/{self,PID}/task/TID/fd/N, /dev/fd/N; rest is what follows N ("" or "sub/file" below a directory fd).
// Anything else (another process, /proc/self/fdinfo, a malformed N): nothing. Pure, no system call.
struct FdLink {
  int fd = -1;
  std::string_view rest;
};
std::optional<FdLink> parse_fd_link(std::string_view path, long self_pid);

// s3://bucket/pre/fix  -> store "s3://bucket",       prefix "pre/fix/"
// https://host/a/b     -> store "https://host",      prefix "a/b/"
// The store URL names one ObjectStore; keys in it are prefix + the path below the mount.
struct MountRemote {
  std::string store;
  std::string prefix;  // "" or ends with '/'
};
Result<MountRemote> split_remote(std::string_view url);

}  // namespace mf
