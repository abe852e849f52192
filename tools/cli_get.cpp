// `modelfetch get URL FILE`: parallel ranged download.
//
// `window` = MODELFETCH_MAX_CONNECTIONS + 4 part buffers (8 MiB each) are in flight, so when a part finishes
// its connection gets the next range at once while the main thread writes. The I/O thread only copies into
// a buffer and queues the buffer's index; the main thread pwrite()s it and reuses the buffer, so writes run
// on the other core in parallel with the network. Every part is conditional on the ETag from the HEAD: an
// object replaced mid-download fails with ESTALE instead of mixing two versions.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/remote/range.hpp"
#include "core/util/env.hpp"
#include "tools/cli.hpp"

namespace mf::cli {

namespace {

constexpr uint64_t kPartSize = 8ull << 20;   // 8 MiB: what the fastest S3 readers use (FACTS.md)
constexpr uint32_t kExtraInFlight = 4;       // parts queued beyond one per connection

struct Completion {
  size_t slot;
  Result<void> result;
};

class Downloader {
 public:
  Downloader(Client& client, std::string key, std::string etag, int fd)
      : client_(client), key_(std::move(key)), etag_(std::move(etag)), fd_(fd) {}

  Result<void> run(const std::vector<ByteRange>& parts, uint32_t window) {
    size_t slots = std::min<size_t>(window, parts.size());
    buffers_.resize(slots);
    ranges_.resize(slots);
    size_t next = 0, outstanding = 0;
    std::optional<Error> failure;
    for (size_t s = 0; s < slots; ++s) {
      buffers_[s] = std::unique_ptr<std::byte[]>(new std::byte[kPartSize]);  // not zeroed: fully overwritten
      issue(s, parts[next++]);
      ++outstanding;
    }
    while (outstanding > 0) {
      Completion c = wait_one();
      --outstanding;
      if (!c.result) {
        if (!failure) failure = c.result.error();
        continue;  // drain the rest before returning: their buffers must outlive them
      }
      if (failure) continue;
      const ByteRange& r = ranges_[c.slot];
      if (!write_at(buffers_[c.slot].get(), r.length, r.offset)) {
        failure = make_error(EIO, std::string("writing the output file: ") + std::strerror(errno));
        continue;
      }
      if (next < parts.size()) {
        issue(c.slot, parts[next++]);
        ++outstanding;
      }
    }
    if (failure) return *failure;
    return {};
  }

 private:
  void issue(size_t slot, ByteRange r) {
    ranges_[slot] = r;
    client_.read_async({key_, etag_, r.offset, r.length, buffers_[slot].get()}, [this, slot](Result<void> res) {
      std::lock_guard lock(mu_);
      done_.push_back({slot, std::move(res)});
      cv_.notify_one();
    });
  }

  Completion wait_one() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !done_.empty(); });
    Completion c = std::move(done_.front());
    done_.pop_front();
    return c;
  }

  bool write_at(const std::byte* p, uint64_t n, uint64_t off) {
    while (n > 0) {
      ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      p += w;
      n -= static_cast<uint64_t>(w);
      off += static_cast<uint64_t>(w);
    }
    return true;
  }

  Client& client_;
  std::string key_, etag_;
  int fd_;
  std::vector<std::unique_ptr<std::byte[]>> buffers_;
  std::vector<ByteRange> ranges_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Completion> done_;
};

}  // namespace

int cmd_get(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    std::printf("usage: modelfetch get URL FILE\n"
                "Downloads the object to FILE with parallel 8 MiB ranged GETs (MODELFETCH_MAX_CONNECTIONS at\n"
                "once) and prints the bytes and GB/s to stderr.\n");
    return kExitOk;
  }
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-' && argv[i][1] != '\0') return usage_error("get", std::string("unknown option ") + argv[i]);
    pos.emplace_back(argv[i]);
  }
  if (pos.size() != 2) return usage_error("get", "expected URL and FILE (see modelfetch get --help)");
  auto obj = open_object(pos[0]);
  if (!obj) return usage_error("get", obj.error().message);
  auto start = std::chrono::steady_clock::now();
  auto info = obj->client->stat(obj->key);
  if (!info) return remote_error(info.error());
  int fd = ::open(pos[1].c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return remote_error(make_error(errno, pos[1] + ": " + std::strerror(errno)));
  Result<void> r;
  if (::ftruncate(fd, static_cast<off_t>(info->size)) != 0) {
    r = make_error(errno, pos[1] + ": " + std::strerror(errno));
  } else {
    auto parts = split_range(0, info->size, kPartSize);
    Downloader d(*obj->client, obj->key, info->etag, fd);
    r = parts ? d.run(*parts, obj->client->config().max_connections + kExtraInFlight) : Result<void>(parts.error());
  }
  if (::close(fd) != 0 && r) r = make_error(errno, pos[1] + ": " + std::strerror(errno));
  if (!r) return remote_error(r.error());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "modelfetch: %llu bytes in %.3f s, %.3f GB/s\n", static_cast<unsigned long long>(info->size),
               secs, secs > 0 ? static_cast<double>(info->size) / secs / 1e9 : 0.0);
  return kExitOk;
}

}  // namespace mf::cli
