// Resolving (dirfd, path) to a mounted path. Absolute paths are filtered without allocation (Vfs::may_match).
// A relative path against the cwd can only reach a mount when the cwd is an ancestor of a mount or the path
// climbs with ".." (the cwd itself is never inside a mount: chdir into it fails), so most relative paths
// cost one getcwd system call and a prefix comparison. A relative path against a virtual directory fd
// resolves from that directory's path; against any other real directory fd it is never ours.
#include <fcntl.h>
#include <limits.h>

#include <cstring>

#include "core/vfs/path.hpp"
#include "core/vfs/sys.hpp"
#include "shim/shim.hpp"

namespace mf::shim {
namespace {

bool climbs(std::string_view rel) {
  for (size_t i = 0; i + 1 < rel.size(); ++i)
    if (rel[i] == '.' && rel[i + 1] == '.' && (i == 0 || rel[i - 1] == '/')) return true;
  return false;
}

bool is_ancestor_of_a_mount(const Vfs* v, std::string_view dir) {
  if (dir == "/") return true;
  for (const auto& m : v->config().mounts)
    if (m.path.size() > dir.size() && m.path.compare(0, dir.size(), dir) == 0 && m.path[dir.size()] == '/')
      return true;
  return false;
}

}  // namespace

std::optional<MountedPath> mounted(Vfs* v, int dirfd, const char* path) {
  if (path == nullptr || path[0] == '\0') return std::nullopt;
  if (path[0] == '/') return v->may_match(path) ? v->match(path) : std::nullopt;
  if (dirfd == AT_FDCWD) {
    char cwd[PATH_MAX];
    if (sys::getcwd(cwd, sizeof cwd) < 0) return std::nullopt;
    if (!climbs(path) && !is_ancestor_of_a_mount(v, cwd)) return std::nullopt;
    return v->match(join_path(cwd, path));
  }
  if (!v->maybe_virtual(dirfd)) return std::nullopt;
  auto dir = v->dir_path(dirfd);
  if (!dir) return std::nullopt;
  return v->match(join_path(*dir, path));
}

}  // namespace mf::shim
