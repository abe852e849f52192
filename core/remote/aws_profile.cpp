#include "core/remote/aws_profile.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace mf {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

Result<IniFile> parse_ini(std::string_view text, std::string_view name) {
  IniFile out;
  IniSection* current = nullptr;
  std::string parent;  // a key whose value was empty: indented lines below it are its sub-settings
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    auto bad = [&](const char* what) {
      return make_error(EINVAL, std::string(name) + " line " + std::to_string(line_no) + ": " + what);
    };
    bool indented = !raw.empty() && (raw.front() == ' ' || raw.front() == '\t');
    std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') return bad("a section header must end with ']'");
      std::string_view section = trim(line.substr(1, line.size() - 2));
      if (section.empty()) return bad("empty section name");
      current = &out[std::string(section)];
      parent.clear();
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return bad("expected 'key = value' or '[section]'");
    if (current == nullptr) return bad("a setting before the first [section]");
    std::string key = lower(trim(line.substr(0, eq)));
    std::string_view value = trim(line.substr(eq + 1));
    if (key.empty()) return bad("a setting without a name");
    if (indented && !parent.empty()) {
      (*current)[parent + "." + key] = std::string(value);
      continue;
    }
    parent = value.empty() ? key : std::string();
    (*current)[key] = std::string(value);
  }
  return out;
}

// Raw system calls: from_env may run inside one of the shim's hooks on a program thread (the store is made
// when a mounted path is first used), where going through the hooked open/read again is best avoided.
Result<std::string> read_small_file(const std::string& path, size_t cap) {
  int fd = static_cast<int>(::syscall(SYS_openat, AT_FDCWD, path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) {
    int e = errno;
    return make_error(e, path + ": " + std::strerror(e));
  }
  struct stat st {};
  if (::syscall(SYS_fstat, fd, &st) != 0 || !S_ISREG(st.st_mode)) {  // never a FIFO or a device that blocks
    ::syscall(SYS_close, fd);
    return make_error(EINVAL, path + ": not a regular file");
  }
  std::string data;
  char buf[8192];
  for (;;) {
    ssize_t n = ::syscall(SYS_read, fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::syscall(SYS_close, fd);
      return make_error(e, path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    if (data.size() + static_cast<size_t>(n) > cap) {
      ::syscall(SYS_close, fd);
      return make_error(EFBIG, path + ": larger than " + std::to_string(cap) + " bytes");
    }
    data.append(buf, static_cast<size_t>(n));
  }
  ::syscall(SYS_close, fd);
  return data;
}

AwsProfile load_aws_profile(const std::string& credentials_path, const std::string& config_path,
                            const std::string& profile) {
  AwsProfile p;
  p.name = profile;
  p.files = credentials_path + ", " + config_path;
  auto load = [&](const std::string& path, bool is_config) {
    if (path.empty()) return;
    auto text = read_small_file(path);
    if (!text) {
      if (text.error().code != ENOENT && p.error.empty()) p.error = text.error().message;
      return;
    }
    auto ini = parse_ini(*text, path);
    if (!ini) {
      if (p.error.empty()) p.error = ini.error().message;
      return;
    }
    std::string section = !is_config || profile == "default" ? profile : "profile " + profile;
    auto it = ini->find(section);
    if (it == ini->end() && is_config && profile == "default") it = ini->find("profile default");
    if (it == ini->end()) return;
    p.found = true;
    for (auto& [k, v] : it->second) p.settings[k] = v;  // the credentials file is loaded second: it wins
  };
  load(config_path, true);
  load(credentials_path, false);
  return p;
}

}  // namespace mf
