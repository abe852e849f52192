// The S3/HTTP client: mf::ObjectStore over one curl multi handle.
//
// Threads: none until the first request (the shim is preloaded into every child process, most of which
// never read a model). The first stat/list/read_async creates the multi handle and starts one I/O thread
// that drives every transfer; read_async callbacks run on it. stat and list submit to that same thread and
// wait, so all traffic shares one connection pool (keep-alive reuse, one DNS cache).
//
// Concurrency: at most `max_connections` transfers are handed to curl at once (the rest wait in a FIFO in
// submission order), and the multi handle's connection cache and limit are set to the same number, so each
// transfer gets its own HTTP/1.1 connection and finished ones are reused. New requests wake the I/O thread
// with curl_multi_wakeup.
//
// Failures: each attempt's outcome goes through decide_retry (retry.hpp); a retry waits its backoff in a
// timer list on the I/O thread (never sleeping it) and then rejoins the FIFO at the front. A request has an
// overall deadline (timeout_ms) covering its retries.
//
// Credentials: with config.use_chain (RemoteConfig::from_env) and an s3 remote, the first request also starts
// a CredentialManager (credential_manager.hpp): transfers wait in the queue until the chain answered, and
// fail with its EACCES message if no provider did. A transfer refused because the credentials expired
// (ExpiredToken/InvalidToken, or 401/403 past the expiration) waits, off the I/O loop's critical path, for one
// refresh and is retried once (stats: credential_retries).
//
// Shutdown: the destructor stops the I/O thread; transfers in flight, queued or waiting to retry complete
// with ECANCELED (their callbacks run before the destructor returns). A read_async after that point fails at
// once with ECANCELED on the calling thread. Calling stat/list from a read callback (the I/O thread) would
// wait on itself: it fails with EDEADLK instead.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/remote/config.hpp"
#include "core/remote/store.hpp"
#include "core/remote/url.hpp"
#include "core/util/result.hpp"

namespace mf {

class Client final : public ObjectStore {
 public:
  Client(RemoteUrl remote, RemoteConfig config);
  ~Client() override;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // HEAD (or, for a presigned http URL whose signature covers GET only, a 1-byte ranged GET).
  Result<ObjectInfo> stat(std::string_view key) override;
  // ListObjectsV2 pages with continuation-token; ENOTSUP for http(s) remotes.
  Result<Listing> list(std::string_view prefix, bool delimited) override;
  void read_async(RangeRequest request, ReadCallback done) override;
  StoreStats stats() const override;

  const RemoteUrl& remote() const;
  const RemoteConfig& config() const;
  bool io_thread_started() const;  // for tests of the lazy start
  // Which credential provider signs the requests ("environment", "profile dev (credential_process),
  // temporary", "none (anonymous: ...)", "not resolved yet" before the first request): never a value.
  std::string credential_source() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Result<std::unique_ptr<Client>> make_client(const RemoteUrl& remote, const RemoteConfig& config);

// Fork: the process-wide state of every client (the buckets' learned regions) is locked across fork by
// Vfs::before_fork, after the router's lock, and unlocked in parent and child.
void remote_before_fork();
void remote_after_fork();

}  // namespace mf
