// ls, stat, cat: thin layers over mf::Client (get is in cli_get.cpp).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "core/remote/range.hpp"
#include "core/util/env.hpp"
#include "tools/cli.hpp"

namespace mf::cli {

namespace {

constexpr uint64_t kPartSize = 8ull << 20;  // 8 MiB: what the fastest S3 readers use (FACTS.md)

bool write_all(int fd, const std::byte* p, uint64_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<uint64_t>(w);
  }
  return true;
}

// Parses "--name VALUE" options; positional arguments go to `pos`. Returns an error message or "".
std::string parse_args(int argc, char** argv, std::vector<std::string>* pos,
                       std::vector<std::pair<std::string, std::string*>> opts) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() > 1 && a[0] == '-') {
      bool known = false;
      for (auto& [name, out] : opts) {
        if (a != name) continue;
        if (i + 1 >= argc) return a + " needs a value";
        *out = argv[++i];
        known = true;
      }
      if (!known) return "unknown option " + a;
    } else {
      pos->push_back(std::move(a));
    }
  }
  return {};
}

}  // namespace

int cmd_ls(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    std::printf("usage: modelfetch ls s3://BUCKET[/PREFIX] [--delimited]\n"
                "Lists objects under PREFIX, one a line: SIZE<TAB>KEY. With --delimited, only one level:\n"
                "sub-folders are printed as -<TAB>PREFIX/.\n");
    return kExitOk;
  }
  std::vector<std::string> pos;
  bool delimited = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--delimited") == 0) delimited = true;
    else if (argv[i][0] == '-') return usage_error("ls", std::string("unknown option ") + argv[i]);
    else pos.emplace_back(argv[i]);
  }
  if (pos.size() != 1) return usage_error("ls", "expected one URL (see modelfetch ls --help)");
  std::string prefix;
  auto client = open_remote(pos[0], &prefix);
  if (!client) return usage_error("ls", client.error().message);
  auto listing = (*client)->list(prefix, delimited);
  if (!listing) return remote_error(listing.error());
  for (const std::string& p : listing->common_prefixes) std::printf("-\t%s\n", p.c_str());
  for (const ObjectInfo& o : listing->objects)
    std::printf("%llu\t%s\n", static_cast<unsigned long long>(o.size), o.key.c_str());
  return std::fflush(stdout) == 0 ? kExitOk : kExitRemote;
}

int cmd_stat(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    std::printf("usage: modelfetch stat URL\nPrints size, etag and last-modified of one object, and which credential\n"
                "provider signed the request (never the values).\n");
    return kExitOk;
  }
  std::vector<std::string> pos;
  if (auto e = parse_args(argc, argv, &pos, {}); !e.empty()) return usage_error("stat", e);
  if (pos.size() != 1) return usage_error("stat", "expected one URL (see modelfetch stat --help)");
  auto obj = open_object(pos[0]);
  if (!obj) return usage_error("stat", obj.error().message);
  auto info = obj->client->stat(obj->key);
  if (!info) return remote_error(info.error());
  std::printf("size\t%llu\netag\t%s\nlast-modified\t%s\ncredentials\t%s\n",
              static_cast<unsigned long long>(info->size), info->etag.c_str(), info->last_modified.c_str(),
              obj->client->credential_source().c_str());
  return std::fflush(stdout) == 0 ? kExitOk : kExitRemote;
}

int cmd_cat(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    std::printf("usage: modelfetch cat URL [--offset N] [--length N]\n"
                "Writes the object's bytes [N, N+LENGTH) to stdout (sizes accept K/M/G suffixes).\n");
    return kExitOk;
  }
  std::vector<std::string> pos;
  std::string off_text, len_text;
  if (auto e = parse_args(argc, argv, &pos, {{"--offset", &off_text}, {"--length", &len_text}}); !e.empty())
    return usage_error("cat", e);
  if (pos.size() != 1) return usage_error("cat", "expected one URL (see modelfetch cat --help)");
  uint64_t offset = 0, length = 0;
  if (!off_text.empty()) {
    auto v = parse_size(off_text);
    if (!v) return usage_error("cat", "--offset '" + off_text + "': expected a byte count like 4096 or 8M");
    offset = *v;
  }
  if (!len_text.empty()) {
    auto v = parse_size(len_text);
    if (!v) return usage_error("cat", "--length '" + len_text + "': expected a byte count like 4096 or 8M");
    length = *v;
  }
  auto obj = open_object(pos[0]);
  if (!obj) return usage_error("cat", obj.error().message);
  std::string etag;
  if (len_text.empty()) {  // to the end: the size comes from a HEAD (an explicit range goes straight out)
    auto info = obj->client->stat(obj->key);
    if (!info) return remote_error(info.error());
    if (offset > info->size) return remote_error(make_error(EINVAL, "--offset is past the end of the object"));
    length = info->size - offset;
    etag = info->etag;
  }
  if (length == 0) return kExitOk;
  auto parts = split_range(offset, length, kPartSize);
  if (!parts) return usage_error("cat", parts.error().message);
  std::vector<std::byte> buf(std::min<uint64_t>(length, kPartSize));
  for (const ByteRange& p : *parts) {  // sequential: stdout is ordered; `get` is the fast path
    auto r = obj->client->read({obj->key, etag, p.offset, p.length, buf.data()});
    if (!r) return remote_error(r.error());
    if (!write_all(STDOUT_FILENO, buf.data(), p.length))
      return remote_error(make_error(EIO, std::string("writing to stdout: ") + std::strerror(errno)));
  }
  return kExitOk;
}

}  // namespace mf::cli
