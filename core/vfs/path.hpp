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

// s3://bucket/pre/fix  -> store "s3://bucket",       prefix "pre/fix/"
// https://host/a/b     -> store "https://host",      prefix "a/b/"
// The store URL names one ObjectStore; keys in it are prefix + the path below the mount.
struct MountRemote {
  std::string store;
  std::string prefix;  // "" or ends with '/'
};
Result<MountRemote> split_remote(std::string_view url);

}  // namespace mf
