#include "shim/store_factory.hpp"

#include "core/remote/client.hpp"
#include "core/util/env.hpp"

namespace mf::shim {

// store_url is "s3://bucket" or "http(s)://host[:port]": keys below it are full object keys (s3) or URL
// paths (http), which is what the client expects of a remote with an empty path. AWS settings are read from
// the environment when the store is first needed (in a forked child: again, for the fresh store).
Result<std::unique_ptr<ObjectStore>> make_store(const std::string& store_url) {
  auto url = parse_remote_url(store_url);
  if (!url) return url.error();
  auto config = RemoteConfig::from_env(process_env());
  if (!config) return config.error();
  auto client = make_client(*url, *config);
  if (!client) return client.error();
  return std::unique_ptr<ObjectStore>(std::move(*client));
}

}  // namespace mf::shim
