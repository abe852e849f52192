// How the shim creates the store for a remote ("s3://bucket", "https://host"). One definition is linked
// into libmodelfetch.so (store_factory.cpp: the real S3/HTTP client); the test build of the shim links
// tests/shim/test_store_factory.cpp instead, which also serves file:// remotes from a local directory.
#pragma once

#include <memory>
#include <string>

#include "core/remote/store.hpp"

namespace mf::shim {
Result<std::unique_ptr<ObjectStore>> make_store(const std::string& store_url);
}
