#include "core/vfs/vfs.hpp"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <new>
#include <tuple>

#include "core/util/log.hpp"
#include "core/vfs/path.hpp"
#include "core/vfs/sys.hpp"

namespace mf {
namespace {

// st_dev of every mounted path: "mf" in a major that no block device uses, so tools that compare st_dev
// (find -xdev, du) see one file system.
constexpr dev_t kFakeDev = (dev_t{0x6d66} << 8) | 0x01;
// st_blksize: Python's io and stdio size their buffers from it. 64 KiB amortises the hook and lseek per
// read() without making small config reads allocate much.
constexpr blksize_t kBlockSize = 64 << 10;

}  // namespace

uint64_t fake_ino(std::string_view path) {
  uint64_t h = XXH3_64bits(path.data(), path.size());
  return h == 0 ? 1 : h;  // 0 means "deleted" to readdir users
}

Vfs::Vfs(VfsConfig config, VfsDeps deps)
    : config_(std::move(config)),
      deps_(std::move(deps)),
      start_(std::chrono::steady_clock::now()),
      router_(deps_.make_store),
      tree_(router_) {
  for (const auto& m : config_.mounts) {
    auto r = split_remote(m.remote);  // validated by parse_config
    key_bases_.push_back(r ? r->store + "/" + r->prefix : std::string());
  }
}

Vfs::~Vfs() {
  if (prefetcher_) prefetcher_->shutdown();  // its threads use mm_ (hints) and cache_
}

int64_t Vfs::since_start_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count();
}

void Vfs::note_first_byte(FileCounters& c) const {
  if (c.first_byte_ns.load(std::memory_order_relaxed) >= 0) return;
  int64_t none = -1;
  c.first_byte_ns.compare_exchange_strong(none, since_start_ns());
}

// The object of a file below a mount (for the shards an index names), or nullptr.
std::shared_ptr<const RemoteObject> Vfs::resolve_object(const std::string& abs_path) {
  auto m = match(abs_path);
  if (!m) return nullptr;
  auto node = tree_.lookup(key_bases_[m->mount], m->rel());
  if (!node || node->kind != NodeKind::file) return nullptr;
  return object_for(m->path, *node);
}

bool Vfs::may_match(std::string_view p) const {
  if (needs_normalising(p)) return true;
  for (const auto& m : config_.mounts)
    if (p.size() >= m.path.size() && p.compare(0, m.path.size(), m.path) == 0 &&
        (p.size() == m.path.size() || p[m.path.size()] == '/'))
      return true;
  return false;
}

std::optional<MountedPath> Vfs::match(std::string_view abs_path) const {
  if (!may_match(abs_path)) return std::nullopt;
  MountedPath out;
  out.path = normalize_path(abs_path);
  for (size_t i = 0; i < config_.mounts.size(); ++i) {
    if (auto rel = path_below(out.path, config_.mounts[i].path)) {
      out.mount = i;
      out.rel_pos = out.path.size() - rel->size();
      return out;
    }
  }
  return std::nullopt;
}

void Vfs::ensure_engine() {
  if (mm_ptr_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(engine_mu_);
  if (mm_) return;
  CacheConfig cc;
  cc.chunk_size = config_.chunk_size;
  cc.budget_bytes = config_.cache_size;
  const PrefetchConfig& pc = config_.prefetch;
  if (pc.policy != PrefetchPolicy::none) cc.max_prefetch_inflight = pc.max_inflight;
  cache_ = std::make_unique<ChunkCache>(router_, cc);
  mm_ = std::make_unique<MappingManager>(*cache_, config_.uffd, deps_.map_sys);
  MappingManager* mm = mm_.get();
  PrefetchHooks hooks;
  hooks.resolve = [this](const std::string& p) { return resolve_object(p); };
  hooks.hint_order = [mm](const RemoteObject& o, std::vector<uint64_t> order) { mm->hint_order(o, std::move(order)); };
  prefetcher_ = std::make_unique<Prefetcher>(*cache_, pc, std::move(hooks));
  if (pc.policy == PrefetchPolicy::none) mm_->set_fill_policy(FillPolicy::none);
  mm_->set_huge_pages(config_.huge_pages);
  mm_->set_fault_observer([this](const RemoteObject& o, uint64_t chunk) {
    prefetcher_->on_fault(o, chunk);
    std::shared_ptr<FileCounters> c;
    {
      std::lock_guard lock(objects_mu_);
      if (auto it = counters_.find(o.path); it != counters_.end()) c = it->second;
    }
    if (c) note_first_byte(*c);
  });
  MF_INFO("first use of a mounted path: cache %llu MiB, chunks %llu KiB, prefetch %s (%u in flight, %u files ahead)",
          static_cast<unsigned long long>(cc.budget_bytes >> 20),
          static_cast<unsigned long long>(cc.chunk_size >> 10), std::string(policy_name(pc.policy)).c_str(),
          pc.max_inflight, pc.lookahead_files);
  mm_ptr_.store(mm_.get(), std::memory_order_release);
}

struct stat Vfs::stat_of(const std::string& path, const Node& node) const {
  struct stat st;
  std::memset(&st, 0, sizeof st);
  st.st_dev = kFakeDev;
  st.st_ino = fake_ino(path);
  st.st_uid = static_cast<uid_t>(::syscall(SYS_geteuid));
  st.st_gid = static_cast<gid_t>(::syscall(SYS_getegid));
  st.st_blksize = kBlockSize;
  if (node.kind == NodeKind::dir) {
    st.st_mode = S_IFDIR | 0555;
    st.st_nlink = 2;
  } else {
    st.st_mode = S_IFREG | 0444;
    st.st_nlink = 1;
    st.st_size = static_cast<off_t>(node.info.size);
    st.st_blocks = static_cast<blkcnt_t>((node.info.size + 511) / 512);
  }
  st.st_mtim.tv_sec = st.st_atim.tv_sec = st.st_ctim.tv_sec = static_cast<time_t>(node.mtime);
  return st;
}

Result<struct stat> Vfs::stat(const MountedPath& p) {
  ensure_engine();
  auto node = tree_.lookup(key_bases_[p.mount], p.rel());
  if (!node) return node.error();
  return stat_of(p.path, *node);
}

Result<std::vector<DirEntry>> Vfs::list_dir(const MountedPath& p) {
  ensure_engine();
  return tree_.list(key_bases_[p.mount], p.rel());
}

std::shared_ptr<const RemoteObject> Vfs::object_for(const std::string& path, const Node& node) {
  std::lock_guard lock(objects_mu_);
  auto it = objects_.find(path);
  if (it != objects_.end()) return it->second;
  auto obj = cache_->register_object(node.info, path);
  objects_.emplace(path, obj);
  return obj;
}

Result<std::shared_ptr<OpenFile>> Vfs::make_open_file(const MountedPath& p, const Node& node) {
  auto f = std::make_shared<OpenFile>();
  f->path = p.path;
  f->node = node;
  if (node.kind == NodeKind::file) {
    f->object = object_for(p.path, node);
    std::lock_guard lock(objects_mu_);
    auto& c = counters_[p.path];
    if (!c) c = std::make_shared<FileCounters>();
    c->opens.fetch_add(1, std::memory_order_relaxed);
    int64_t none = -1;
    c->first_open_ns.compare_exchange_strong(none, since_start_ns());
    f->counters = c;
  }
  return f;
}

Result<int> Vfs::open(const MountedPath& p, int flags) {
  ensure_engine();
  const int acc = flags & O_ACCMODE;
  auto node = tree_.lookup(key_bases_[p.mount], p.rel());
  if (!node) {
    if (node.error().code == ENOENT && (flags & O_CREAT)) return make_error(EROFS, "read-only mount");
    return node.error();
  }
  if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) return make_error(EEXIST, "exists");
  if (node->kind == NodeKind::dir && acc != O_RDONLY) return make_error(EISDIR, "is a directory");
  if (acc != O_RDONLY || (flags & O_TRUNC)) return make_error(EROFS, "read-only mount");
  if (node->kind == NodeKind::file && (flags & O_DIRECTORY)) return make_error(ENOTDIR, "not a directory");
  auto file = make_open_file(p, *node);
  if (!file) return file.error();
  // The memfd name shows in /proc/self/fd and /proc/self/maps ("/memfd:modelfetch:NAME (deleted)").
  std::string name = "modelfetch:" + p.path.substr(p.path.rfind('/') + 1);
  if (name.size() > 249) name.resize(249);
  int memfd = sys::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (memfd < 0) return make_error(errno, "memfd_create failed");
  uint64_t size = node->kind == NodeKind::file ? node->info.size : 0;
  if (sys::ftruncate(memfd, static_cast<off_t>(size)) != 0 ||
      sys::fcntl(memfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0 ||
      sys::fchmod(memfd, 0) != 0) {
    int e = errno;
    sys::close(memfd);
    return make_error(e, "memfd setup failed");
  }
  // Mode 0: reopening the inode through /proc/PID/fd/N (another process, a raw open syscall: paths the shim
  // cannot see) fails with EACCES instead of reading holes, except for a process with CAP_DAC_OVERRIDE.
  // The program gets an O_PATH fd to the memfd's inode under the memfd's own number (open() returns the
  // lowest free number, as the kernel would): identity and size for fstat, nothing for the kernel to read.
  int fd = memfd;
  {
    char proc[40];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", memfd);
    int opath = sys::openat(AT_FDCWD, proc, O_PATH | O_CLOEXEC);
    if (opath < 0) opath = sys::open_tree_empty(memfd);  // no /proc mounted
    if (opath < 0 || sys::dup3(opath, memfd, O_CLOEXEC) < 0) {
      int e = errno;
      if (opath >= 0) sys::close(opath);
      sys::close(memfd);
      MF_WARN("cannot open %s: no O_PATH fd for its memfd (%s)", p.path.c_str(), strerror(e));
      return make_error(e, "O_PATH reopen failed");
    }
    sys::close(opath);
  }
  struct stat st;
  if (sys::fstat(fd, &st) != 0) {
    int e = errno;
    sys::close(fd);
    return make_error(e, "fstat failed");
  }
  // What F_GETFL reports for a real description: the open flags it keeps, always O_LARGEFILE on 64 bits.
  (*file)->status_flags.store((flags & ~(O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)) | O_LARGEFILE,
                              std::memory_order_relaxed);
  (*file)->memfd_dev = st.st_dev;
  (*file)->memfd_ino = st.st_ino;
  if ((*file)->object) prefetcher_->on_open((*file)->object);
  fds_.put(fd, std::move(*file));
  return fd;
}

std::optional<std::string> Vfs::dir_path(int fd) {
  auto f = fds_.get(fd);
  if (!f || f->node.kind != NodeKind::dir) return std::nullopt;
  return f->path;
}

std::optional<std::string> Vfs::fd_path(int fd) {
  auto f = fds_.get(fd);
  if (!f) return std::nullopt;
  return f->path;
}

std::optional<std::string> Vfs::cwd() const {
  if (!has_cwd()) return std::nullopt;
  std::lock_guard lock(cwd_mu_);
  return cwd_;
}

void Vfs::clear_cwd() {
  if (!has_cwd()) return;
  std::lock_guard lock(cwd_mu_);
  cwd_.reset();
  has_cwd_.store(false, std::memory_order_relaxed);
}

Result<void> Vfs::chdir(const MountedPath& p) {
  ensure_engine();
  auto node = tree_.lookup(key_bases_[p.mount], p.rel());
  if (!node) return node.error();
  if (node->kind != NodeKind::dir) return make_error(ENOTDIR, "not a directory");
  std::lock_guard lock(cwd_mu_);
  cwd_ = p.path;
  has_cwd_.store(true, std::memory_order_relaxed);
  return {};
}

Result<void> Vfs::fchdir(int fd) {
  auto f = fds_.get(fd);
  if (!f) return make_error(EBADF, "not a virtual fd");
  if (f->node.kind != NodeKind::dir) return make_error(ENOTDIR, "not a directory");
  std::lock_guard lock(cwd_mu_);
  cwd_ = f->path;
  has_cwd_.store(true, std::memory_order_relaxed);
  return {};
}

Result<size_t> Vfs::read_at(OpenFile& f, uint64_t offset, std::byte* dst, size_t n) {
  // Opened with O_PATH by the program: no reads, as the kernel says.
  if (f.status_flags.load(std::memory_order_relaxed) & O_PATH) return make_error(EBADF, "opened with O_PATH");
  if (f.node.kind == NodeKind::dir) return make_error(EISDIR, "is a directory");
  if (n == 0 || offset >= f.object->size) return size_t{0};
  // Reading into a managed mapping: make it resident first (the cache must not fault on it).
  if (auto* mm = mappings(); mm && mm->overlaps(dst, n)) {
    auto filled = mm->fill_for_kernel(dst, n);
    if (!filled) return filled.error();
  }
  auto got = cache_->read(*f.object, offset, std::span<std::byte>(dst, n));
  if (!got) {
    MF_WARN("read of %s at %llu failed: %s", f.path.c_str(), static_cast<unsigned long long>(offset),
            got.error().message.c_str());
    return got.error();
  }
  f.counters->bytes_served.fetch_add(*got, std::memory_order_relaxed);
  if (*got > 0) note_first_byte(*f.counters);
  prefetcher_->on_read(f.object, offset, *got);
  return got;
}

Result<size_t> Vfs::pread(int fd, void* buf, size_t n, uint64_t offset) {
  auto f = fds_.get(fd);
  if (!f) return make_error(EBADF, "not a virtual fd");
  return read_at(*f, offset, static_cast<std::byte*>(buf), n);
}

std::pair<uint64_t, size_t> Vfs::claim(OpenFile& f, size_t n) {
  uint64_t size = f.object ? f.object->size : 0;
  uint64_t pos = f.pos.load(std::memory_order_relaxed);
  for (;;) {
    size_t take = pos >= size ? 0 : static_cast<size_t>(std::min<uint64_t>(n, size - pos));
    if (take == 0 || f.pos.compare_exchange_weak(pos, pos + take, std::memory_order_acq_rel)) return {pos, take};
  }
}

void Vfs::settle(OpenFile& f, uint64_t start, size_t claimed, size_t used) {
  if (used >= claimed) return;
  uint64_t expected = start + claimed;  // unless another read or lseek moved it meanwhile
  f.pos.compare_exchange_strong(expected, start + used, std::memory_order_acq_rel);
}

Result<size_t> Vfs::read(int fd, void* buf, size_t n) {
  auto f = fds_.get(fd);
  if (!f) return make_error(EBADF, "not a virtual fd");
  if (f->node.kind == NodeKind::dir && !(f->status_flags.load(std::memory_order_relaxed) & O_PATH))
    return make_error(EISDIR, "is a directory");
  auto [pos, take] = claim(*f, n);
  auto got = read_at(*f, pos, static_cast<std::byte*>(buf), take);
  settle(*f, pos, take, got ? *got : 0);
  return got;
}

Result<size_t> Vfs::preadv(int fd, const struct iovec* iov, int iovcnt, int64_t offset) {
  auto f = fds_.get(fd);
  if (!f) return make_error(EBADF, "not a virtual fd");
  if (iovcnt < 0) return make_error(EINVAL, "negative iovcnt");
  if (f->node.kind == NodeKind::dir) return make_error(EISDIR, "is a directory");
  uint64_t pos = static_cast<uint64_t>(offset);
  size_t claimed = 0;
  if (offset < 0) {
    size_t want = 0;
    for (int i = 0; i < iovcnt; ++i) want += iov[i].iov_len;
    std::tie(pos, claimed) = claim(*f, want);
  }
  size_t total = 0;
  for (int i = 0; i < iovcnt; ++i) {
    size_t len = iov[i].iov_len;
    if (offset < 0) len = std::min(len, claimed - total);
    auto got = read_at(*f, pos + total, static_cast<std::byte*>(iov[i].iov_base), len);
    if (!got) {
      if (total > 0) break;  // a short read, as the kernel reports a partial vector
      if (offset < 0) settle(*f, pos, claimed, 0);
      return got.error();
    }
    total += *got;
    if (*got < iov[i].iov_len) break;
  }
  if (offset < 0) settle(*f, pos, claimed, total);
  return total;
}

Result<int64_t> Vfs::lseek(int fd, int64_t offset, int whence) {
  auto f = fds_.get(fd);
  if (!f) return make_error(EBADF, "not a virtual fd");
  const int64_t size = f->object ? static_cast<int64_t>(f->object->size) : 0;
  uint64_t cur = f->pos.load(std::memory_order_relaxed);
  for (;;) {
    int64_t to = 0;
    switch (whence) {
      case SEEK_SET: to = offset; break;
      case SEEK_CUR:
        if (__builtin_add_overflow(static_cast<int64_t>(cur), offset, &to)) return make_error(EINVAL, "overflow");
        break;
      case SEEK_END:
        if (__builtin_add_overflow(size, offset, &to)) return make_error(EINVAL, "overflow");
        break;
      case SEEK_DATA:  // no holes: data everywhere before the end
        if (offset < 0 || offset >= size) return make_error(ENXIO, "past the end");
        to = offset;
        break;
      case SEEK_HOLE:  // the only hole is the end
        if (offset < 0 || offset >= size) return make_error(ENXIO, "past the end");
        to = size;
        break;
      default: return make_error(EINVAL, "bad whence");
    }
    if (to < 0) return make_error(EINVAL, "negative offset");
    if (f->pos.compare_exchange_weak(cur, static_cast<uint64_t>(to), std::memory_order_acq_rel)) return to;
  }
}

Result<int> Vfs::get_status_flags(int fd) {
  auto f = fds_.get(fd);
  if (!f) return make_error(EBADF, "not a virtual fd");
  return f->status_flags.load(std::memory_order_relaxed);
}

Result<void> Vfs::set_status_flags(int fd, int flags) {
  auto f = fds_.get(fd);
  if (!f) return make_error(EBADF, "not a virtual fd");
  constexpr int kSettable = O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME | O_NONBLOCK;  // the kernel's SETFL_MASK
  int old = f->status_flags.load(std::memory_order_relaxed);
  while (!f->status_flags.compare_exchange_weak(old, (old & ~kSettable) | (flags & kSettable))) {
  }
  return {};
}

Result<size_t> Vfs::copy_to(int fd, int64_t* offset, size_t count, const Sink& sink) {
  auto f = fds_.get(fd);
  if (!f) return make_error(EBADF, "not a virtual fd");
  if (f->node.kind == NodeKind::dir) return make_error(EINVAL, "is a directory");  // as sendfile says
  if (offset && *offset < 0) return make_error(EINVAL, "negative offset");
  constexpr size_t kMaxRwCount = 0x7ffff000;  // the kernel's MAX_RW_COUNT
  count = std::min(count, kMaxRwCount);
  if (count == 0) return size_t{0};
  std::unique_ptr<std::byte[]> buf(new (std::nothrow) std::byte[std::min(count, kCopyPiece)]);
  if (!buf) return make_error(ENOMEM, "no buffer");
  size_t total = 0;
  std::optional<Error> failed;
  while (total < count) {
    size_t want = std::min(kCopyPiece, count - total);
    uint64_t pos;
    size_t claimed = 0;
    if (offset) {
      pos = static_cast<uint64_t>(*offset) + total;
    } else {
      std::tie(pos, claimed) = claim(*f, want);
      want = claimed;
    }
    auto got = read_at(*f, pos, buf.get(), want);
    if (!got || *got == 0) {
      if (!offset) settle(*f, pos, claimed, 0);
      if (!got) failed = got.error();
      break;
    }
    auto took = sink(buf.get(), *got);
    size_t used = took ? std::min(*took, *got) : 0;
    if (!offset) settle(*f, pos, claimed, used);
    total += used;
    if (!took) failed = took.error();
    if (!took || used < *got) break;
  }
  if (offset) *offset += static_cast<int64_t>(total);
  if (total == 0 && failed) return *failed;
  return total;
}

Result<struct stat> Vfs::fstat(int fd) {
  auto f = fds_.get(fd);
  if (!f) return make_error(EBADF, "not a virtual fd");
  return stat_of(f->path, f->node);
}

void Vfs::dup_fd(int oldfd, int newfd) {
  auto f = fds_.get(oldfd);
  if (!f) return;
  struct stat st;
  if (sys::fstat(newfd, &st) == 0 && st.st_ino == f->memfd_ino) fds_.put(newfd, std::move(f));
}

void Vfs::close_range_fds(unsigned lo, unsigned hi) {
  for (int fd : fds_.marked_between(lo, hi)) (void)fds_.take(fd);
}

Result<void*> Vfs::mmap(int fd, void* addr, size_t length, int prot, int flags, off_t offset) {
  auto f = fds_.get(fd);
  if (!f) return make_error(EBADF, "not a virtual fd");
  if (f->status_flags.load(std::memory_order_relaxed) & O_PATH) return make_error(EBADF, "opened with O_PATH");
  if (f->node.kind == NodeKind::dir) return make_error(ENODEV, "directory");
  if ((flags & MAP_TYPE) == MAP_SHARED && (prot & PROT_WRITE))  // the fd is read-only, as the kernel says
    return make_error(EACCES, "shared writable mapping of a read-only file");
  if (offset < 0) return make_error(EINVAL, "negative offset");
  auto r = mm_->map(f->object, addr, length, prot, flags, static_cast<uint64_t>(offset));
  if (r) f->counters->bytes_mapped.fetch_add(length, std::memory_order_relaxed);
  return r;
}

}  // namespace mf
