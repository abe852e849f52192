#include "core/vfs/path.hpp"

#include <vector>

namespace mf {

std::string normalize_path(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    size_t j = i;
    while (j < path.size() && path[j] != '/') ++j;
    std::string_view part = path.substr(i, j - i);
    if (part.empty() || part == ".") {
    } else if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else {
      parts.push_back(part);
    }
    i = j;
  }
  std::string out;
  out.reserve(path.size());
  for (auto p : parts) {
    out += '/';
    out += p;
  }
  if (out.empty()) out = "/";
  return out;
}

std::string join_path(std::string_view base, std::string_view rel) {
  if (!rel.empty() && rel[0] == '/') return normalize_path(rel);
  std::string s(base);
  s += '/';
  s += rel;
  return normalize_path(s);
}

std::optional<std::string_view> path_below(std::string_view path, std::string_view mount) {
  if (path.size() < mount.size() || path.compare(0, mount.size(), mount) != 0) return std::nullopt;
  if (path.size() == mount.size()) return std::string_view{};
  if (path[mount.size()] != '/') return std::nullopt;  // "/models2" is not below "/models"
  return path.substr(mount.size() + 1);
}

bool needs_normalising(std::string_view path) {
  for (size_t i = 0; i + 1 < path.size(); ++i)
    if (path[i] == '/' && (path[i + 1] == '/' || path[i + 1] == '.')) return true;
  return !path.empty() && path.size() > 1 && path.back() == '/';
}

namespace {
bool eat(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}
bool eat_number(std::string_view& s, long* out) {
  size_t i = 0;
  long n = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i < 10) n = n * 10 + (s[i++] - '0');
  if (i == 0 || (i < s.size() && s[i] != '/') || (i > 1 && s[0] == '0')) return false;
  s.remove_prefix(i);
  *out = n;
  return true;
}
}  // namespace

std::optional<FdLink> parse_fd_link(std::string_view path, long self_pid) {
  std::string_view s = path;
  while (s.starts_with("//")) s.remove_prefix(1);
  if (eat(s, "/proc/")) {
    long pid = 0;
    if (!eat(s, "self/") && !eat(s, "thread-self/")) {
      if (!eat_number(s, &pid) || pid != self_pid || !eat(s, "/")) return std::nullopt;
    }
    long tid = 0;  // /proc/PID/task/TID/fd/N: only this process's threads are listed there
    if (eat(s, "task/") && (!eat_number(s, &tid) || !eat(s, "/"))) return std::nullopt;
    if (!eat(s, "fd/")) return std::nullopt;
  } else if (!eat(s, "/dev/fd/")) {
    return std::nullopt;
  }
  long fd = 0;
  if (!eat_number(s, &fd) || fd > 0x7fffffff) return std::nullopt;
  while (s.starts_with("/")) s.remove_prefix(1);
  return FdLink{static_cast<int>(fd), s};
}

Result<MountRemote> split_remote(std::string_view url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return make_error(EINVAL, "no scheme");
  std::string_view scheme = url.substr(0, scheme_end);
  if (scheme != "s3" && scheme != "http" && scheme != "https") return make_error(EINVAL, "unknown scheme");
  std::string_view rest = url.substr(scheme_end + 3);
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (authority.empty()) return make_error(EINVAL, "empty bucket or host");
  if (rest.find_first_of("?#") != std::string_view::npos) return make_error(EINVAL, "query or fragment");
  MountRemote out;
  out.store = std::string(url.substr(0, scheme_end + 3 + authority.size()));
  if (slash != std::string_view::npos) {
    std::string norm = normalize_path(rest.substr(slash));  // "/a/b" or "/"
    if (norm.size() > 1) {
      out.prefix.assign(norm, 1, std::string::npos);
      out.prefix.push_back('/');
    }
  }
  return out;
}

}  // namespace mf
