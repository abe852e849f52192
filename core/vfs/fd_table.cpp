#include "core/vfs/fd_table.hpp"

#include "core/vfs/sys.hpp"

namespace mf {

void FdTable::set_bit(int fd, bool on) {
  if (fd < kBitmapFds) {
    uint64_t bit = uint64_t{1} << (fd % 64);
    if (on) bits_[fd / 64].fetch_or(bit, std::memory_order_relaxed);
    else bits_[fd / 64].fetch_and(~bit, std::memory_order_relaxed);
  } else {
    if (on) high_.fetch_add(1, std::memory_order_relaxed);
    else high_.fetch_sub(1, std::memory_order_relaxed);
  }
}

bool FdTable::high_marked(int fd) const {
  std::lock_guard lock(mu_);
  return files_.count(fd) != 0;
}

void FdTable::put(int fd, std::shared_ptr<OpenFile> file) {
  std::lock_guard lock(mu_);
  auto [it, fresh] = files_.insert_or_assign(fd, std::move(file));
  if (fresh) set_bit(fd, true);
}

std::shared_ptr<OpenFile> FdTable::take(int fd) {
  std::lock_guard lock(mu_);
  auto it = files_.find(fd);
  if (it == files_.end()) {
    if (fd >= 0 && fd < kBitmapFds) set_bit(fd, false);
    return nullptr;
  }
  auto file = std::move(it->second);
  files_.erase(it);
  set_bit(fd, false);
  return file;
}

std::shared_ptr<OpenFile> FdTable::get(int fd) {
  std::shared_ptr<OpenFile> file;
  {
    std::lock_guard lock(mu_);
    auto it = files_.find(fd);
    if (it != files_.end()) file = it->second;
  }
  if (!file) return take(fd);  // clears a stray bit
  struct stat st;
  if (sys::fstat(fd, &st) != 0 || st.st_dev != file->memfd_dev || st.st_ino != file->memfd_ino) {
    take(fd);
    return nullptr;
  }
  return file;
}

std::vector<int> FdTable::marked_between(unsigned lo, unsigned hi) {
  std::lock_guard lock(mu_);
  std::vector<int> out;
  for (const auto& entry : files_)
    if (static_cast<unsigned>(entry.first) >= lo && static_cast<unsigned>(entry.first) <= hi)
      out.push_back(entry.first);
  return out;
}

}  // namespace mf
