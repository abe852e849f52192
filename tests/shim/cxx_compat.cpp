// C++ std::ifstream over a mounted file (libstdc++ reads through read(fileno(FILE*))).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

static std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    std::cerr << "cannot open " << p << "\n";
    std::exit(1);
  }
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int main() {
  std::string l = std::getenv("MF_LOCAL_DIR"), m = std::getenv("MF_MOUNT_DIR");
  for (const char* n : {"odd.bin", "chunks.bin", "config.json"}) {
    if (slurp(l + "/" + n) != slurp(m + "/" + n)) {
      std::cerr << "ifstream bytes differ for " << n << "\n";
      return 1;
    }
  }
  std::ifstream in(m + "/chunks.bin", std::ios::binary);
  in.seekg(2 << 20);
  char c[100];
  in.read(c, 100);
  std::string want = slurp(l + "/chunks.bin").substr(2 << 20, 100);
  if (std::string(c, 100) != want) return std::cerr << "seekg/read differ\n", 1;
  std::cout << "ok cxx_compat\n";
  return 0;
}
