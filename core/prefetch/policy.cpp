// Prefetch policies: see policy.hpp for the algorithm and the constants.
#include "core/prefetch/policy.hpp"

#include <algorithm>

namespace mf {

std::string_view policy_name(PrefetchPolicy p) {
  switch (p) {
    case PrefetchPolicy::none: return "none";
    case PrefetchPolicy::sequential: return "sequential";
    case PrefetchPolicy::safetensors: return "safetensors";
  }
  return "?";
}

Result<PrefetchConfig> parse_prefetch_config(const EnvLookup& env) {
  PrefetchConfig c;
  if (auto v = env("MODELFETCH_PREFETCH"); v && !v->empty()) {
    if (*v == "none") c.policy = PrefetchPolicy::none;
    else if (*v == "sequential") c.policy = PrefetchPolicy::sequential;
    else if (*v == "safetensors") c.policy = PrefetchPolicy::safetensors;
    else return make_error(EINVAL, "MODELFETCH_PREFETCH='" + *v + "': expected none, sequential or safetensors");
  }
  auto conns = env_uint(env, "MODELFETCH_MAX_CONNECTIONS", 16, 1, 256);
  if (!conns) conns = uint64_t{16};  // the remote client reports that variable's errors
  auto threads = env_uint(env, "MODELFETCH_THREADS", c.threads, 1, 64);
  if (!threads) return threads.error();
  auto inflight = env_uint(env, "MODELFETCH_MAX_INFLIGHT", std::max<uint64_t>(1, *conns > 2 ? *conns - 2 : 1), 1, 256);
  if (!inflight) return inflight.error();
  auto files = env_uint(env, "MODELFETCH_LOOKAHEAD_FILES", c.lookahead_files, 0, 64);
  if (!files) return files.error();
  c.threads = static_cast<uint32_t>(*threads);
  c.max_inflight = static_cast<uint32_t>(*inflight);
  c.lookahead_files = static_cast<uint32_t>(*files);
  return c;
}

SequentialWindow::Range SequentialWindow::on_read(uint64_t offset, uint64_t length, uint64_t file_size) {
  const uint64_t end = std::min(file_size, offset + length);
  const bool jump = window_ == 0 || offset > next_ + kMaxForwardJump || offset + kMaxBackwardJump < next_;
  next_ = std::max(offset, end);
  Range r;
  if (jump) {
    window_ = kInitialWindow;
    r.begin = end;
  } else if (end + window_ / 2 >= asked_end_) {  // half of what was asked is consumed: double and extend
    window_ = std::min(cap_, window_ * 2);
    r.begin = std::max(end, asked_end_);
  } else {
    return Range{end, end};
  }
  r.end = std::min(file_size, end + window_);
  if (r.end < r.begin) r.end = r.begin;
  asked_end_ = std::max(jump ? 0 : asked_end_, r.end);
  if (jump) asked_end_ = r.end;
  return r;
}

std::vector<std::string> lookahead_files(const std::vector<std::string>& shards, std::string_view current,
                                         uint32_t n) {
  auto it = std::find(shards.begin(), shards.end(), current);
  if (it == shards.end()) return {};
  std::vector<std::string> out;
  for (++it; it != shards.end() && out.size() < n; ++it) out.push_back(*it);
  return out;
}

static bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_safetensors_path(std::string_view path) { return ends_with(path, ".safetensors"); }
bool is_index_path(std::string_view path) { return ends_with(path, ".safetensors.index.json"); }

}  // namespace mf
