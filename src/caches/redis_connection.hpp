// credkit detail — one connection to Redis, plain TCP or TLS, with bounded blocking I/O.
//
// We own the socket (and the OpenSSL session) and use hiredis only as the RESP codec:
// hiredis 0.14 has no TLS, and owning the socket gives every wait a deadline.
#pragma once

#include <credkit/core/clock.hpp>

#include <openssl/ssl.h>

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace credkit::detail {

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
/// A decoded reply (hiredis' reply object).
using RedisReply = std::unique_ptr<redisReply, ReplyDeleter>;

/// A bounded RESP2 scanner: checks each reply's headers against the limits of
/// `RedisTokenCacheOptions` (`max_reply_bytes`, `max_reply_line_bytes`, `max_reply_elements`,
/// `max_reply_depth`) before hiredis sees them, so hiredis never allocates a size the peer
/// merely claims. Incremental: bytes may arrive one at a time.
class RespScanner {
 public:
  /// Ready for a new reply.
  void reset();
  /// Scans `data`, the next bytes received. Returns how many of them belong to the current
  /// reply (fewer than `data.size()` only once it is complete). Throws `Error`
  /// (`cache_unavailable`) naming the limit broken; `endpoint` is for messages.
  std::size_t scan(std::string_view data, const std::string& endpoint);
  bool complete() const noexcept { return complete_; }

 private:
  [[noreturn]] void fail(const std::string& endpoint, const std::string& why) const;
  void header_done(const std::string& endpoint);
  void element_done();
  enum class State { type, line, bulk } state_ = State::type;
  char type_ = 0;
  std::string line_;
  std::uint64_t bulk_left_ = 0;  // payload bytes plus the CRLF still expected
  std::vector<std::uint64_t> open_;  // elements still expected per open array
  std::size_t total_ = 0;
  std::size_t elements_ = 0;
  bool complete_ = false;
};

/// Where and how to connect. `tls` null: plain TCP.
struct RedisEndpoint {
  std::string host;
  int port = 0;
  std::string endpoint;  // "host:port", for messages
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds command_timeout{500};
  std::shared_ptr<SSL_CTX> tls;
  /// Held during each (non-blocking, CPU-only) SSL_connect step of connections sharing `tls`:
  /// OpenSSL 3.0 reads certificates its store loads lazily (a CA directory) without a lock,
  /// so two handshakes verifying at once race inside it (seen by TSan). Never held while
  /// waiting for the peer.
  std::shared_ptr<std::mutex> tls_steps = std::make_shared<std::mutex>();
  std::string server_name;  // checked against the certificate and sent as SNI (names only)
  bool verify_peer = true;
  /// The cache's clock (not null): when the last reply arrived, for trusting an idle connection.
  std::shared_ptr<Clock> clock = Clock::system();
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
  /// For a subscribed connection (replies pushed, not asked for): writes `args` (a PING, a
  /// SUBSCRIBE) within `command_timeout`, without touching a reply being received.
  void send(std::span<const std::string_view> args);
  /// For a subscribed connection: the next complete reply received, reading only what the
  /// socket already holds (never waits); null if none is complete yet. Bytes of later replies
  /// are kept for the next call. Throws as `finish` (closed, limits, malformed).
  RedisReply poll_reply();
  /// The socket, to wait until it is readable. With TLS, call `poll_reply` until it returns
  /// null after each wake-up: OpenSSL may already hold decrypted bytes.
  int native_handle() const noexcept { return fd_; }
  /// Where this connection goes.
  const RedisEndpoint& where() const noexcept { return *where_; }
  /// Whether an idle connection still looks open: no end-of-stream or error waiting on it.
  /// Redis closes idle clients (`timeout` in redis.conf, `CLIENT KILL`, a restart); a pooled
  /// connection found closed is dropped instead of failing the next command as an outage.
  /// Connections that answered within the last 250 ms (by the endpoint's clock; a clock that
  /// stepped back counts as past) are not probed (no system call).
  bool idle_alive() const noexcept;
  /// How long a connection that just answered is trusted without a probe.
  static constexpr std::chrono::milliseconds trusted_idle{250};

 private:
  explicit RedisConnection(std::shared_ptr<const RedisEndpoint> where);
  void connect_tcp();
  void handshake();
  /// Writes pending output; with `wait` false, returns when the socket would block.
  void flush(bool wait);
  void read_some();
  /// The reply hiredis has decoded from the bytes fed so far, or null.
  RedisReply take_reply();
  void encode(std::span<const std::string_view> args);
  /// As `feed`, keeping bytes past the end of the reply for the next (`poll_reply`).
  void feed_stream(const char* data, std::size_t n);
  /// Scans then hands received bytes to hiredis; refuses bytes past the end of the reply.
  void feed(const char* data, std::size_t n);
  [[noreturn]] void fail_ssl(int ssl_error, const char* doing);

  std::shared_ptr<const RedisEndpoint> where_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  redisReader* reader_ = nullptr;
  RespScanner scanner_;
  std::string out_;
  std::string held_;  // received bytes of the next pushed reply (poll_reply)
  std::size_t out_done_ = 0;
  std::exception_ptr start_failure_;
  std::chrono::steady_clock::time_point deadline_;
  Clock::time_point last_reply_{};  // when the last reply arrived (the endpoint's clock)
};

}  // namespace credkit::detail
