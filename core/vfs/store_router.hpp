// StoreRouter: one ObjectStore over every remote the mounts name, so the single ChunkCache (which talks to
// one store) serves all mounts. Keys given to the router are "<store-url>/<key>", e.g.
// "s3://bucket/llama/model.safetensors"; the router creates the store for "s3://bucket" through the
// injected factory on first use (no thread, no connection before a mounted path is touched) and passes
// it "llama/model.safetensors".
//
// Fork: the stores' I/O threads and curl handles do not exist in a child. after_fork_child() abandons them
// (deliberately leaked: destroying them would join threads that are gone) and the next request creates
// fresh ones. The router's mutex is held across fork by before_fork() so the child inherits it unlocked
// and consistent.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/remote/store.hpp"
#include "core/util/lock.hpp"

namespace mf {

using StoreFactory = std::function<Result<std::unique_ptr<ObjectStore>>(const std::string& store_url)>;

class StoreRouter final : public ObjectStore {
 public:
  explicit StoreRouter(StoreFactory factory) : factory_(std::move(factory)) {}
  ~StoreRouter() override;

  Result<ObjectInfo> stat(std::string_view key) override;
  Result<Listing> list(std::string_view prefix, bool delimited) override;
  void read_async(RangeRequest request, ReadCallback done) override;
  StoreStats stats() const override;

  void before_fork();
  void after_fork_parent();
  void after_fork_child();

 private:
  // Splits "scheme://authority/key" and returns the store (created on first use) and the key part.
  Result<ObjectStore*> route(std::string_view full, std::string_view* key, std::string* store_url);

  StoreFactory factory_;
  mutable Mutex mu_{LockRank::router};
  std::map<std::string, std::unique_ptr<ObjectStore>, std::less<>> stores_;
  StoreStats sum_locked() const;
  StoreStats abandoned_;  // totals of the stores a fork left behind, so the child's stats stay cumulative
  StoreStats at_fork_;    // totals taken in before_fork
};

}  // namespace mf
