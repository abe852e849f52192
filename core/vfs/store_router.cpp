#include "core/vfs/store_router.hpp"

namespace mf {

StoreRouter::~StoreRouter() = default;

Result<ObjectStore*> StoreRouter::route(std::string_view full, std::string_view* key, std::string* store_url) {
  size_t scheme = full.find("://");
  size_t slash = scheme == std::string_view::npos ? scheme : full.find('/', scheme + 3);
  if (slash == std::string_view::npos) return make_error(EINVAL, "key without a store");
  std::string_view url = full.substr(0, slash);
  *key = full.substr(slash + 1);
  if (store_url) *store_url = std::string(url);
  std::lock_guard lock(mu_);
  auto it = stores_.find(url);
  if (it != stores_.end()) return it->second.get();
  auto made = factory_(std::string(url));
  if (!made) return made.error();
  ObjectStore* raw = made->get();
  stores_.emplace(std::string(url), std::move(*made));
  return raw;
}

Result<ObjectInfo> StoreRouter::stat(std::string_view full) {
  std::string_view key;
  std::string url;
  auto store = route(full, &key, &url);
  if (!store) return store.error();
  auto info = (*store)->stat(key);
  if (info) info->key = url + "/" + info->key;
  return info;
}

Result<Listing> StoreRouter::list(std::string_view full, bool delimited) {
  std::string_view key;
  std::string url;
  auto store = route(full, &key, &url);
  if (!store) return store.error();
  auto listing = (*store)->list(key, delimited);
  if (!listing) return listing;
  for (auto& o : listing->objects) o.key = url + "/" + o.key;
  for (auto& p : listing->common_prefixes) p = url + "/" + p;
  return listing;
}

void StoreRouter::read_async(RangeRequest request, ReadCallback done) {
  std::string_view key;
  auto store = route(request.key, &key, nullptr);
  if (!store) return done(store.error());
  request.key = std::string(key);
  (*store)->read_async(std::move(request), std::move(done));
}

namespace {
void add(StoreStats& sum, const StoreStats& s) {
  sum.get_requests += s.get_requests;
  sum.head_requests += s.head_requests;
  sum.list_requests += s.list_requests;
  sum.bytes_fetched += s.bytes_fetched;
  sum.retries += s.retries;
  sum.errors += s.errors;
}
}  // namespace

StoreStats StoreRouter::sum_locked() const {
  StoreStats sum = abandoned_;
  for (const auto& entry : stores_) add(sum, entry.second->stats());
  return sum;
}

StoreStats StoreRouter::stats() const {
  std::lock_guard lock(mu_);
  return sum_locked();
}

// The totals are taken before fork, while the stores' threads still run (a store's stats() may take a lock
// that one of its threads holds; in the child that lock could never be released).
void StoreRouter::before_fork() {
  mu_.lock();
  at_fork_ = sum_locked();
}
void StoreRouter::after_fork_parent() { mu_.unlock(); }

void StoreRouter::after_fork_child() {
  for (auto& entry : stores_) (void)entry.second.release();  // threads gone: never destroy (would join them)
  stores_.clear();
  abandoned_ = at_fork_;
  mu_.unlock();
}

}  // namespace mf
