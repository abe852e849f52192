#include "shim/thin_paths.hpp"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace mf::thin {
namespace {

// Appends the components of path (absolute or relative) to out[0..*len), lexically: "" and "." dropped,
// ".." removes the last component. False on overflow.
bool push_components(const char* path, char* out, size_t n, size_t* len) {
  const char* p = path;
  while (*p) {
    while (*p == '/') ++p;
    const char* q = p;
    while (*q && *q != '/') ++q;
    size_t k = static_cast<size_t>(q - p);
    if (k == 0 || (k == 1 && p[0] == '.')) {
    } else if (k == 2 && p[0] == '.' && p[1] == '.') {
      while (*len > 0 && out[*len - 1] != '/') --*len;
      if (*len > 0) --*len;  // the slash before it
    } else {
      if (*len + 1 + k + 1 > n) return false;
      out[(*len)++] = '/';
      memcpy(out + *len, p, k);
      *len += k;
    }
    p = q;
  }
  return true;
}

bool is_remote(const char* s, size_t n) {
  const char* schemes[] = {"s3://", "http://", "https://"};
  for (const char* scheme : schemes) {
    size_t k = strlen(scheme);
    if (n <= k || strncmp(s, scheme, k) != 0) continue;
    if (s[k] == '/') return false;  // empty bucket or host
    for (size_t i = k; i < n; ++i)
      if (s[i] == '?' || s[i] == '#') return false;
    return true;
  }
  return false;
}

// Adds the mount path s[0..n) (absolute, not "/"): false when it is not in that form or does not fit.
bool add_mount(Mounts& m, const char* s, size_t n) {
  char raw[PATH_MAX];
  if (n == 0 || s[0] != '/' || n >= sizeof raw || m.count == Mounts::kMaxMounts) return false;
  memcpy(raw, s, n);
  raw[n] = '\0';
  size_t used = m.count ? m.start[m.count - 1] + m.len[m.count - 1] : 0;
  char norm[PATH_MAX];
  if (!normalize(raw, norm, sizeof norm) || strcmp(norm, "/") == 0) return false;
  size_t k = strlen(norm);
  if (used + k > Mounts::kBytes) return false;
  memcpy(m.text + used, norm, k);
  m.start[m.count] = static_cast<uint32_t>(used);
  m.len[m.count] = static_cast<uint32_t>(k);
  ++m.count;
  return true;
}

bool under_a_mount(const Mounts& m, const char* norm) {
  size_t n = strlen(norm);
  for (size_t i = 0; i < m.count; ++i) {
    size_t k = m.len[i];
    if (n >= k && memcmp(norm, m.text + m.start[i], k) == 0 && (n == k || norm[k] == '/')) return true;
  }
  return false;
}

}  // namespace

MountsFound read_mounts_into(Mounts& m, const char* (*getenv_fn)(const char*));

bool normalize(const char* path, char* out, size_t n) {
  size_t len = 0;
  if (!push_components(path, out, n, &len)) return false;
  if (len == 0) {
    if (n < 2) return false;
    out[len++] = '/';
  }
  out[len] = '\0';
  return true;
}

MountsFound read_mounts(Mounts& m, const char* (*getenv_fn)(const char*)) {
  MountsFound found = read_mounts_into(m, getenv_fn);
  if (found != MountsFound::some) m.count = 0;  // nothing half-read: the engine decides
  return found;
}

MountsFound read_mounts_into(Mounts& m, const char* (*getenv_fn)(const char*)) {
  m.count = 0;
  const char* list = getenv_fn("MODELFETCH_MOUNTS");
  if (list && *list) {
    const char* p = list;
    while (*p) {
      const char* end = strchr(p, ';');
      if (!end) end = p + strlen(p);
      if (end != p) {
        const char* eq = static_cast<const char*>(memchr(p, '=', static_cast<size_t>(end - p)));
        if (!eq || !add_mount(m, p, static_cast<size_t>(eq - p)) ||
            !is_remote(eq + 1, static_cast<size_t>(end - eq - 1)))
          return MountsFound::unclear;
      }
      p = *end ? end + 1 : end;
    }
    return m.count ? MountsFound::some : MountsFound::unclear;
  }
  const char* remote = getenv_fn("MODELFETCH_REMOTE");
  const char* mount = getenv_fn("MODELFETCH_MOUNT");
  bool has_remote = remote && *remote, has_mount = mount && *mount;
  if (!has_remote && !has_mount) return MountsFound::none;
  if (!has_remote || !has_mount || !is_remote(remote, strlen(remote)) || !add_mount(m, mount, strlen(mount)))
    return MountsFound::unclear;
  return MountsFound::some;
}

bool may_be_mounted(const Mounts& m, int dirfd, const char* path) {
  if (path == nullptr || path[0] == '\0' || m.count == 0) return false;
  char norm[2 * PATH_MAX];
  if (path[0] == '/') return !normalize(path, norm, sizeof norm) || under_a_mount(m, norm);
  if (dirfd != AT_FDCWD) return false;
  char cwd[PATH_MAX];
  if (syscall(SYS_getcwd, cwd, sizeof cwd) <= 0 || cwd[0] != '/') return true;  // unknown: the engine decides
  size_t len = 0;
  if (!push_components(cwd, norm, sizeof norm, &len) || !push_components(path, norm, sizeof norm, &len))
    return true;
  if (len == 0) norm[len++] = '/';
  norm[len] = '\0';
  return under_a_mount(m, norm);
}

}  // namespace mf::thin
