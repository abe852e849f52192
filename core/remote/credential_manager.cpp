#include "core/remote/credential_manager.hpp"

#include <algorithm>

#include "core/util/log.hpp"
#include "core/util/thread.hpp"

namespace mf {

namespace {

using std::chrono::seconds;

// When to refresh credentials expiring at `exp`, seen at `now`.
SystemClock::time_point refresh_time(SystemClock::time_point now, SystemClock::time_point exp, uint64_t ahead_s) {
  if (exp <= now) return now;
  auto left = exp - now;
  auto lead = std::min<SystemClock::duration>(seconds(ahead_s), left / 2);
  return exp - lead;
}

// After a failed refresh: try again soon, sooner as the expiration nears.
SystemClock::time_point retry_time(SystemClock::time_point now, std::optional<SystemClock::time_point> exp) {
  SystemClock::duration wait = seconds(30);
  if (exp && *exp > now) wait = std::min<SystemClock::duration>(wait, (*exp - now) / 4);
  return now + std::max<SystemClock::duration>(wait, seconds(1));
}

}  // namespace

CredentialManager::CredentialManager(CredentialSettings settings, uint64_t refresh_ahead_s,
                                     std::function<void()> on_change)
    : settings_(std::move(settings)), refresh_ahead_s_(refresh_ahead_s), on_change_(std::move(on_change)) {}

CredentialManager::~CredentialManager() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CredentialManager::start() {
  thread_ = start_internal_thread([this] { loop(); });
}

CredentialManager::Snapshot CredentialManager::current() const {
  std::lock_guard lock(mu_);
  return snap_;
}

std::string CredentialManager::source() const {
  std::lock_guard lock(mu_);
  return source_;
}

uint64_t CredentialManager::attempts() const {
  std::lock_guard lock(mu_);
  return attempts_;
}

bool CredentialManager::reject(uint64_t generation) {
  {
    std::lock_guard lock(mu_);
    if (snap_.state != State::ready) return false;
    if (!snap_.credentials->expiration) return false;  // static keys: asking again gives the same ones
    if (snap_.generation == generation) refresh_requested_ = true;
  }
  cv_.notify_all();
  return true;
}

void CredentialManager::fetch_initial() {
  auto answer = resolve_chain(settings_);
  std::lock_guard lock(mu_);
  ++attempts_;
  if (!answer) {
    snap_.state = State::failed;
    snap_.error = answer.error();
    MF_DEBUG("credentials: %s", answer.error().message.c_str());
    return;
  }
  provider_ = std::move(answer->provider);
  source_ = provider_->name;
  auto creds = std::make_shared<const TimedCredentials>(std::move(answer->credentials));
  if (creds->expiration) next_refresh_ = refresh_time(SystemClock::now(), *creds->expiration, refresh_ahead_s_);
  snap_.state = State::ready;
  snap_.credentials = std::move(creds);
  snap_.generation++;
  MF_DEBUG("credentials: from %s%s", source_.c_str(), snap_.credentials->expiration ? " (temporary)" : "");
}

void CredentialManager::refresh() {
  auto fresh = provider_->fetch();  // outside the lock: requests keep signing with the current ones
  std::lock_guard lock(mu_);
  ++attempts_;
  auto now = SystemClock::now();
  if (!fresh) {
    next_refresh_ = retry_time(now, snap_.credentials->expiration);
    MF_WARN("credentials: refreshing from %s failed (the current ones are kept): %s", source_.c_str(),
            fresh.error().message.c_str());
    return;
  }
  auto creds = std::make_shared<const TimedCredentials>(std::move(*fresh));
  next_refresh_ = creds->expiration ? refresh_time(now, *creds->expiration, refresh_ahead_s_)
                                    : SystemClock::time_point::max();
  snap_.credentials = std::move(creds);
  snap_.generation++;
  MF_DEBUG("credentials: refreshed from %s", source_.c_str());
}

void CredentialManager::loop() {
  fetch_initial();
  if (on_change_) on_change_();
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (snap_.state != State::ready) return;  // the chain gave no answer: nothing to refresh
      if (!snap_.credentials->expiration) return;  // static keys: never refreshed, no thread kept
      for (;;) {
        if (stopping_) return;
        if (refresh_requested_ || SystemClock::now() >= next_refresh_) break;
        if (next_refresh_ == SystemClock::time_point::max()) cv_.wait(lock);
        else cv_.wait_until(lock, next_refresh_);
      }
      refresh_requested_ = false;
    }
    refresh();
    if (on_change_) on_change_();
  }
}

}  // namespace mf
