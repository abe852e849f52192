#include "shim/store_factory.hpp"

#if __has_include("core/remote/client.hpp")
#include "core/remote/client.hpp"
#define MF_HAVE_CLIENT 1
#endif

namespace mf::shim {

Result<std::unique_ptr<ObjectStore>> make_store(const std::string& store_url) {
#ifdef MF_HAVE_CLIENT
  return make_client(store_url);
#else
  return make_error(ENOTSUP, "this build has no remote client (core/remote/client.hpp) for " + store_url);
#endif
}

}  // namespace mf::shim
