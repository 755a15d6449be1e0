// Test helper: a raw listening TCP socket on 127.0.0.1, for the test servers that answer byte
// by byte (fake proxies, lying RESP peers, scripted token services) rather than through
// LoopbackHttpServer's HTTP stack. Each server owns one and runs its own accept loop.
#pragma once

#include "support/loopback_port.hpp"

#include <doctest/doctest.h>

#include <poll.h>

#include <chrono>

namespace credkit::test {

/// Listening on 127.0.0.1:`port` (0: an ephemeral port), SO_REUSEADDR so a server can listen
/// again on the port it just closed. Closed on destruction.
class LoopbackListener {
 public:
  explicit LoopbackListener(unsigned short port = 0, int backlog = 64) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = loopback_address(port);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, backlog) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~LoopbackListener() { ::close(fd_); }
  LoopbackListener(const LoopbackListener&) = delete;
  LoopbackListener& operator=(const LoopbackListener&) = delete;

  unsigned short port() const { return port_; }

  /// The next connection (close-on-exec), waiting at most `timeout` for it; -1 if none came.
  /// Accept loops poll with a short timeout so that they notice their stop flag.
  int accept_within(std::chrono::milliseconds timeout) const {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return -1;
    return ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  }
  /// The next connection, blocking until one comes or `shutdown` is called (then -1).
  int accept() const { return ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC); }
  /// Wakes an accept loop blocked in `accept`; the listener accepts nothing more.
  void shutdown() const { ::shutdown(fd_, SHUT_RDWR); }

 private:
  int fd_ = -1;
  unsigned short port_ = 0;
};

}  // namespace credkit::test
