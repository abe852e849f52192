#include <doctest/doctest.h>

#include "core/util/env.hpp"

using namespace mf;

TEST_CASE("parse_size accepts binary units and rejects junk") {
  struct Case {
    const char* text;
    bool ok;
    uint64_t value;
  };
  const Case cases[] = {
      {"0", true, 0},
      {"4096", true, 4096},
      {"1K", true, 1024},
      {"8M", true, 8ull << 20},
      {"8m", true, 8ull << 20},
      {"8G", true, 8ull << 30},
      {"8GB", true, 8ull << 30},
      {"8GiB", true, 8ull << 30},
      {"2T", true, 2ull << 40},
      {"1.5G", true, 3ull << 29},
      {"0.5K", true, 512},
      {"", false, 0},
      {"G", false, 0},
      {"-1", false, 0},
      {"1.5", false, 0},
      {"abc", false, 0},
      {"8X", false, 0},
      {"1 G", false, 0},
      {"18446744073709551615", true, 18446744073709551615ull},
      {"18446744073709551616", false, 0},
      {"17179869184G", false, 0},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto r = parse_size(c.text);
    CHECK(r.ok() == c.ok);
    if (c.ok && r.ok()) CHECK(*r == c.value);
  }
}

TEST_CASE("env_* name the variable and the expected form") {
  auto env = map_env({{"A", "12"}, {"B", "nope"}, {"C", "yes"}, {"D", "8G"}, {"E", ""}});
  CHECK(*env_uint(env, "A", 5, 1, 100) == 12);
  CHECK(*env_uint(env, "MISSING", 5, 1, 100) == 5);
  CHECK(*env_uint(env, "E", 5, 1, 100) == 5);
  auto bad = env_uint(env, "B", 5, 1, 100);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == EINVAL);
  CHECK(bad.error().message.find("B='nope'") != std::string::npos);
  CHECK(bad.error().message.find("1 to 100") != std::string::npos);
  CHECK_FALSE(env_uint(env, "A", 5, 20, 100).ok());
  CHECK(*env_bool(env, "C", false) == true);
  CHECK_FALSE(env_bool(env, "B", false).ok());
  CHECK(*env_size(env, "D", 1) == (8ull << 30));
  auto bad_size = env_size(env, "B", 1);
  REQUIRE_FALSE(bad_size.ok());
  CHECK(bad_size.error().message.find("expected a size") != std::string::npos);
}

TEST_CASE("process_env reads environ") {
  setenv("MF_TEST_VAR", "x=y", 1);
  auto env = process_env();
  CHECK(env("MF_TEST_VAR") == std::optional<std::string>("x=y"));
  CHECK_FALSE(env("MF_TEST_VA").has_value());
  CHECK_FALSE(env("MF_TEST_VAR_LONGER").has_value());
}
