// modelfetch CLI: subcommands are added by the remote-client work (ls, stat, cat, get) and the shim (run).
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    std::fprintf(stderr, "usage: modelfetch COMMAND [ARGS]\n");
    return argc < 2 ? 2 : 0;
  }
  std::fprintf(stderr, "modelfetch: unknown command '%s' (see modelfetch --help)\n", argv[1]);
  return 2;
}
