// Directory emulation. opendir/fdopendir of a mounted directory return our own VDir, which starts with a
// 64-bit magic: glibc's DIR starts with an int fd and an int lock, so its first 8 bytes can never equal it,
// and readdir & co tell the two apart with one load (after checking that any VDir is open at all). A VDir
// holds the listing (from Tree: one ListObjectsV2 per folder), a directory memfd (so dirfd() works and
// openat/fstatat relative to it resolve in core) and one dirent buffer, reused by each readdir() call as
// glibc does. "." and ".." come first, as from a real directory. scandir is hooked because glibc's calls
// its internal opendir/readdir, which no hook sees.
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <new>
#include <string>
#include <vector>

#include "core/vfs/path.hpp"
#include "shim/shim.hpp"

using mf::shim::real;

namespace mf::shim {
namespace {

constexpr uint64_t kVDirMagic = 0x52494476666d0a01ull;  // never the (fd, lock) pair glibc's DIR starts with

struct VDir {
  uint64_t magic = kVDirMagic;
  int fd = -1;
  size_t pos = 0;
  std::string path;
  std::vector<DirEntry> entries;
  struct dirent ent;
};

constinit std::atomic<int> g_open_vdirs{0};

inline VDir* as_vdir(DIR* d) {
  if (g_open_vdirs.load(std::memory_order_relaxed) == 0 || d == nullptr) return nullptr;
  auto* v = reinterpret_cast<VDir*>(d);
  return v->magic == kVDirMagic ? v : nullptr;
}

DIR* make_vdir(Vfs* v, const MountedPath& p, int fd) {
  Work w;
  auto list = v->list_dir(p);
  if (!list) {
    if (fd >= 0) ::close(fd);
    return w.fail(list.error().code, static_cast<DIR*>(nullptr));
  }
  if (fd < 0) {
    auto opened = v->open(p, O_RDONLY | O_DIRECTORY);
    if (!opened) return w.fail(opened.error().code, static_cast<DIR*>(nullptr));
    fd = *opened;
  }
  auto* d = new (std::nothrow) VDir;
  if (!d) {
    ::close(fd);
    return w.fail(ENOMEM, static_cast<DIR*>(nullptr));
  }
  d->fd = fd;
  d->path = p.path;
  d->entries.push_back(DirEntry{".", NodeKind::dir});
  d->entries.push_back(DirEntry{"..", NodeKind::dir});
  for (auto& e : *list) d->entries.push_back(std::move(e));
  g_open_vdirs.fetch_add(1, std::memory_order_relaxed);
  return w.ok(reinterpret_cast<DIR*>(d));
}

struct dirent* next_entry(VDir* d) {
  if (d->pos >= d->entries.size()) return nullptr;  // end: errno untouched
  const DirEntry& e = d->entries[d->pos];
  memset(&d->ent, 0, sizeof d->ent);
  d->ent.d_ino = fake_ino(e.name == "." ? d->path : join_path(d->path, e.name));
  d->ent.d_off = static_cast<off_t>(++d->pos);
  d->ent.d_reclen = sizeof d->ent;
  d->ent.d_type = e.kind == NodeKind::dir ? DT_DIR : DT_REG;
  size_t n = std::min(e.name.size(), sizeof d->ent.d_name - 1);
  memcpy(d->ent.d_name, e.name.data(), n);
  return &d->ent;
}

int readdir_r_any(DIR* dir, struct dirent* entry, struct dirent** result) {
  VDir* d = as_vdir(dir);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  if (!d) return real.readdir_r(dir, entry, result);
#pragma GCC diagnostic pop
  struct dirent* e = next_entry(d);
  if (e) memcpy(entry, e, sizeof *entry);
  *result = e ? entry : nullptr;
  return 0;
}

int scandir_any(const char* path, struct dirent*** out, int (*filter)(const struct dirent*),
                int (*compar)(const struct dirent**, const struct dirent**)) {
  Vfs* v = active();
  if (!v) return real.scandir(path, out, filter, compar);
  auto p = mounted(v, AT_FDCWD, path);
  if (!p) return real.scandir(path, out, filter, compar);
  DIR* dir = make_vdir(v, *p, -1);
  if (!dir) return -1;
  std::vector<struct dirent*> kept;
  while (struct dirent* e = next_entry(reinterpret_cast<VDir*>(dir))) {
    if (filter && !filter(e)) continue;
    auto* copy = static_cast<struct dirent*>(malloc(sizeof *e));
    if (!copy) break;
    memcpy(copy, e, sizeof *e);
    kept.push_back(copy);
  }
  closedir(dir);
  auto** arr = static_cast<struct dirent**>(malloc(sizeof(struct dirent*) * (kept.size() + 1)));
  if (!arr) {
    for (auto* e : kept) free(e);
    return (errno = ENOMEM), -1;
  }
  for (size_t i = 0; i < kept.size(); ++i) arr[i] = kept[i];
  if (compar)
    qsort(arr, kept.size(), sizeof *arr, reinterpret_cast<int (*)(const void*, const void*)>(compar));
  *out = arr;
  return static_cast<int>(kept.size());
}

}  // namespace
}  // namespace mf::shim

using namespace mf;
using namespace mf::shim;

MF_EXPORT DIR* opendir(const char* path) {
  Vfs* v = active();
  if (!v) return real.opendir(path);
  auto p = mounted(v, AT_FDCWD, path);
  if (!p) return real.opendir(path);
  return make_vdir(v, *p, -1);
}
MF_EXPORT DIR* fdopendir(int fd) {
  Vfs* v = active();
  if (!v || !v->maybe_virtual(fd)) return real.fdopendir(fd);
  auto path = v->dir_path(fd);
  if (!path) {
    if (v->maybe_virtual(fd)) return (errno = ENOTDIR), nullptr;  // a virtual file
    return real.fdopendir(fd);
  }
  auto p = v->match(*path);
  if (!p) return (errno = EBADF), nullptr;
  return make_vdir(v, *p, fd);
}
MF_EXPORT struct dirent* readdir(DIR* dir) {
  VDir* d = as_vdir(dir);
  if (!d) return ensure_init(), real.readdir(dir);
  return next_entry(d);
}
static_assert(sizeof(struct dirent64) == sizeof(struct dirent));  // identical on x86-64
MF_EXPORT struct dirent64* readdir64(DIR* dir) { return reinterpret_cast<struct dirent64*>(readdir(dir)); }
MF_EXPORT int readdir_r(DIR* dir, struct dirent* entry, struct dirent** result) {
  return readdir_r_any(dir, entry, result);
}
MF_EXPORT int readdir64_r(DIR* dir, struct dirent64* entry, struct dirent64** result) {
  return readdir_r_any(dir, reinterpret_cast<struct dirent*>(entry), reinterpret_cast<struct dirent**>(result));
}
MF_EXPORT int closedir(DIR* dir) {
  VDir* d = as_vdir(dir);
  if (!d) return ensure_init(), real.closedir(dir);
  d->magic = 0;
  g_open_vdirs.fetch_sub(1, std::memory_order_relaxed);
  int fd = d->fd;
  delete d;
  return close(fd);
}
MF_EXPORT int dirfd(DIR* dir) {
  VDir* d = as_vdir(dir);
  if (!d) return ensure_init(), real.dirfd(dir);
  return d->fd;
}
MF_EXPORT void rewinddir(DIR* dir) {
  VDir* d = as_vdir(dir);
  if (!d) return ensure_init(), real.rewinddir(dir);
  d->pos = 0;
}
MF_EXPORT long telldir(DIR* dir) {
  VDir* d = as_vdir(dir);
  if (!d) return ensure_init(), real.telldir(dir);
  return static_cast<long>(d->pos);
}
MF_EXPORT void seekdir(DIR* dir, long pos) {
  VDir* d = as_vdir(dir);
  if (!d) return ensure_init(), real.seekdir(dir, pos);
  d->pos = pos < 0 ? 0 : static_cast<size_t>(pos);
}
MF_EXPORT int scandir(const char* path, struct dirent*** out, int (*filter)(const struct dirent*),
                      int (*compar)(const struct dirent**, const struct dirent**)) {
  return scandir_any(path, out, filter, compar);
}
MF_EXPORT int scandir64(const char* path, struct dirent64*** out, int (*filter)(const struct dirent64*),
                        int (*compar)(const struct dirent64**, const struct dirent64**)) {
  return scandir_any(path, reinterpret_cast<struct dirent***>(out),
                     reinterpret_cast<int (*)(const struct dirent*)>(filter),
                     reinterpret_cast<int (*)(const struct dirent**, const struct dirent**)>(compar));
}
