// `modelfetch run [--remote URL] [--mount PATH] [--stats FILE] -- CMD ARGS...`: sets LD_PRELOAD to the
// libmodelfetch.so that belongs to this CLI (found from /proc/self/exe: ../lib/libmodelfetch.so and
// ../lib/<multiarch>/ when installed, ../shim/libmodelfetch.so in the build tree), sets the MODELFETCH_*
// variables given, and execs CMD. An LD_PRELOAD already set is kept after ours (a sanitizer runtime in it stays first).
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

std::string find_shim() {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return {};
  exe[n] = '\0';
  std::string dir(exe, static_cast<size_t>(n));
  dir.resize(dir.rfind('/'));
  for (const char* rel : {"/../shim/libmodelfetch.so", "/../lib/libmodelfetch.so",
                          "/../lib/x86_64-linux-gnu/libmodelfetch.so", "/../lib64/libmodelfetch.so"}) {
    std::string p = dir + rel;
    if (access(p.c_str(), R_OK) == 0) {
      char real[PATH_MAX];
      return realpath(p.c_str(), real) ? std::string(real) : p;
    }
  }
  return {};
}

// The shim goes before an LD_PRELOAD already set, except a sanitizer runtime (libasan, libtsan: a sanitized
// build's tests preload it), which must stay first in the process's library list or it refuses to start.
std::string preload_list(const std::string& shim, std::string_view old) {
  std::string first, rest;
  while (!old.empty()) {
    size_t sep = old.find_first_of(": ");
    std::string_view item = old.substr(0, sep);
    old = sep == std::string_view::npos ? std::string_view() : old.substr(sep + 1);
    if (item.empty()) continue;
    std::string_view base = item.substr(item.rfind('/') + 1);
    std::string& to = base.starts_with("libasan.") || base.starts_with("libtsan.") ? first : rest;
    to.append(item).push_back(':');
  }
  std::string out = first + shim;
  if (!rest.empty()) out += ":" + rest.substr(0, rest.size() - 1);
  return out;
}

int usage() {
  std::fprintf(stderr, "usage: modelfetch run [--remote URL] [--mount PATH] [--stats FILE] -- CMD [ARGS...]\n");
  return 2;
}

}  // namespace

namespace mf::cli {

int cmd_run(int argc, char** argv) {
  int i = 1;  // argv[0] is "run"
  for (; i < argc && std::strcmp(argv[i], "--") != 0; i += 2) {
    if (i + 1 >= argc) return usage();
    const char* var = !std::strcmp(argv[i], "--remote")  ? "MODELFETCH_REMOTE"
                      : !std::strcmp(argv[i], "--mount") ? "MODELFETCH_MOUNT"
                      : !std::strcmp(argv[i], "--stats") ? "MODELFETCH_STATS"
                                                         : nullptr;
    if (!var) return usage();
    setenv(var, argv[i + 1], 1);
  }
  if (i >= argc - 1) return usage();
  std::string shim = find_shim();
  if (shim.empty()) {
    std::fprintf(stderr, "modelfetch: cannot find libmodelfetch.so next to this program\n");
    return 1;
  }
  const char* old = std::getenv("LD_PRELOAD");
  std::string preload = preload_list(shim, old ? old : "");
  setenv("LD_PRELOAD", preload.c_str(), 1);
  execvp(argv[i + 1], argv + i + 1);
  std::fprintf(stderr, "modelfetch: cannot run %s: %s\n", argv[i + 1], std::strerror(errno));
  return 127;
}

}  // namespace mf::cli
