// Tree: what exists below the mounts, learned from the remote and remembered for the life of the process
// (model files are immutable; every read is conditional on the ETag, so a changed object fails with
// ESTALE rather than mixing versions).
//
// Lookup of mount/a/b/c lists the parent prefix "a/b/" once (one delimited ListObjectsV2 answers stat for
// every sibling: transformers stats ~25 paths in a model folder) and answers from that listing, negative
// answers included. When listing is not possible (plain HTTP remotes) a file is found with a HEAD; a
// directory then exists only as the mount itself. A prefix with no object below it is not a directory
// (S3 has no empty directories), except the mount, which always is.
//
// Concurrency: the lock guards the maps only. A listing or HEAD runs without it, once per key however many
// threads ask (the others wait for that answer on the request's condition variable), so a slow listing of one
// folder never holds up a stat in another, nor fork.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/remote/store.hpp"
#include "core/util/lock.hpp"

namespace mf {

enum class NodeKind { file, dir };

struct Node {
  NodeKind kind = NodeKind::dir;
  ObjectInfo info;      // files: key (full router key), size, etag, last_modified
  int64_t mtime = 0;    // seconds since the epoch (Last-Modified; 0 when unknown)
};

struct DirEntry {
  std::string name;
  NodeKind kind = NodeKind::file;
};

// Parses an HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT") or ISO 8601 ("2015-10-21T07:28:00.000Z"); 0 if neither.
int64_t parse_http_time(std::string_view text);

class Tree {
 public:
  explicit Tree(ObjectStore& store) : store_(store) {}

  // key_base: the router key of the mount root, ending in '/' ("s3://bucket/prefix/"). rel: the path
  // below the mount ("" for the mount itself, no leading or trailing '/').
  Result<Node> lookup(const std::string& key_base, std::string_view rel);
  Result<std::vector<DirEntry>> list(const std::string& key_base, std::string_view rel);

  // pthread_atfork: prepare takes the lock (never held across a request, so this waits for a short critical
  // section at most); the child abandons the requests in flight (their threads are gone: the next lookup
  // of those keys asks again) and releases the lock.
  void before_fork();
  void after_fork_parent();
  void after_fork_child();

 private:
  struct Dir {
    bool exists = false;
    std::map<std::string, Node, std::less<>> children;
  };
  // One request in flight for a key (single flight): later askers wait for its answer instead of asking too.
  struct Flight {
    bool done = false;
    std::optional<Error> error;  // listing: why it failed (the Dir is in dirs_ otherwise)
    std::optional<Result<Node>> head;  // HEAD: the answer
    CondVar cv;
  };
  // The listing of dir prefix `prefix` (a router key ending in '/'), fetched once. `lock` holds mu_ on entry
  // and on return; it is released while the listing request runs. Error if listing failed.
  Result<const Dir*> dir(std::unique_lock<Mutex>& lock, const std::string& prefix, bool is_root);
  Result<Node> head(std::unique_lock<Mutex>& lock, const std::string& key);
  Dir make_dir(const Listing& listing, const std::string& prefix, bool is_root) const;

  ObjectStore& store_;
  Mutex mu_{LockRank::tree};  // guards the maps below; never held across a store request
  std::map<std::string, Dir, std::less<>> dirs_;
  std::map<std::string, Result<Node>, std::less<>> heads_;  // HEAD answers when listing failed
  std::map<std::string, std::shared_ptr<Flight>, std::less<>> dir_flights_, head_flights_;
};

}  // namespace mf
