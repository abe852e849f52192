// The "ways to read a file" suite, C++ part: every test object under MF_MOUNT_DIR read with std::ifstream
// (whole with istreambuf_iterator, in blocks with read(), and seekg + read at offsets across chunk edges),
// compared with the same file under MF_LOCAL_DIR. One "FAIL method file: why" line per failure, a summary,
// exit 1 on any failure.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

namespace fs = std::filesystem;

static int failures = 0;

static void fail(const std::string& method, const std::string& rel, const std::string& why) {
  ++failures;
  std::cout << "FAIL " << method << " " << rel << ": " << why << std::endl;
}

static std::string describe(const std::string& got, const std::string& want) {
  size_t i = 0, n = std::min(got.size(), want.size());
  while (i < n && got[i] == want[i]) ++i;
  bool zeros = i < got.size() && got.find_first_not_of('\0', i) == std::string::npos;
  return "got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
         "; first difference at " + std::to_string(i) + (zeros ? " (zeros from there to the end)" : "");
}

int main() {
  const char* l = std::getenv("MF_LOCAL_DIR");
  const char* m = std::getenv("MF_MOUNT_DIR");
  if (!l || !m) return std::cerr << "MF_LOCAL_DIR and MF_MOUNT_DIR must be set (harness.py)\n", 2;
  std::vector<std::string> rels;
  for (auto& e : fs::recursive_directory_iterator(l))
    if (e.is_regular_file()) rels.push_back(fs::relative(e.path(), l).string());
  int checks = 0;
  for (const auto& rel : rels) {
    std::ifstream lf(std::string(l) + "/" + rel, std::ios::binary);
    std::string want((std::istreambuf_iterator<char>(lf)), {});
    std::string p = std::string(m) + "/" + rel;
    ++checks;
    {
      std::ifstream in(p, std::ios::binary);
      if (!in) {
        fail("ifstream", rel, "cannot open");
        continue;
      }
      std::string got((std::istreambuf_iterator<char>(in)), {});
      if (got != want) fail("ifstream-iterator", rel, describe(got, want));
    }
    {
      std::ifstream in(p, std::ios::binary);
      std::string got;
      std::vector<char> buf(65537);
      while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0)
        got.append(buf.data(), static_cast<size_t>(in.gcount()));
      if (got != want) fail("ifstream-read", rel, describe(got, want));
    }
    {
      std::ifstream in(p, std::ios::binary);
      in.seekg(0, std::ios::end);
      if (static_cast<size_t>(in.tellg()) != want.size())
        fail("ifstream-seekg", rel, "tellg at the end " + std::to_string(in.tellg()));
      for (size_t off : {size_t{4096}, size_t{(1 << 20) - 7}, size_t{(8 << 20) - 3}, want.size() / 2}) {
        if (off >= want.size()) continue;
        in.clear();
        in.seekg(static_cast<std::streamoff>(off));
        std::string got(5000, '\0');
        in.read(got.data(), 5000);
        got.resize(static_cast<size_t>(in.gcount()));
        std::string w = want.substr(off, 5000);
        if (got != w) fail("ifstream-seekg", rel, "at " + std::to_string(off) + ": " + describe(got, w));
      }
    }
  }
  std::cout << "ways (C++): ifstream x " << checks << " files, " << failures << " failures" << std::endl;
  return failures ? 1 : 0;
}
