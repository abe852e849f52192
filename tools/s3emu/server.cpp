// modelfetch-s3emu: serves a local directory as one S3 bucket over HTTP/1.1 keep-alive, with the latency,
// per-connection and aggregate bandwidth of a real object store and injectable faults, for benchmarks and
// hardening tests (docs/DESIGN.md, "Object-store emulator and benchmark").
//
// Threads: one accept loop and one thread per connection, each blocking in recv/sendfile. Thread-per-
// connection makes the per-request first-byte delay a plain sleep that blocks only its own connection, and
// clients open 16-64 connections, so thread count is no concern. Bodies go out with sendfile(2) from the page
// cache, in slices paced by the connection's token bucket (--conn-rate) and the shared one (--link-rate);
// unpaced, a slice is 16 MiB (one syscall moves it), paced 1 MiB (10 ms at 100 MB/s: smooth, yet few
// syscalls). Idle keep-alive connections are closed after 120 s without a request (S3 closes after ~20 s of
// idleness; a longer wait only keeps threads around).
//
// Faults (pacing.hpp draws them, only for object GETs that would succeed): reset = headers and a random part
// of the body, then close with SO_LINGER 0 so the peer sees RST; 5xx = 503 SlowDown or 500 InternalError
// with Retry-After: 1, connection kept; stall = headers, then nothing until the peer gives up (at most
// 10 min); short = headers and a random part of the body, then a clean close (body shorter than
// Content-Length).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "tools/s3emu/options.hpp"
#include "tools/s3emu/s3.hpp"

namespace mf::s3emu {
namespace {

constexpr uint64_t kSliceUnpaced = 16 << 20;
constexpr uint64_t kSlicePaced = 1 << 20;
constexpr int kIdleTimeoutS = 120;
constexpr int kStallMaxMs = 600000;

struct Server {
  Options opt;
  Bucket bucket;
  Stats stats;
  FaultPlan faults;
  Pacer link;
  Server(Options o)
      : opt(o), bucket(o.dir, o.bucket), faults(o.faults, o.fault_seed), link(o.link_rate, kSlicePaced) {
    link.set_shared(true);
  }
};

Server* g_server = nullptr;

void on_sigusr1(int) {
  if (g_server) g_server->bucket.bump_all();
}

void count_status(Stats& s, int code) {
  if (code >= 500) s.status_5xx.fetch_add(1);
  else if (code >= 400) s.status_4xx.fetch_add(1);
  else s.status_2xx.fetch_add(1);
}

// Sends `length` file bytes from `offset`, paced; false when the peer is gone.
bool send_file_range(int sock, int file, uint64_t offset, uint64_t length, Pacer& conn, Server& srv) {
  bool paced = conn.limited() || srv.link.limited();
  uint64_t slice = paced ? kSlicePaced : kSliceUnpaced;
  off_t off = static_cast<off_t>(offset);
  while (length > 0) {
    uint64_t n = std::min(slice, length);
    conn.acquire(n);
    srv.link.acquire(n);
    uint64_t left = n;
    while (left > 0) {
      ssize_t w = ::sendfile(sock, file, &off, left);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;  // peer gone (EPIPE/ECONNRESET) or the file shrank under us
      left -= static_cast<uint64_t>(w);
      srv.stats.bytes_served.fetch_add(static_cast<uint64_t>(w));
    }
    length -= n;
  }
  return true;
}

void wait_for_peer_close(int sock) {
  pollfd p{sock, POLLRDHUP, 0};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStallMaxMs);
  while (std::chrono::steady_clock::now() < deadline) {
    int rc = ::poll(&p, 1, 1000);
    if (rc > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) return;
    if (rc > 0 && (p.revents & POLLIN)) {  // a pipelined request: drain it, keep stalling
      char tmp[4096];
      if (::recv(sock, tmp, sizeof tmp, 0) <= 0) return;
    }
  }
}

void reset_connection(int sock) {
  linger l{1, 0};  // close now sends RST instead of FIN
  ::setsockopt(sock, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// Answers one request; false when the connection must close.
bool send_reply(int sock, bool keep_alive, Reply& rep, Pacer& conn, Server& srv) {
  if (rep.s3_request && srv.opt.latency_ms > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(srv.opt.latency_ms));
  Fault fault = (rep.object_get && (rep.code == 200 || rep.code == 206)) ? srv.faults.draw() : Fault::none;
  if (fault == Fault::slow_down || fault == Fault::server_error) {
    ::close(rep.file_fd);
    bool slow = fault == Fault::slow_down;
    rep = slow ? error_reply(503, "SlowDown", "Please reduce your request rate.", "")
               : error_reply(500, "InternalError", "We encountered an internal error. Please try again.", "");
    rep.headers.emplace_back("Retry-After", "1");
    srv.stats.fault_5xx.fetch_add(1);
  }
  count_status(srv.stats, rep.code);
  std::string head = response_head(rep.code, rep.headers, rep.content_length(), keep_alive);
  if (rep.file_fd < 0) {
    if (!rep.head_only) head += rep.body;
    return write_all(sock, head) && keep_alive;
  }
  struct FdGuard {
    int fd;
    ~FdGuard() { ::close(fd); }
  } guard{rep.file_fd};
  if (!write_all(sock, head)) return false;
  if (rep.head_only) return keep_alive;
  switch (fault) {
    case Fault::stall:
      srv.stats.fault_stall.fetch_add(1);
      wait_for_peer_close(sock);
      return false;
    case Fault::reset:
    case Fault::short_body: {
      uint64_t cut = srv.faults.cut_at(rep.file_length);
      (fault == Fault::reset ? srv.stats.fault_reset : srv.stats.fault_short).fetch_add(1);
      send_file_range(sock, rep.file_fd, rep.file_offset, cut, conn, srv);
      if (fault == Fault::reset) reset_connection(sock);
      else ::shutdown(sock, SHUT_WR);
      return false;
    }
    default:
      return send_file_range(sock, rep.file_fd, rep.file_offset, rep.file_length, conn, srv) && keep_alive;
  }
}

void serve_connection(int sock, Server* srv) {
  srv->stats.connections.fetch_add(1);
  srv->stats.active_connections.fetch_add(1);
  int one = 1;
  ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{kIdleTimeoutS, 0};
  ::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  Pacer conn(srv->opt.conn_rate, kSlicePaced);
  std::string buf;
  for (;;) {
    bool bad = false;
    auto req = read_request(sock, buf, &bad);
    if (!req) {
      if (bad) {
        Reply e = error_reply(400, "BadRequest", "Malformed request", "");
        write_all(sock, response_head(400, e.headers, e.body.size(), false) + e.body);
      }
      break;
    }
    Reply rep = srv->bucket.handle(*req, srv->stats);
    if (!send_reply(sock, req->keep_alive, rep, conn, *srv)) break;
  }
  ::close(sock);
  srv->stats.active_connections.fetch_sub(1);
}

int listen_on(const Options& o, uint16_t* port) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(o.port);
  if (::inet_pton(AF_INET, o.host.c_str(), &a.sin_addr) != 1) return -1;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 1024) != 0) return -1;
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return s;
}

bool write_port_file(const std::string& path, uint16_t port) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return false;
  std::fprintf(f, "%u\n", port);
  bool ok = std::fclose(f) == 0;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;  // readers never see a partial file
}

int run(int argc, char** argv) {
  auto parsed = parse_options(argc, argv);
  if (!parsed) {
    std::fprintf(stderr, "modelfetch-s3emu: %s\n%s", parsed.error().c_str(), usage());
    return 2;
  }
  if (parsed->help) {
    std::fputs(usage(), stdout);
    return 0;
  }
  static Server srv(*parsed);  // static: connection threads are detached and may outlive run()'s frame
  g_server = &srv;
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_sigusr1;
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGUSR1, &sa, nullptr);
  uint16_t port = 0;
  int ls = listen_on(srv.opt, &port);
  if (ls < 0) {
    std::fprintf(stderr, "modelfetch-s3emu: cannot listen on %s:%u: %s\n", srv.opt.host.c_str(), srv.opt.port,
                 std::strerror(errno));
    return 1;
  }
  if (!srv.opt.port_file.empty() && !write_port_file(srv.opt.port_file, port)) {
    std::fprintf(stderr, "modelfetch-s3emu: cannot write %s\n", srv.opt.port_file.c_str());
    return 1;
  }
  if (!srv.opt.quiet)
    std::fprintf(stderr, "modelfetch-s3emu: s3://%s = %s on http://%s:%u, %s\n", srv.opt.bucket.c_str(),
                 srv.opt.dir.c_str(), srv.opt.host.c_str(), port, describe(srv.opt).c_str());
  for (;;) {
    int c = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {  // out of fds: back off rather than spin
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      std::fprintf(stderr, "modelfetch-s3emu: accept: %s\n", std::strerror(errno));
      return 1;
    }
    std::thread(serve_connection, c, &srv).detach();
  }
}

}  // namespace
}  // namespace mf::s3emu

int main(int argc, char** argv) { return mf::s3emu::run(argc, argv); }
