#include "core/remote/client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

#include "core/util/lock.hpp"
#include <thread>
#include <vector>

#include "core/remote/credential_manager.hpp"
#include "core/remote/range.hpp"
#include "core/remote/request.hpp"
#include "core/remote/retry.hpp"
#include "core/remote/s3_xml.hpp"
#include "core/remote/transfer.hpp"
#include "core/util/checked.hpp"
#include "core/util/log.hpp"
#include "core/util/own_fds.hpp"
#include "core/util/thread.hpp"

namespace mf {

namespace {

// splitmix64: jitter only needs spread, not secrecy; no /dev/urandom open, no global state.
uint64_t next_random(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Buckets' regions learned from redirects, for every client of the process (a mount's later clients, the
// CLI's next command in the same process) so the wrong region costs one round trip per bucket, once.
Mutex g_region_mu{LockRank::bucket_regions};
std::map<std::string, std::string, std::less<>> g_bucket_region;  // guarded by g_region_mu

}  // namespace

// Fork (Vfs::before_fork, after the router's lock): the child must not inherit the region map locked.
void remote_before_fork() { g_region_mu.lock(); }
void remote_after_fork() { g_region_mu.unlock(); }

namespace {

std::string learned_region(std::string_view bucket) {
  std::lock_guard lock(g_region_mu);
  auto it = g_bucket_region.find(bucket);
  return it == g_bucket_region.end() ? std::string() : it->second;
}

bool plausible_region(std::string_view r) {
  if (r.empty() || r.size() > 64) return false;
  for (char c : r)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

// The longest the I/O thread sleeps in curl_multi_poll with nothing due: curl's own timers are covered by
// curl_multi_poll; this only bounds how late a shutdown or retry timer could be noticed if a wakeup was lost.
constexpr int kMaxPollMs = 1000;

}  // namespace

struct Client::Impl {
  RemoteUrl remote;
  RemoteConfig config;
  RetryPolicy policy;

  mutable Mutex mu{LockRank::client};
  std::deque<std::unique_ptr<Transfer>> submitted;  // guarded by mu
  bool stopping = false;                            // guarded by mu
  std::atomic<bool> started{false};
  CURLM* multi = nullptr;  // created with the thread, under mu
  std::thread thread;
  std::thread::id thread_id;

  // I/O thread only.
  std::deque<std::unique_ptr<Transfer>> pending;
  std::vector<std::unique_ptr<Transfer>> active;
  std::vector<std::unique_ptr<Transfer>> delayed;
  std::vector<std::unique_ptr<Transfer>> awaiting_credentials;  // refused as expired: wait for a refresh
  uint64_t rng = 0;
  bool waiting_for_credentials = false;  // pending transfers wait for the chain's first answer

  // Signing: the chain's credentials (config.use_chain on an s3 remote), made with the I/O thread.
  std::unique_ptr<CredentialManager> credentials;
  bool signs_with_chain() const { return config.use_chain && remote.is_s3(); }

  std::atomic<uint64_t> get_requests{0}, head_requests{0}, list_requests{0}, bytes_fetched{0}, retries{0},
      errors{0}, credential_retries{0};

  Impl(RemoteUrl r, RemoteConfig c) : remote(std::move(r)), config(std::move(c)) {
    policy.max_retries = config.retries;
    policy.base_ms = config.retry_base_ms;
    policy.cap_ms = config.retry_max_delay_ms;
  }

  std::string where(std::string_view key) const {
    if (remote.is_s3()) return "s3://" + remote.bucket + "/" + std::string(key);
    RemoteUrl shown = remote;
    shown.query.clear();
    return object_url(shown, config, key);
  }

  Result<void> ensure_started();  // under mu
  void submit(std::unique_ptr<Transfer> t);
  Result<void> run_blocking(std::unique_ptr<Transfer> t, std::function<void(Transfer&)> on_success);
  void loop();
  void start_pending();
  bool expired_refusal(Transfer& t, const AttemptOutcome& o);
  bool region_redirect(Transfer& t, const AttemptOutcome& o);
  std::string region() const {  // the bucket's region: learned from a redirect, else the configured one
    if (!remote.is_s3()) return config.region;
    std::string r = learned_region(remote.bucket);
    return r.empty() ? config.region : r;
  }
  void release_awaiting();
  void reap();
  void finish(std::unique_ptr<Transfer> t, CURLcode code);
  void complete(std::unique_ptr<Transfer> t, Result<void> r);
  int poll_timeout_ms() const;
  void cancel_all();
};

Result<void> Client::Impl::ensure_started() {
  if (stopping) return make_error(ECANCELED, "the remote client is shutting down");
  if (started.load(std::memory_order_relaxed)) return {};
  if (!curl_global_ready()) return make_error(EIO, "curl_global_init failed");
  const auto fds_before = open_fds();
  multi = curl_multi_init();
  if (multi == nullptr) return make_error(ENOMEM, "curl_multi_init failed");
  register_new_fds(fds_before);  // its wakeup socketpair: out of the program's close/dup2 (own_fds.hpp)
  long conns = static_cast<long>(config.max_connections);
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conns);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, conns);  // keep that many idle for reuse
  rng = static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^ reinterpret_cast<uintptr_t>(this);
  if (signs_with_chain()) {  // resolves on its own thread; transfers wait in `pending` until it answers
    CURLM* m = multi;
    credentials = std::make_unique<CredentialManager>(config.credential_settings, config.refresh_ahead_s,
                                                      [m] { curl_multi_wakeup(m); });
    credentials->start();
  }
  thread = start_internal_thread([this] { loop(); });
  thread_id = thread.get_id();
  started.store(true, std::memory_order_release);
  return {};
}

void Client::Impl::submit(std::unique_ptr<Transfer> t) {
  if (config.timeout_ms > 0) t->deadline = Clock::now() + std::chrono::milliseconds(config.timeout_ms);
  if (t->url_for) {
    t->region = region();
    t->url = t->url_for(t->region);
  }
  std::unique_lock lock(mu);
  auto ok = ensure_started();
  if (!ok) {
    lock.unlock();
    t->on_done(*t, ok.error());  // no I/O thread to run it on
    return;
  }
  submitted.push_back(std::move(t));
  curl_multi_wakeup(multi);
}

Result<void> Client::Impl::run_blocking(std::unique_ptr<Transfer> t, std::function<void(Transfer&)> on_success) {
  if (started.load(std::memory_order_acquire) && std::this_thread::get_id() == thread_id)
    return make_error(EDEADLK, "blocking remote call from the client's own I/O thread");
  Mutex m{LockRank::store_call};
  CondVar cv;
  bool done = false;
  Result<void> result;
  t->on_done = [&](Transfer& tr, Result<void> r) {
    if (r) on_success(tr);
    std::lock_guard lock(m);
    result = std::move(r);
    done = true;
    cv.notify_one();
  };
  submit(std::move(t));
  std::unique_lock lock(m);
  cv.wait(lock, [&] { return done; });
  return result;
}

void Client::Impl::complete(std::unique_ptr<Transfer> t, Result<void> r) {
  if (!r) errors.fetch_add(1, std::memory_order_relaxed);
  t->end_attempt();
  auto cb = std::move(t->on_done);
  cb(*t, std::move(r));
}

void Client::Impl::start_pending() {
  waiting_for_credentials = false;
  CredentialManager::Snapshot snap;
  // Without the chain: a hand-made config's `credentials` (if any), or nothing when anonymous was asked for.
  const Credentials* creds = signs_with_chain() || config.no_sign ? nullptr : &config.credentials;
  if (credentials) {
    snap = credentials->current();
    if (snap.state == CredentialManager::State::ready) creds = &snap.credentials->keys;
  }
  while (!pending.empty() && active.size() < config.max_connections) {
    if (pending.front()->preset_error) {
      std::unique_ptr<Transfer> t = std::move(pending.front());
      pending.pop_front();
      Error e = *t->preset_error;
      complete(std::move(t), std::move(e));
      continue;
    }
    if (snap.state == CredentialManager::State::resolving && credentials) {
      waiting_for_credentials = true;  // the manager wakes the loop when it answers; no busy polling meanwhile
      return;
    }
    std::unique_ptr<Transfer> t = std::move(pending.front());
    pending.pop_front();
    if (snap.state == CredentialManager::State::failed) {
      Error e = *snap.error;
      e.message = (t->kind == Transfer::Kind::head ? "HEAD " : t->kind == Transfer::Kind::list ? "LIST " : "GET ") +
                  t->where + ": " + e.message;
      complete(std::move(t), std::move(e));
      continue;
    }
    t->cred_generation = snap.generation;
    if (!t->begin_attempt(remote, config, creds) || curl_multi_add_handle(multi, t->easy) != CURLM_OK) {
      Error e = make_error(ENOMEM, "could not set up a transfer for " + t->where);
      complete(std::move(t), std::move(e));
      continue;
    }
    auto& counter = t->kind == Transfer::Kind::get ? get_requests
                    : t->kind == Transfer::Kind::head ? head_requests : list_requests;
    counter.fetch_add(1, std::memory_order_relaxed);
    active.push_back(std::move(t));
  }
}

void Client::Impl::finish(std::unique_ptr<Transfer> t, CURLcode code) {
  if (t->kind == Transfer::Kind::get) bytes_fetched.fetch_add(t->received, std::memory_order_relaxed);
  AttemptOutcome o = t->outcome(code);
  RetryDecision d = decide_retry(policy, t->attempt, o, next_random(&rng));
  if (d.kind == RetryDecision::Kind::success) {
    complete(std::move(t), {});
    return;
  }
  if (d.kind == RetryDecision::Kind::fail && region_redirect(*t, o)) {
    t->end_attempt();
    pending.push_front(std::move(t));
    return;
  }
  if (d.kind == RetryDecision::Kind::fail && expired_refusal(*t, o)) {
    MF_DEBUG("%s: refused for expired credentials; retrying once after a refresh", t->where.c_str());
    credential_retries.fetch_add(1, std::memory_order_relaxed);
    t->end_attempt();
    awaiting_credentials.push_back(std::move(t));
    return;
  }
  Clock::time_point now = Clock::now();
  if (d.kind == RetryDecision::Kind::retry && now + std::chrono::milliseconds(d.delay_ms) < t->deadline) {
    MF_DEBUG("retrying %s (attempt %u, %llu ms)", t->where.c_str(), t->attempt + 1,
             static_cast<unsigned long long>(d.delay_ms));
    retries.fetch_add(1, std::memory_order_relaxed);
    t->end_attempt();
    t->attempt++;
    t->due = now + std::chrono::milliseconds(d.delay_ms);
    delayed.push_back(std::move(t));
    return;
  }
  int err = d.kind == RetryDecision::Kind::retry ? ETIMEDOUT : d.error;
  std::string msg = t->failure_message(o, err);
  if (d.kind == RetryDecision::Kind::retry) msg += " (MODELFETCH_TIMEOUT_MS reached)";
  complete(std::move(t), make_error(err, std::move(msg)));
}

// A refusal that new credentials could cure: S3's ExpiredToken/InvalidToken/TokenRefreshRequired, or any
// 401/403 once the credentials' expiration has passed. Asks the manager for a refresh and marks the
// transfer's one retry as spent; false (fail as usual) for static credentials or a second refusal.
bool Client::Impl::expired_refusal(Transfer& t, const AttemptOutcome& o) {
  if (!credentials || t.cred_retried || o.curl_code != 0 || (o.http_status != 400 && o.http_status != 401 &&
                                                             o.http_status != 403))
    return false;
  std::string code = t.error_code();
  bool token_code = code == "ExpiredToken" || code == "InvalidToken" || code == "TokenRefreshRequired" ||
                    code == "ExpiredTokenException";
  if (!token_code) {
    if (o.http_status == 400) return false;
    auto snap = credentials->current();
    if (!snap.credentials || !snap.credentials->expiration || SystemClock::now() < *snap.credentials->expiration)
      return false;
  }
  t.cred_wait_mark = credentials->attempts();
  if (!credentials->reject(t.cred_generation)) return false;
  t.cred_retried = true;
  return true;
}

// S3 names the bucket's real region in a 301 PermanentRedirect (x-amz-bucket-region, also on HEAD) or a 400
// AuthorizationHeaderMalformed (<Region>): follow it once per transfer, and remember it for the bucket.
bool Client::Impl::region_redirect(Transfer& t, const AttemptOutcome& o) {
  if (!remote.is_s3() || t.region_redirected || !t.url_for || o.curl_code != 0) return false;
  S3ErrorBody e = parse_error_body(t.body);
  bool moved = o.http_status == 301 || o.http_status == 307 ||
               (o.http_status == 400 && e.code == "AuthorizationHeaderMalformed");
  if (!moved) return false;
  std::string r = !t.bucket_region.empty() ? t.bucket_region : e.region;
  if (!plausible_region(r) || r == t.region) return false;
  {
    std::lock_guard lock(g_region_mu);
    g_bucket_region[remote.bucket] = r;
  }
  MF_INFO("bucket %s is in region %s, not %s: following the redirect (remembered for this bucket)",
          remote.bucket.c_str(), r.c_str(), t.region.c_str());
  t.region_redirected = true;
  t.region = r;
  t.url = t.url_for(r);
  return true;
}

// Transfers waiting for new credentials go back to the queue once a refresh finished (or newer ones exist).
void Client::Impl::release_awaiting() {
  if (awaiting_credentials.empty()) return;
  uint64_t attempts = credentials->attempts();
  uint64_t generation = credentials->current().generation;
  for (size_t i = 0; i < awaiting_credentials.size();) {
    Transfer& t = *awaiting_credentials[i];
    if (attempts > t.cred_wait_mark || generation != t.cred_generation) {
      pending.push_front(std::move(awaiting_credentials[i]));
      awaiting_credentials[i] = std::move(awaiting_credentials.back());
      awaiting_credentials.pop_back();
    } else {
      ++i;
    }
  }
}

void Client::Impl::reap() {
  int left = 0;
  while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL* easy = m->easy_handle;
    CURLcode code = m->data.result;
    curl_multi_remove_handle(multi, easy);
    auto it = std::find_if(active.begin(), active.end(), [&](auto& t) { return t->easy == easy; });
    if (it == active.end()) continue;  // cannot happen: every added handle is in `active`
    std::unique_ptr<Transfer> t = std::move(*it);
    *it = std::move(active.back());
    active.pop_back();
    finish(std::move(t), code);
  }
}

int Client::Impl::poll_timeout_ms() const {
  if (!pending.empty() && active.size() < config.max_connections && !waiting_for_credentials) return 0;
  int timeout = kMaxPollMs;
  Clock::time_point now = Clock::now();
  for (const auto& t : delayed) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t->due - now).count();
    timeout = std::min<int>(timeout, ms < 0 ? 0 : static_cast<int>(std::min<long long>(ms, kMaxPollMs)));
  }
  return timeout;
}

void Client::Impl::loop() {
  for (;;) {
    {
      std::lock_guard lock(mu);
      if (stopping) break;
      while (!submitted.empty()) {
        pending.push_back(std::move(submitted.front()));
        submitted.pop_front();
      }
    }
    Clock::time_point now = Clock::now();
    for (size_t i = 0; i < delayed.size();) {  // due retries go first: they have waited longest
      if (delayed[i]->due <= now) {
        pending.push_front(std::move(delayed[i]));
        delayed[i] = std::move(delayed.back());
        delayed.pop_back();
      } else {
        ++i;
      }
    }
    release_awaiting();
    start_pending();
    int running = 0;
    curl_multi_perform(multi, &running);
    reap();
    curl_multi_poll(multi, nullptr, 0, poll_timeout_ms(), nullptr);
  }
  cancel_all();
}

void Client::Impl::cancel_all() {
  auto cancel = [&](std::unique_ptr<Transfer> t) {
    if (t->easy != nullptr) curl_multi_remove_handle(multi, t->easy);
    Error e = make_error(ECANCELED, "cancelled: the remote client shut down (" + t->where + ")");
    complete(std::move(t), std::move(e));
  };
  for (auto& t : active) cancel(std::move(t));
  for (auto& t : delayed) cancel(std::move(t));
  for (auto& t : awaiting_credentials) cancel(std::move(t));
  for (auto& t : pending) cancel(std::move(t));
  active.clear();
  delayed.clear();
  awaiting_credentials.clear();
  pending.clear();
  std::deque<std::unique_ptr<Transfer>> rest;
  {
    std::lock_guard lock(mu);
    rest.swap(submitted);
  }
  for (auto& t : rest) cancel(std::move(t));
}

Client::Client(RemoteUrl remote, RemoteConfig config)
    : impl_(std::make_unique<Impl>(std::move(remote), std::move(config))) {
  static std::atomic<bool> warned{false};  // once per process, however many mounts
  if (impl_->config.insecure_tls && !warned.exchange(true))
    MF_WARN("MODELFETCH_INSECURE_TLS=1: TLS certificate and host name verification are OFF; any server on the "
            "path can impersonate the endpoint");
}

Client::~Client() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    if (impl_->multi != nullptr) curl_multi_wakeup(impl_->multi);
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->credentials.reset();  // joins its thread (which may wake `multi`): before the cleanup
  if (impl_->multi != nullptr) curl_multi_cleanup(impl_->multi);
}

const RemoteUrl& Client::remote() const { return impl_->remote; }
const RemoteConfig& Client::config() const { return impl_->config; }
bool Client::io_thread_started() const { return impl_->started.load(std::memory_order_acquire); }

std::string Client::credential_source() const {
  if (!impl_->remote.is_s3()) return "none (http(s) remote: unsigned)";
  if (impl_->config.no_sign) return "none (anonymous: AWS_NO_SIGN_REQUEST/MODELFETCH_NO_SIGN)";
  if (!impl_->config.use_chain) return impl_->config.credentials.present() ? "configuration" : "none (unsigned)";
  std::lock_guard lock(impl_->mu);
  if (!impl_->credentials) return "not resolved yet";
  auto snap = impl_->credentials->current();
  if (snap.state == CredentialManager::State::resolving) return "not resolved yet";
  if (snap.state == CredentialManager::State::failed) return "none (no provider answered)";
  std::string s = impl_->credentials->source();
  if (snap.credentials->expiration) s += ", temporary";
  return s;
}

StoreStats Client::stats() const {
  StoreStats s;
  s.get_requests = impl_->get_requests.load(std::memory_order_relaxed);
  s.head_requests = impl_->head_requests.load(std::memory_order_relaxed);
  s.list_requests = impl_->list_requests.load(std::memory_order_relaxed);
  s.bytes_fetched = impl_->bytes_fetched.load(std::memory_order_relaxed);
  s.retries = impl_->retries.load(std::memory_order_relaxed);
  s.errors = impl_->errors.load(std::memory_order_relaxed);
  s.credential_retries = impl_->credential_retries.load(std::memory_order_relaxed);
  return s;
}

void Client::read_async(RangeRequest request, ReadCallback done) {
  auto t = std::make_unique<Transfer>();
  t->kind = Transfer::Kind::get;
  t->where = impl_->where(request.key);
  t->url = object_url(impl_->remote, impl_->config, request.key);
  if (impl_->remote.is_s3())
    t->url_for = [impl = impl_.get(), key = request.key](std::string_view region) {
      return object_url(impl->remote, impl->config, key, region);
    };
  t->if_match = std::move(request.etag);
  t->offset = request.offset;
  t->length = request.length;
  t->dest = request.dest;
  uint64_t end;
  if (request.length == 0 || request.dest == nullptr || !checked_add(request.offset, request.length, &end))
    t->preset_error = make_error(EINVAL, "GET " + t->where + ": empty, unbounded or overflowing range");
  t->on_done = [done = std::move(done)](Transfer&, Result<void> r) { done(std::move(r)); };
  impl_->submit(std::move(t));
}

Result<ObjectInfo> Client::stat(std::string_view key) {
  auto t = std::make_unique<Transfer>();
  t->where = impl_->where(key);
  t->url = object_url(impl_->remote, impl_->config, key);
  if (impl_->remote.is_s3())
    t->url_for = [impl = impl_.get(), k = std::string(key)](std::string_view region) {
      return object_url(impl->remote, impl->config, k, region);
    };
  // A presigned URL signs one method: HEAD would be refused, so ask for the first byte instead.
  bool presigned = !impl_->remote.is_s3() && !impl_->remote.query.empty();
  std::byte first{};
  t->kind = presigned ? Transfer::Kind::get : Transfer::Kind::head;
  if (presigned) {
    t->length = 1;
    t->dest = &first;
  }
  ObjectInfo info;
  info.key = std::string(key);
  auto r = impl_->run_blocking(std::move(t), [&](Transfer& tr) {
    info.etag = tr.etag;
    info.last_modified = tr.last_modified;
    if (!presigned) {
      info.size = tr.content_length.value_or(0);
    } else if (auto cr = parse_content_range(tr.content_range); cr && cr->total) {
      info.size = *cr->total;
    } else {
      info.size = tr.content_length.value_or(0);  // a 200: the whole (1-byte) object
    }
  });
  if (!r) return r.error();
  return info;
}

Result<Listing> Client::list(std::string_view prefix, bool delimited) {
  if (!impl_->remote.is_s3())
    return make_error(ENOTSUP, "listing is not possible on an http(s) remote (" + impl_->remote.display() + ")");
  Listing all;
  std::string token;
  for (;;) {
    auto t = std::make_unique<Transfer>();
    t->kind = Transfer::Kind::list;
    t->where = impl_->where(prefix);
    t->url = list_url(impl_->remote, impl_->config, prefix, delimited, token);
    t->url_for = [impl = impl_.get(), p = std::string(prefix), delimited, token](std::string_view region) {
      return list_url(impl->remote, impl->config, p, delimited, token, region);
    };
    std::string body;
    auto r = impl_->run_blocking(std::move(t), [&](Transfer& tr) { body = std::move(tr.body); });
    if (!r) return r.error();
    auto page = parse_list_page(body);
    if (!page) return make_error(EIO, page.error().message + " (" + impl_->where(prefix) + ")");
    for (auto& o : page->entries.objects) all.objects.push_back(std::move(o));
    for (auto& p : page->entries.common_prefixes) all.common_prefixes.push_back(std::move(p));
    if (!page->truncated) break;
    if (page->next_token == token) return make_error(EIO, "ListObjectsV2: the server repeated a continuation token");
    token = std::move(page->next_token);
  }
  return all;
}

Result<std::unique_ptr<Client>> make_client(const RemoteUrl& remote, const RemoteConfig& config) {
  if (remote.is_s3() && remote.bucket.empty()) return make_error(EINVAL, "s3 remote without a bucket");
  if (!remote.is_s3() && remote.authority.empty()) return make_error(EINVAL, "http remote without a host");
  return std::make_unique<Client>(remote, config);
}

}  // namespace mf
