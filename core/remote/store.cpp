#include "core/remote/store.hpp"

#include <condition_variable>
#include <mutex>
#include <optional>

#include "core/util/lock.hpp"

namespace mf {

std::vector<Result<void>> ObjectStore::read_many(std::vector<RangeRequest> requests) {
  Mutex mu{LockRank::store_call};
  CondVar cv;
  size_t pending = requests.size();
  std::vector<std::optional<Result<void>>> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    read_async(std::move(requests[i]), [&, i](Result<void> r) {
      std::lock_guard lock(mu);
      results[i] = std::move(r);
      if (--pending == 0) cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return pending == 0; });
  std::vector<Result<void>> out;
  out.reserve(results.size());
  for (auto& r : results) out.push_back(std::move(*r));
  return out;
}

Result<void> ObjectStore::read(RangeRequest request) {
  std::vector<RangeRequest> one;
  one.push_back(std::move(request));
  return std::move(read_many(std::move(one)).front());
}

}  // namespace mf
