// TEST DOUBLE, linked only while core/uffd has no MappingManager (see shim/meson.build): every mapping is
// filled eagerly from the ChunkCache into private anonymous memory before mmap returns. No uffd, no threads.
#include <sys/mman.h>

#include <cerrno>
#include <map>
#include <mutex>
#include <vector>

#include "core/util/log.hpp"
#include "core/vfs/mappings.hpp"

namespace mf {

struct MappingManager::Impl {
  ChunkCache* cache;
  MapSyscalls sys;
  std::mutex mu;
  std::map<uintptr_t, size_t> regions;
  std::atomic<size_t> count{0};
  MappingStats stats;
};

MappingManager::MappingManager(ChunkCache& cache, UffdSetting, MapSyscalls sys) : impl_(new Impl) {
  impl_->cache = &cache;
  impl_->sys = sys;
}
MappingManager::~MappingManager() = default;
MapMode MappingManager::mode() const { return MapMode::eager; }

Result<void*> MappingManager::map(std::shared_ptr<const RemoteObject> object, void* addr, size_t length,
                                  int prot, int flags, uint64_t offset) {
  if (length == 0 || offset % 4096 != 0) return make_error(EINVAL, "bad mmap arguments");
  int mflags = MAP_PRIVATE | MAP_ANONYMOUS | (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_POPULATE));
  void* p = impl_->sys.mmap(addr, length, PROT_READ | PROT_WRITE, mflags, -1, 0);
  if (p == MAP_FAILED) return make_error(errno, "mmap failed");
  if (offset < object->size) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(length, object->size - offset));
    auto r = impl_->cache->read(*object, offset, std::span<std::byte>(static_cast<std::byte*>(p), n));
    if (!r) {
      impl_->sys.munmap(p, length);
      return make_error(EIO, "fill failed: " + r.error().message);
    }
  }
  if (::mprotect(p, length, prot) != 0) {
    impl_->sys.munmap(p, length);
    return make_error(EACCES, "mprotect failed");
  }
  std::lock_guard lock(impl_->mu);
  impl_->regions[reinterpret_cast<uintptr_t>(p)] = length;
  impl_->count = impl_->regions.size();
  impl_->stats.bytes_mapped += length;
  return p;
}

bool MappingManager::overlaps(const void*, size_t) const { return false; }  // eager memory is ordinary
bool MappingManager::munmap(void*, size_t, int*) { return false; }
bool MappingManager::madvise(void*, size_t, int, int*) { return false; }
bool MappingManager::mremap(void*, size_t, size_t, int, void*, void**) { return false; }
Result<void> MappingManager::fill_for_kernel(const void*, size_t) { return {}; }
void MappingManager::before_fork() {}
void MappingManager::after_fork_parent() {}
void MappingManager::after_fork_child() {}
MappingStats MappingManager::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

}  // namespace mf
