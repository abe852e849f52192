// Shared pieces of the modelfetch CLI. Each subcommand is one function `int cmd_X(int argc, char** argv)`
// (argv[0] is the subcommand's name) listed in the table in modelfetch.cpp; adding one (e.g. `run`) is a new
// function and a new row. Exit codes: 0 success, 1 a remote error, 2 bad usage (including a malformed URL or
// environment variable).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/remote/client.hpp"
#include "core/util/result.hpp"

namespace mf::cli {

constexpr int kExitOk = 0;
constexpr int kExitRemote = 1;
constexpr int kExitUsage = 2;

// "modelfetch CMD: MESSAGE" (or "modelfetch: MESSAGE" when cmd is empty) on stderr, one line.
void print_error(std::string_view cmd, std::string_view message);
int usage_error(std::string_view cmd, std::string_view message);  // prints and returns kExitUsage
int remote_error(const Error& e);                                  // prints and returns kExitRemote
bool wants_help(int argc, char** argv);

// A client for the remote that `url` names and the key below it (see split_object_url). Errors are usage
// errors: a malformed URL or environment variable.
struct Opened {
  std::unique_ptr<Client> client;
  std::string key;
};
Result<Opened> open_object(std::string_view url);
Result<std::unique_ptr<Client>> open_remote(std::string_view url, std::string* prefix);

int cmd_ls(int argc, char** argv);
int cmd_stat(int argc, char** argv);
int cmd_cat(int argc, char** argv);
int cmd_get(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_credentials(int argc, char** argv);

}  // namespace mf::cli
