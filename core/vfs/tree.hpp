// Tree: what exists below the mounts, learned from the remote and remembered for the life of the process
// (model files are immutable; every read is conditional on the ETag, so a changed object fails with
// ESTALE rather than mixing versions).
//
// Lookup of mount/a/b/c lists the parent prefix "a/b/" once (one delimited ListObjectsV2 answers stat for
// every sibling: transformers stats ~25 paths in a model folder) and answers from that listing, negative
// answers included. When listing is not possible (plain HTTP remotes) a file is found with a HEAD; a
// directory then exists only as the mount itself. A prefix with no object below it is not a directory
// (S3 has no empty directories), except the mount, which always is.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/remote/store.hpp"

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

 private:
  struct Dir {
    bool exists = false;
    std::map<std::string, Node, std::less<>> children;
  };
  // The listing of dir prefix `prefix` (a router key ending in '/'), fetched once. Error if listing failed.
  Result<const Dir*> dir_locked(const std::string& prefix, bool is_root);

  ObjectStore& store_;
  std::mutex mu_;  // held across the remote call: concurrent lookups of one folder wait for one listing
  std::map<std::string, Dir, std::less<>> dirs_;
  std::map<std::string, Result<Node>, std::less<>> heads_;  // HEAD answers when listing failed
};

}  // namespace mf
