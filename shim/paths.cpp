// Resolving (dirfd, path) to a mounted path. Absolute paths are filtered without allocation (Vfs::may_match),
// except /proc/self/fd/N-style links (/proc/PID/fd/N of this process, /proc/thread-self/fd/N, /dev/fd/N),
// which resolve to the mounted path of a virtual fd N (and below it, for a directory fd).
//
// Relative paths against AT_FDCWD: while a virtual cwd is set (chdir into the mount, hooks_cwd.cpp) they
// resolve against it; one that leads outside every mount is rewritten to the absolute path, so the real
// call the hook makes goes where the program meant (the kernel's cwd is elsewhere). Without a virtual cwd,
// a relative path can only reach a mount when the cwd is an ancestor of a mount or the path climbs with
// "..", so most cost one getcwd system call and a prefix comparison. A relative path against a virtual
// directory fd resolves from that directory's path; against any other real directory fd it is never ours.
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

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

bool maybe_fd_link(const char* path) {
  return strncmp(path, "/proc/", 6) == 0 || strncmp(path, "/dev/fd/", 8) == 0;
}

// Rewritten paths handed back to the hook: two slots per thread (rename and link resolve two paths per
// call), allocated on first use and freed when the thread exits (a thread_local array would need 8 KiB of
// static TLS, which a dlopen()ed library may not get).
struct Slots {
  char path[2][PATH_MAX];
  int next = 0;
};
pthread_key_t g_slots_key;
pthread_once_t g_slots_once = PTHREAD_ONCE_INIT;

const char* stash(const std::string& s, const char* fallback) {
  if (s.size() >= PATH_MAX) return fallback;
  pthread_once(&g_slots_once, [] { pthread_key_create(&g_slots_key, free); });
  auto* slots = static_cast<Slots*>(pthread_getspecific(g_slots_key));
  if (!slots) {
    slots = static_cast<Slots*>(calloc(1, sizeof(Slots)));
    if (!slots || pthread_setspecific(g_slots_key, slots) != 0) {
      free(slots);
      return fallback;
    }
  }
  char* out = slots->path[slots->next];
  slots->next ^= 1;
  memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

}  // namespace

std::optional<std::string> fd_link_target(Vfs* v, const char* path, bool whole_only) {
  if (path == nullptr || !maybe_fd_link(path)) return std::nullopt;
  // /proc/self, /proc/thread-self and /dev/fd need no pid; only /proc/<digits>/ costs a getpid system call.
  auto link = parse_fd_link(path, -1);
  if (!link && path[1] == 'p' && path[6] >= '1' && path[6] <= '9') link = parse_fd_link(path, static_cast<long>(getpid()));
  if (!link || !v->maybe_virtual(link->fd)) return std::nullopt;
  if (whole_only && !link->rest.empty()) return std::nullopt;
  auto target = v->fd_path(link->fd);
  if (!target) return std::nullopt;
  return link->rest.empty() ? *target : join_path(*target, link->rest);
}

std::optional<MountedPath> mounted(Vfs* v, int dirfd, const char*& path) {
  if (path == nullptr || path[0] == '\0') return std::nullopt;
  if (path[0] == '/') {
    if (v->may_match(path)) return v->match(path);
    if (auto target = fd_link_target(v, path, false)) return v->match(*target);
    return std::nullopt;
  }
  if (dirfd == AT_FDCWD) {
    if (v->has_cwd()) {
      if (auto cwd = v->cwd()) {
        std::string joined = join_path(*cwd, path);
        if (auto m = v->match(joined)) return m;
        path = stash(joined, path);
        return std::nullopt;
      }
    }
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
