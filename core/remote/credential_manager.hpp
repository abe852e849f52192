// CredentialManager: the credentials a Client signs with, found by the chain (credentials.hpp) and kept
// fresh on the manager's own thread, so no caller (least of all a page fault) ever waits on STS, IMDS or a
// credential_process.
//
// start() launches the thread; it resolves the chain once (state `resolving` until then), then sleeps until
// the refresh time: the expiration minus min(MODELFETCH_CREDENTIAL_REFRESH_AHEAD_S (300), a half of the
// remaining lifetime), and asks the provider that answered again (not the whole chain, as the SDKs do).
// A refresh that fails keeps the current credentials and is tried again after min(30 s, a quarter of what
// is left, at least 1 s). Static credentials are never refreshed: the thread ends once they are found.
//
// A request refused because the credentials expired (ExpiredToken/InvalidToken, or 403 past the expiration)
// calls reject(generation): one refresh is started unless newer credentials exist already; the request
// waits (in the client's I/O loop, not blocking it) until `attempts()` moves and retries once.
//
// on_change runs on the manager's thread after every resolution or refresh attempt (the client wakes its
// I/O loop with it).
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/util/lock.hpp"
#include "core/remote/credentials.hpp"

namespace mf {

class CredentialManager {
 public:
  enum class State { resolving, ready, failed };
  struct Snapshot {
    State state = State::resolving;
    std::shared_ptr<const TimedCredentials> credentials;  // set when ready
    uint64_t generation = 0;                              // bumps with each new set of credentials
    std::optional<Error> error;                           // set when failed
  };

  CredentialManager(CredentialSettings settings, uint64_t refresh_ahead_s, std::function<void()> on_change);
  ~CredentialManager();  // stops and joins the thread (a fetch in progress finishes first: its timeouts bound it)
  CredentialManager(const CredentialManager&) = delete;
  CredentialManager& operator=(const CredentialManager&) = delete;

  void start();
  Snapshot current() const;
  // The provider that answered ("environment", "profile dev (credential_process)", ...), or "" before.
  std::string source() const;
  // Refresh attempts finished so far (success or not), the initial resolution included.
  uint64_t attempts() const;
  // Credentials of `generation` were refused as expired: refresh now unless newer ones exist. Returns
  // false when no refresh is possible (static credentials): the request should fail.
  bool reject(uint64_t generation);

 private:
  void loop();
  void fetch_initial();
  void refresh();

  CredentialSettings settings_;
  uint64_t refresh_ahead_s_;
  std::function<void()> on_change_;
  std::optional<CredentialProvider> provider_;  // the one that answered (thread only, after resolution)

  mutable Mutex mu_{LockRank::credentials};
  CondVar cv_;
  Snapshot snap_;                 // guarded by mu_
  std::string source_;            // guarded by mu_
  uint64_t attempts_ = 0;         // guarded by mu_
  bool refresh_requested_ = false;  // guarded by mu_
  bool stopping_ = false;           // guarded by mu_
  SystemClock::time_point next_refresh_ = SystemClock::time_point::max();  // guarded by mu_
  std::thread thread_;
};

}  // namespace mf
