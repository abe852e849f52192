#include "core/vfs/tree.hpp"

#include <climits>
#include <ctime>

#include "core/util/log.hpp"

namespace mf {
namespace {

int month_of(std::string_view m) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i)
    if (m == kMonths[i]) return i;
  return -1;
}

bool num(std::string_view s, size_t pos, size_t len, int* out) {
  if (pos + len > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

std::string_view parent_of(std::string_view rel) {
  size_t slash = rel.rfind('/');
  return slash == std::string_view::npos ? std::string_view{} : rel.substr(0, slash);
}

std::string_view base_of(std::string_view rel) {
  size_t slash = rel.rfind('/');
  return slash == std::string_view::npos ? rel : rel.substr(slash + 1);
}

// A name a path can reach: keys are only ever looked up from normalised local paths, so "", "." and ".."
// components (key "a/../../etc/passwd") and names longer than NAME_MAX (the kernel refuses such a path
// component) could never be opened; listing them would show entries that alias "." / ".." or a truncated
// d_name that names another file. They are left out of the tree.
bool addressable(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.size() <= NAME_MAX;
}

}  // namespace

// Hand-written rather than strptime: %a/%b follow the program's locale, and the hook may run in any.
int64_t parse_http_time(std::string_view t) {
  struct tm tm {};
  int y, mo, d, h, mi, s;
  if (num(t, 0, 4, &y) && t.size() >= 19 && t[4] == '-' && num(t, 5, 2, &mo) && num(t, 8, 2, &d) &&
      num(t, 11, 2, &h) && num(t, 14, 2, &mi) && num(t, 17, 2, &s)) {
    tm.tm_mon = mo - 1;
  } else if (t.size() >= 29 && num(t, 5, 2, &d) && num(t, 12, 4, &y) && num(t, 17, 2, &h) &&
             num(t, 20, 2, &mi) && num(t, 23, 2, &s) && month_of(t.substr(8, 3)) >= 0) {
    tm.tm_mon = month_of(t.substr(8, 3));
  } else {
    return 0;
  }
  tm.tm_year = y - 1900;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<int64_t>(timegm(&tm));
}

Tree::Dir Tree::make_dir(const Listing& listing, const std::string& prefix, bool is_root) const {
  Dir dir;
  dir.exists = is_root || !listing.objects.empty() || !listing.common_prefixes.empty();
  for (const auto& o : listing.objects) {
    if (o.key.size() <= prefix.size()) continue;  // the "folder/" marker object itself
    std::string name = o.key.substr(prefix.size());
    if (size_t slash = name.find('/'); slash != std::string::npos) {
      // A deeper key (a server that ignored the delimiter): its first component is a directory.
      if (addressable(std::string_view(name).substr(0, slash)))
        dir.children.insert_or_assign(name.substr(0, slash), Node{NodeKind::dir, {}, 0});
      continue;
    }
    if (!addressable(name)) continue;
    Node n{NodeKind::file, o, parse_http_time(o.last_modified)};
    dir.children.emplace(std::move(name), std::move(n));
  }
  for (const auto& p : listing.common_prefixes) {
    if (p.size() <= prefix.size() + 1 || p.compare(0, prefix.size(), prefix) != 0) continue;
    // Only the first component: s3rver returns "a/b/c/" for a delimited listing of "a/" when keys are
    // two levels deep; S3 returns "a/b/".
    std::string name = p.substr(prefix.size());
    name.resize(name.find('/'));
    if (!addressable(name)) continue;
    // A key "a/b" and a prefix "a/b/" can both exist; the directory wins, as in s3fs and mountpoint-s3.
    dir.children.insert_or_assign(std::move(name), Node{NodeKind::dir, {}, 0});
  }
  return dir;
}

Result<const Tree::Dir*> Tree::dir(std::unique_lock<Mutex>& lock, const std::string& prefix, bool is_root) {
  for (;;) {
    if (auto it = dirs_.find(prefix); it != dirs_.end()) return &it->second;
    if (auto f = dir_flights_.find(prefix); f != dir_flights_.end()) {
      std::shared_ptr<Flight> flight = f->second;
      flight->cv.wait(lock, [&] { return flight->done; });
      if (flight->error) return *flight->error;
      continue;  // in dirs_ now
    }
    auto flight = std::make_shared<Flight>();
    dir_flights_.emplace(prefix, flight);
    lock.unlock();
    auto listing = store_.list(prefix, true);
    std::optional<Dir> made;
    if (listing) made = make_dir(*listing, prefix, is_root);
    lock.lock();
    const Dir* out = nullptr;
    if (made) out = &dirs_.insert_or_assign(prefix, std::move(*made)).first->second;
    else flight->error = listing.error();
    flight->done = true;
    if (auto f = dir_flights_.find(prefix); f != dir_flights_.end() && f->second == flight) dir_flights_.erase(f);
    flight->cv.notify_all();
    if (!out) return listing.error();
    return out;
  }
}

Result<Node> Tree::head(std::unique_lock<Mutex>& lock, const std::string& key) {
  for (;;) {
    if (auto it = heads_.find(key); it != heads_.end()) return it->second;
    if (auto f = head_flights_.find(key); f != head_flights_.end()) {
      std::shared_ptr<Flight> flight = f->second;
      flight->cv.wait(lock, [&] { return flight->done; });
      return *flight->head;
    }
    auto flight = std::make_shared<Flight>();
    head_flights_.emplace(key, flight);
    lock.unlock();
    auto info = store_.stat(key);
    Result<Node> node = info ? Result<Node>(Node{NodeKind::file, *info, parse_http_time(info->last_modified)})
                             : Result<Node>(info.error());
    if (!info && info.error().code != ENOENT)
      MF_WARN("%s", info.error().message.c_str());  // e.g. a TLS failure: the program sees only the errno
    lock.lock();
    if (info || info.error().code == ENOENT) heads_.insert_or_assign(key, node);  // transient errors are retried
    flight->head = node;
    flight->done = true;
    if (auto f = head_flights_.find(key); f != head_flights_.end() && f->second == flight) head_flights_.erase(f);
    flight->cv.notify_all();
    return node;
  }
}

Result<Node> Tree::lookup(const std::string& key_base, std::string_view rel) {
  if (rel.empty()) return Node{NodeKind::dir, {}, 0};
  std::unique_lock lock(mu_);
  std::string_view parent = parent_of(rel);
  std::string prefix = key_base;
  if (!parent.empty()) (prefix += parent) += '/';
  auto d = dir(lock, prefix, parent.empty());
  if (d) {
    if (!(*d)->exists) return make_error(ENOENT, "no such directory");
    auto it = (*d)->children.find(base_of(rel));
    if (it == (*d)->children.end()) return make_error(ENOENT, "no such file or directory");
    return it->second;
  }
  if (d.error().code == ENOENT) return d.error();
  // No listing (plain HTTP, or a policy that allows GetObject but not ListBucket): HEAD the key.
  return head(lock, key_base + std::string(rel));
}

Result<std::vector<DirEntry>> Tree::list(const std::string& key_base, std::string_view rel) {
  std::unique_lock lock(mu_);
  std::string prefix = key_base;
  if (!rel.empty()) (prefix += rel) += '/';
  auto d = dir(lock, prefix, rel.empty());
  if (!d) {
    if (d.error().code != ENOENT) MF_WARN("%s", d.error().message.c_str());
    return d.error();
  }
  if (!(*d)->exists) return make_error(ENOENT, "no such directory");
  std::vector<DirEntry> out;
  out.reserve((*d)->children.size());
  for (const auto& [name, node] : (*d)->children) out.push_back(DirEntry{name, node.kind});
  return out;
}

void Tree::before_fork() { mu_.lock(); }
void Tree::after_fork_parent() { mu_.unlock(); }

void Tree::after_fork_child() {
  // The threads that were asking are gone: their requests will never answer here. Abandon them (leaked, not
  // destroyed: a condition variable with waiters from the parent must not be touched) so that the next
  // lookup of those keys asks again. Listings and HEAD answers already made stay.
  if (!dir_flights_.empty()) new auto(std::move(dir_flights_));
  if (!head_flights_.empty()) new auto(std::move(head_flights_));
  dir_flights_.clear();
  head_flights_.clear();
  mu_.unlock();
}

}  // namespace mf
