// credkit detail — one connection to Redis, plain TCP or TLS, with bounded blocking I/O.
//
// We own the socket (and the OpenSSL session) and use hiredis only as the RESP codec:
// hiredis 0.14 has no TLS, and owning the socket gives every wait a deadline.
#pragma once

#include <openssl/ssl.h>

#include <hiredis/hiredis.h>

#include <chrono>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace credkit::detail {

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
/// A decoded reply (hiredis' reply object).
using RedisReply = std::unique_ptr<redisReply, ReplyDeleter>;

/// Where and how to connect. `tls` null: plain TCP.
struct RedisEndpoint {
  std::string host;
  int port = 0;
  std::string endpoint;  // "host:port", for messages
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds command_timeout{500};
  std::shared_ptr<SSL_CTX> tls;
  std::string server_name;  // checked against the certificate and sent as SNI (names only)
  bool verify_peer = true;
};

/// One connection. Not thread-safe: one thread at a time (hand-offs through a post).
/// Any exception leaves the connection broken: drop it.
class RedisConnection {
 public:
  /// Connects and, with TLS, completes the handshake, all within `connect_timeout`. Throws
  /// `Error`: `cache_unavailable` (resolve, refused, timeout, closed), `tls_error`
  /// (certificate verification, hostname mismatch, handshake failure).
  static std::unique_ptr<RedisConnection> open(std::shared_ptr<const RedisEndpoint> where);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  /// Encodes one command and writes what the socket takes right now, never waiting: a caller
  /// may start a command on its own thread and `finish` it on a cache I/O thread. A write
  /// failure is kept for `finish`. The `command_timeout` deadline starts here.
  void start(std::span<const std::string_view> args);
  /// Writes the rest of the started command and reads its reply, waiting until the deadline.
  /// Throws `Error` (`cache_unavailable`, or `tls_error` for a TLS protocol failure).
  RedisReply finish();
  /// `start` then `finish`.
  RedisReply command(std::span<const std::string_view> args);
  /// Whether an idle connection still looks open: no end-of-stream or error waiting on it.
  /// Redis closes idle clients (`timeout` in redis.conf, `CLIENT KILL`, a restart); a pooled
  /// connection found closed is dropped instead of failing the next command as an outage.
  /// Connections that answered within the last 250 ms are not probed (no system call).
  bool idle_alive() const noexcept;

 private:
  explicit RedisConnection(std::shared_ptr<const RedisEndpoint> where);
  void connect_tcp();
  void handshake();
  /// Writes pending output; with `wait` false, returns when the socket would block.
  void flush(bool wait);
  void read_some();
  [[noreturn]] void fail_ssl(int ssl_error, const char* doing);

  std::shared_ptr<const RedisEndpoint> where_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  redisReader* reader_ = nullptr;
  std::string out_;
  std::size_t out_done_ = 0;
  std::exception_ptr start_failure_;
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::steady_clock::time_point last_reply_{};  // when the last reply arrived
  static constexpr std::chrono::milliseconds kTrustedIdle{250};
};

}  // namespace credkit::detail
