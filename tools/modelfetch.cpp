// modelfetch CLI: a table of subcommands, one function each (cli_remote.cpp: ls, stat, cat, get).
#include <cstdio>
#include <cstring>

#include "core/util/log.hpp"
#include "tools/cli.hpp"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

constexpr Command kCommands[] = {
    {"ls", "list objects under an s3:// prefix (SIZE<TAB>KEY)", mf::cli::cmd_ls},
    {"stat", "size, ETag and Last-Modified of one object", mf::cli::cmd_stat},
    {"cat", "write an object (or a byte range of it) to stdout", mf::cli::cmd_cat},
    {"get", "download an object to a file with parallel ranged GETs", mf::cli::cmd_get},
    {"credentials", "which credential provider answers (never the values)", mf::cli::cmd_credentials},
    {"run", "run CMD with LD_PRELOAD=libmodelfetch.so and the mount set", mf::cli::cmd_run},
};

void print_usage(FILE* out) {
  std::fprintf(out, "usage: modelfetch [--debug] COMMAND [ARGS]   (modelfetch COMMAND --help for details)\n\n"
                    "commands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-11s %s\n", c.name, c.summary);
  std::fprintf(out,
               "\nremotes: s3://BUCKET/KEY (credentials from the AWS default chain: environment, profile, web identity,\n"
               "container, IMDS; AWS_NO_SIGN_REQUEST=true for public buckets) or\n"
               "http(s)://HOST/PATH (HEAD and ranged GET only). Exit status: 0 ok, 1 remote error, 2 bad usage.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--debug") == 0) {  // MODELFETCH_LOG=debug for this run
    mf::set_log_level(mf::LogLevel::debug);
    argv[1] = argv[0];
    --argc;
    ++argv;
  }
  if (argc < 2) {
    print_usage(stderr);
    return mf::cli::kExitUsage;
  }
  if (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "help") == 0) {
    print_usage(stdout);
    return mf::cli::kExitOk;
  }
  for (const Command& c : kCommands)
    if (std::strcmp(argv[1], c.name) == 0) return c.run(argc - 1, argv + 1);
  std::fprintf(stderr, "modelfetch: unknown command '%s' (see modelfetch --help)\n", argv[1]);
  return mf::cli::kExitUsage;
}
