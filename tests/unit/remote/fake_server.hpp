// A scripted HTTP/1.1 server on loopback for the remote unit tests (client, credentials): each request
// (head and body) goes to handler(request_text, index); an empty answer means "never answer".
#pragma once

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mf::testing {

// Answers each request with handler(request_text); an empty answer means "never answer" (a stalled server).
class FakeServer {
 public:
  using Handler = std::function<std::string(const std::string& request, int n)>;
  explicit FakeServer(Handler h) : handler_(std::move(h)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 64);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~FakeServer() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : conns_) t.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::vector<std::string> requests() {
    std::lock_guard l(mu_);
    return requests_;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c >= 0) conns_.emplace_back([this, c] { serve(c); });
    }
  }
  void serve(int c) {
    std::string buf;
    char tmp[4096];
    while (!stop_) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      ssize_t n = ::read(c, tmp, sizeof tmp);
      if (n <= 0) break;
      buf.append(tmp, static_cast<size_t>(n));
      size_t end;
      while ((end = buf.find("\r\n\r\n")) != std::string::npos) {
        size_t body_len = content_length(buf.substr(0, end + 4));
        if (buf.size() < end + 4 + body_len) break;  // the body is not all here yet
        std::string req = buf.substr(0, end + 4 + body_len);
        buf.erase(0, end + 4 + body_len);
        int idx;
        {
          std::lock_guard l(mu_);
          requests_.push_back(req);
          idx = static_cast<int>(requests_.size()) - 1;
        }
        std::string resp = handler_(req, idx);
        if (resp.empty()) {  // stall until the test ends
          while (!stop_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
          break;
        }
        if (::write(c, resp.data(), resp.size()) < 0) break;
      }
    }
    ::close(c);
  }

  static size_t content_length(const std::string& head) {
    std::string lower = head;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    size_t p = lower.find("\r\ncontent-length:");
    if (p == std::string::npos) return 0;
    return std::strtoull(lower.c_str() + p + 17, nullptr, 10);
  }

  Handler handler_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> conns_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};


}  // namespace mf::testing
