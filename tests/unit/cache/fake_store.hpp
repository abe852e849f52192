// An in-memory ObjectStore for unit tests: read_async copies on a small pool of background threads, like
// the real client's I/O thread. Delay, failures and ETag changes can be injected; requests are counted.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/remote/store.hpp"

namespace mf::test {

inline std::vector<std::byte> pattern_bytes(size_t n, uint32_t seed) {
  std::vector<std::byte> v(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v[i] = static_cast<std::byte>(x & 0xff);
    if (v[i] == std::byte{0}) v[i] = std::byte{1};  // no zero bytes: a zero-filled page can never pass
  }
  return v;
}

class FakeStore : public ObjectStore {
 public:
  explicit FakeStore(int threads = 4) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { run(); });
  }
  ~FakeStore() override {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  void put(const std::string& key, std::vector<std::byte> bytes, const std::string& etag = "\"e1\"") {
    std::lock_guard lock(mu_);
    objects_[key] = Obj{std::move(bytes), etag};
  }
  ObjectInfo info(const std::string& key) {
    std::lock_guard lock(mu_);
    const Obj& o = objects_.at(key);
    return ObjectInfo{key, o.bytes.size(), o.etag, ""};
  }

  // Injection: a delay per request, and a hook that may fail a request (return an Error).
  std::atomic<int> delay_us{0};
  std::function<std::optional<Error>(const RangeRequest&)> fail_hook;  // set before use, not while reading
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> failures{0};
  // A shared link of this many bytes per second (0 = unlimited): each request also occupies the link for
  // length / rate, serialised with the others, on top of delay_us (the per-request latency).
  std::atomic<uint64_t> bytes_per_sec{0};

  // Offsets of the requests in the order read_async received them.
  std::vector<uint64_t> request_log() {
    std::lock_guard lock(mu_);
    return log_;
  }

  Result<ObjectInfo> stat(std::string_view key) override {
    std::lock_guard lock(mu_);
    auto it = objects_.find(std::string(key));
    if (it == objects_.end()) return make_error(ENOENT, "no such key");
    return ObjectInfo{std::string(key), it->second.bytes.size(), it->second.etag, ""};
  }
  Result<Listing> list(std::string_view, bool) override { return Listing{}; }
  StoreStats stats() const override {
    StoreStats s;
    s.get_requests = requests.load();
    s.errors = failures.load();
    return s;
  }
  void read_async(RangeRequest request, ReadCallback done) override {
    requests.fetch_add(1);
    {
      std::lock_guard lock(mu_);
      log_.push_back(request.offset);
      queue_.emplace_back(std::move(request), std::move(done));
    }
    cv_.notify_one();
  }

 private:
  struct Obj {
    std::vector<std::byte> bytes;
    std::string etag;
  };

  Result<void> serve(const RangeRequest& r) {
    if (fail_hook) {
      if (auto e = fail_hook(r)) return *e;
    }
    std::lock_guard lock(mu_);
    auto it = objects_.find(r.key);
    if (it == objects_.end()) return make_error(ENOENT, "no such key");
    if (!r.etag.empty() && r.etag != it->second.etag) return make_error(ESTALE, "ETag changed");
    if (r.length == 0 || r.offset + r.length > it->second.bytes.size()) return make_error(EINVAL, "bad range");
    std::memcpy(r.dest, it->second.bytes.data() + r.offset, r.length);
    return {};
  }

  void run() {
    for (;;) {
      std::pair<RangeRequest, ReadCallback> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return quit_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(delay_us.load());
      if (const uint64_t bw = bytes_per_sec.load()) {
        std::lock_guard lock(mu_);
        const auto now = std::chrono::steady_clock::now();
        link_free_ = std::max(link_free_, now) + std::chrono::nanoseconds(job.first.length * 1000000000ull / bw);
        until = std::max(until, link_free_);
      }
      std::this_thread::sleep_until(until);
      Result<void> r = serve(job.first);
      if (!r) failures.fetch_add(1);
      job.second(std::move(r));
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Obj> objects_;
  std::deque<std::pair<RangeRequest, ReadCallback>> queue_;
  std::vector<uint64_t> log_;
  std::chrono::steady_clock::time_point link_free_{};
  bool quit_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace mf::test
