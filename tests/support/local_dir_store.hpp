// TEST DOUBLE: an ObjectStore that serves a local directory (keys are paths below it), so core/vfs and the
// shim can be tested without a network. One worker thread completes reads, like the real client's I/O
// thread (callbacks never run on the caller's thread). ETag = "size-mtime_ns"; a conditional read of a
// file that changed fails with ESTALE, as the real store does.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "core/remote/store.hpp"
#include "core/util/thread.hpp"

namespace mf::test {

class LocalDirStore final : public ObjectStore {
 public:
  explicit LocalDirStore(std::string root) : root_(std::move(root)), worker_(start_internal_thread([this] { run(); })) {}
  ~LocalDirStore() override {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  Result<ObjectInfo> stat(std::string_view key) override {
    heads_++;
    struct stat st;
    std::string p = root_ + "/" + std::string(key);
    if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return make_error(ENOENT, "no such key");
    return info(std::string(key), st);
  }

  Result<Listing> list(std::string_view prefix, bool delimited) override {
    lists_++;
    Listing out;
    std::string pfx(prefix);
    std::string dir = pfx.substr(0, pfx.rfind('/') == std::string::npos ? 0 : pfx.rfind('/') + 1);
    walk(dir, pfx, delimited, &out);
    return out;
  }

  void read_async(RangeRequest request, ReadCallback done) override {
    {
      std::lock_guard lock(mu_);
      queue_.emplace_back(std::move(request), std::move(done));
    }
    cv_.notify_one();
  }

  StoreStats stats() const override {
    StoreStats s;
    s.get_requests = gets_;
    s.head_requests = heads_;
    s.list_requests = lists_;
    s.bytes_fetched = bytes_;
    return s;
  }

 private:
  static std::string etag_of(const struct stat& st) {
    return "\"" + std::to_string(st.st_size) + "-" + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec) + "\"";
  }
  static ObjectInfo info(std::string key, const struct stat& st) {
    char date[64];
    struct tm tm;
    gmtime_r(&st.st_mtim.tv_sec, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return ObjectInfo{std::move(key), static_cast<uint64_t>(st.st_size), etag_of(st), date};
  }

  // Lists dir (a key prefix ending in '/' or "") keeping keys that start with pfx.
  void walk(const std::string& dir, const std::string& pfx, bool delimited, Listing* out) {
    DIR* d = ::opendir((root_ + "/" + dir).c_str());
    if (!d) return;
    while (struct dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string key = dir + name;
      struct stat st;
      if (::stat((root_ + "/" + key).c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        std::string sub = key + "/";
        if (sub.compare(0, std::min(sub.size(), pfx.size()), pfx, 0, std::min(sub.size(), pfx.size())) != 0)
          continue;
        if (delimited && sub.size() >= pfx.size()) out->common_prefixes.push_back(sub);
        else walk(sub, pfx, delimited, out);
      } else if (key.compare(0, pfx.size(), pfx) == 0) {
        out->objects.push_back(info(key, st));
      }
    }
    ::closedir(d);
  }

  Result<void> serve(const RangeRequest& r) {
    std::string p = root_ + "/" + r.key;
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(ENOENT, "no such key");
    struct stat st;
    ::fstat(fd, &st);
    Result<void> out;
    if (!r.etag.empty() && r.etag != etag_of(st)) {
      out = make_error(ESTALE, "ETag changed");
    } else if (r.offset + r.length > static_cast<uint64_t>(st.st_size)) {
      out = make_error(EINVAL, "range past the end");
    } else {
      uint64_t done = 0;
      while (done < r.length) {
        ssize_t n = ::pread(fd, r.dest + done, r.length - done, static_cast<off_t>(r.offset + done));
        if (n <= 0) {
          out = make_error(EIO, "short read");
          break;
        }
        done += static_cast<uint64_t>(n);
      }
      bytes_ += done;
    }
    ::close(fd);
    return out;
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
      gets_++;
      job.second(serve(job.first));
    }
  }

  std::string root_;
  std::atomic<uint64_t> gets_{0}, heads_{0}, lists_{0}, bytes_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<RangeRequest, ReadCallback>> queue_;
  bool quit_ = false;
  std::thread worker_;
};

}  // namespace mf::test
