// `modelfetch credentials`: runs the AWS default chain the way a mount or a CLI command would and prints
// which provider answered, whether the credentials are temporary and until when, and the region: never a
// key, secret or token. When no provider answers, the one-line reason for each, and exit status 1.
#include <cstdio>
#include <ctime>
#include <string>

#include "core/remote/config.hpp"
#include "core/remote/credentials.hpp"
#include "core/util/env.hpp"
#include "tools/cli.hpp"

namespace mf::cli {

int cmd_credentials(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    std::printf("usage: modelfetch credentials\n"
                "Resolves credentials with the AWS default chain (environment, profile, web identity, container,\n"
                "IMDS) and prints the provider that answered, the expiration and the region. Never the values.\n");
    return kExitOk;
  }
  if (argc > 1) return usage_error("credentials", "takes no arguments (see modelfetch credentials --help)");
  auto config = RemoteConfig::from_env(process_env());
  if (!config) return usage_error("credentials", config.error().message);
  std::printf("region\t%s\n", config->region.c_str());
  std::printf("endpoint\t%s\n", config->endpoint.empty() ? "(AWS)" : config->endpoint.c_str());
  if (config->no_sign) {
    std::printf("provider\tnone (anonymous: AWS_NO_SIGN_REQUEST/MODELFETCH_NO_SIGN)\n");
    return kExitOk;
  }
  auto answer = resolve_chain(config->credential_settings);
  if (!answer) return remote_error(answer.error());
  std::printf("provider\t%s\n", answer->provider.name.c_str());
  if (answer->credentials.expiration) {
    std::time_t t = SystemClock::to_time_t(*answer->credentials.expiration);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::printf("expires\t%s\n", buf);
  } else {
    std::printf("expires\tnever (static keys)\n");
  }
  return std::fflush(stdout) == 0 ? kExitOk : kExitRemote;
}

}  // namespace mf::cli
