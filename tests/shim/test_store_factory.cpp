// TEST DOUBLE for the test build of the shim (libmodelfetch_localtest.so): when MODELFETCH_TEST_LOCAL_ROOT
// is set, the store for "s3://BUCKET" serves the directory $MODELFETCH_TEST_LOCAL_ROOT/BUCKET, so the shim
// tests run without a network or an S3 server. Production builds link shim/store_factory.cpp instead.
#include "shim/store_factory.hpp"
#include "core/util/env.hpp"
#include "tests/support/local_dir_store.hpp"

namespace mf::shim {

Result<std::unique_ptr<ObjectStore>> make_store(const std::string& store_url) {
  auto root = process_env()("MODELFETCH_TEST_LOCAL_ROOT");
  if (!root) return make_error(ENOTSUP, "test shim: MODELFETCH_TEST_LOCAL_ROOT is not set");
  std::string authority = store_url.substr(store_url.find("://") + 3);
  return std::unique_ptr<ObjectStore>(new test::LocalDirStore(*root + "/" + authority));
}

}  // namespace mf::shim
