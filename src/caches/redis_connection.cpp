#include "caches/redis_connection.hpp"

#include "caches/redis_tls.hpp"

#include "core/saturating_time.hpp"

#include <credkit/caches/redis_token_cache.hpp>
#include <credkit/core/error.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

namespace credkit::detail {

namespace {

using steady = std::chrono::steady_clock;

/// The poll(2) timeout for waiting until `deadline`: -1 (no limit) for `time_point::max()`
/// (a timeout of `milliseconds::max()`), else the milliseconds left, rounded up and capped at
/// INT_MAX (the caller polls again); 0 once it has passed.
int poll_timeout_ms(steady::time_point deadline) {
  if (deadline == steady::time_point::max()) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(detail::sub_sat(deadline, steady::now()));
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<std::chrono::milliseconds::rep>(left.count(), INT_MAX));
}

/// Waits until `fd` is ready for `events`; false once `deadline` has passed.
bool wait_ready(int fd, short events, steady::time_point deadline) {
  while (true) {
    const int timeout = poll_timeout_ms(deadline);
    if (timeout == 0) return false;
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, timeout);
    if (r > 0) return true;  // also on POLLERR/POLLHUP: the next I/O call reports the cause
    if (r < 0 && errno != EINTR) return true;
  }
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// OpenSSL's socket BIO writes with write(2), which raises SIGPIPE on a peer that went away;
// this BIO uses send(MSG_NOSIGNAL) so a dead Redis is an error, never a signal.
int bio_write(BIO* b, const char* data, int len) {
  const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b)));
  BIO_clear_retry_flags(b);
  const auto n = ::send(fd, data, static_cast<std::size_t>(len), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
  return static_cast<int>(n);
}

int bio_read(BIO* b, char* data, int len) {
  const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b)));
  BIO_clear_retry_flags(b);
  const auto n = ::recv(fd, data, static_cast<std::size_t>(len), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
  return static_cast<int>(n);
}

long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "credkit redis socket");
    if (m) {
      BIO_meth_set_write(m, bio_write);
      BIO_meth_set_read(m, bio_read);
      BIO_meth_set_ctrl(m, bio_ctrl);
      BIO_meth_set_create(m, bio_create);
    }
    return m;
  }();
  return method;
}

std::string errno_text(int e) {
  char buf[128];
  return ::strerror_r(e, buf, sizeof buf);
}

/// Parses a RESP length or count line: "-1", or 1 to 19 decimal digits. nullopt: malformed.
std::optional<std::int64_t> parse_length(const std::string& s) {
  if (s == "-1") return -1;
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');  // 19 digits fit in int64
  }
  return v;
}

bool is_integer_line(const std::string& s) {
  const std::size_t start = !s.empty() && s[0] == '-' ? 1 : 0;
  if (s.size() == start || s.size() - start > 19) return false;
  for (std::size_t i = start; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

using Limits = RedisTokenCacheOptions;

}  // namespace

// ---- RespScanner -------------------------------------------------------------------------

void RespScanner::reset() {
  state_ = State::type;
  type_ = 0;
  line_.clear();
  bulk_left_ = 0;
  open_.clear();
  total_ = 0;
  elements_ = 0;
  complete_ = false;
}

void RespScanner::fail(const std::string& endpoint, const std::string& why) const {
  throw_error(errc::cache_unavailable, "Redis at " + endpoint + " sent a reply credkit refuses (" + why +
                                           "); closing the connection (limits: docs/caches.md, \"Limits\")");
}

void RespScanner::element_done() {
  while (!open_.empty()) {
    if (--open_.back() > 0) return;
    open_.pop_back();
  }
  complete_ = true;
}

void RespScanner::header_done(const std::string& endpoint) {
  switch (type_) {
    case '+':
    case '-':
      return element_done();
    case ':':
      if (!is_integer_line(line_)) fail(endpoint, "malformed integer");
      return element_done();
    case '$': {
      const auto len = parse_length(line_);
      if (!len) fail(endpoint, "malformed bulk string length");
      if (*len == -1) return element_done();
      if (static_cast<std::uint64_t>(*len) > Limits::max_reply_bytes)
        fail(endpoint, "bulk string of " + line_ + " bytes, over max_reply_bytes " +
                           std::to_string(Limits::max_reply_bytes));
      bulk_left_ = static_cast<std::uint64_t>(*len) + 2;
      state_ = State::bulk;
      return;
    }
    case '*': {
      const auto count = parse_length(line_);
      if (!count) fail(endpoint, "malformed array length");
      if (*count == -1 || *count == 0) return element_done();
      if (static_cast<std::uint64_t>(*count) > Limits::max_reply_elements - elements_)
        fail(endpoint, "array of " + line_ + " elements, over max_reply_elements " +
                           std::to_string(Limits::max_reply_elements));
      if (open_.size() >= Limits::max_reply_depth)
        fail(endpoint, "arrays nested deeper than max_reply_depth " + std::to_string(Limits::max_reply_depth));
      elements_ += static_cast<std::size_t>(*count);
      open_.push_back(static_cast<std::uint64_t>(*count));
      return;
    }
  }
}

std::size_t RespScanner::scan(std::string_view data, const std::string& endpoint) {
  std::size_t i = 0;
  while (i < data.size() && !complete_) {
    if (total_ >= Limits::max_reply_bytes)
      fail(endpoint, "more than max_reply_bytes " + std::to_string(Limits::max_reply_bytes) + " bytes");
    switch (state_) {
      case State::type: {
        const char c = data[i++];
        ++total_;
        if (c != '+' && c != '-' && c != ':' && c != '$' && c != '*')
          fail(endpoint, "unknown RESP type byte " + std::to_string(static_cast<unsigned char>(c)));
        type_ = c;
        line_.clear();
        state_ = State::line;
        break;
      }
      case State::line: {
        const char c = data[i++];
        ++total_;
        if (c == '\n') {
          if (line_.empty() || line_.back() != '\r') fail(endpoint, "a line not ended by CRLF");
          line_.pop_back();
          state_ = State::type;
          header_done(endpoint);
          break;
        }
        if (line_.size() >= Limits::max_reply_line_bytes)
          fail(endpoint, "a line longer than max_reply_line_bytes " + std::to_string(Limits::max_reply_line_bytes));
        line_ += c;
        break;
      }
      case State::bulk: {
        if (bulk_left_ > 2) {
          const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(bulk_left_ - 2, data.size() - i));
          i += take;
          total_ += take;
          bulk_left_ -= take;
          break;
        }
        const char c = data[i++];
        ++total_;
        if (c != (bulk_left_ == 2 ? '\r' : '\n')) fail(endpoint, "a bulk string not ended by CRLF");
        if (--bulk_left_ == 0) {
          state_ = State::type;
          element_done();
        }
        break;
      }
    }
  }
  if (total_ > Limits::max_reply_bytes)
    fail(endpoint, "more than max_reply_bytes " + std::to_string(Limits::max_reply_bytes) + " bytes");
  return i;
}

// ---- RedisConnection ---------------------------------------------------------------------

RedisConnection::RedisConnection(std::shared_ptr<const RedisEndpoint> where) : where_(std::move(where)) {}

RedisConnection::~RedisConnection() {
  if (ssl_) SSL_free(ssl_);  // no close_notify: it could block, and Redis does not need it
  if (fd_ >= 0) ::close(fd_);
  if (reader_) redisReaderFree(reader_);
}

std::unique_ptr<RedisConnection> RedisConnection::open(std::shared_ptr<const RedisEndpoint> where) {
  std::unique_ptr<RedisConnection> c(new RedisConnection(std::move(where)));
  c->deadline_ = detail::add_sat(steady::now(), c->where_->connect_timeout);  // max(): no limit
  c->connect_tcp();
  if (c->where_->tls) c->handshake();
  c->reader_ = redisReaderCreate();
  if (!c->reader_)
    throw_error(errc::cache_unavailable, "cannot connect to Redis at " + c->where_->endpoint + ": out of memory");
  return c;
}

void RedisConnection::connect_tcp() {
  const std::string prefix = "cannot connect to Redis at " + where_->endpoint + ": ";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  // getaddrinfo cannot be bounded; an address literal (the usual case) resolves without I/O.
  if (const int rc = ::getaddrinfo(where_->host.c_str(), std::to_string(where_->port).c_str(), &hints, &found); rc != 0)
    throw_error(errc::cache_unavailable, prefix + "cannot resolve the host (" + ::gai_strerror(rc) + ")");
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);
  std::string why = "no address";
  for (addrinfo* a = found; a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      why = errno_text(errno);
      continue;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      if (!wait_ready(fd, POLLOUT, deadline_)) {
        ::close(fd);
        throw_error(errc::cache_unavailable,
                    prefix + "no answer within " + std::to_string(where_->connect_timeout.count()) +
                        " ms (connect_timeout)");
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      why = errno_text(errno);
      ::close(fd);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small commands, answered at once
    fd_ = fd;
    return;
  }
  throw_error(errc::cache_unavailable, prefix + why);
}

void RedisConnection::handshake() {
  const std::string prefix = "TLS to Redis at " + where_->endpoint + " failed: ";
  ERR_clear_error();
  ssl_ = SSL_new(where_->tls.get());
  BIO* bio = ssl_ ? BIO_new(socket_bio_method()) : nullptr;
  if (!bio) throw_error(errc::tls_error, prefix + take_openssl_error("out of memory"));
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd_)));
  SSL_set_bio(ssl_, bio, bio);

  const std::string& name = where_->server_name.empty() ? where_->host : where_->server_name;
  const bool ip = is_ip_literal(name);
  if (!ip) SSL_set_tlsext_host_name(ssl_, name.c_str());  // SNI carries names only
  if (where_->verify_peer) {
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str())
                      : SSL_set1_host(ssl_, name.c_str());
    if (ok != 1) throw_error(errc::invalid_argument, "RedisTokenCacheOptions: cannot check the certificate against '" +
                                                         name + "': " + take_openssl_error("invalid name"));
  }

  while (true) {
    const int r = [&] {
      std::lock_guard step(*where_->tls_steps);
      return SSL_connect(ssl_);
    }();
    if (r == 1) return;
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (!wait_ready(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_))
        throw_error(errc::cache_unavailable, prefix + "handshake timeout: no answer within " +
                                                 std::to_string(where_->connect_timeout.count()) +
                                                 " ms (connect_timeout); check that the port is Redis' tls-port");
      continue;
    }
    const long verify = SSL_get_verify_result(ssl_);
    if (where_->verify_peer && verify != X509_V_OK) {
      ERR_clear_error();
      std::string msg = prefix + "certificate verify failed: " + X509_verify_cert_error_string(verify);
      if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
        msg += " (the certificate does not name '" + name + "'; set tls_server_name to a name it carries)";
      else
        msg += " (set tls_ca_file or tls_ca_path to the CA that signed Redis' certificate)";
      throw_error(errc::tls_error, msg);
    }
    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
      const int err = errno;
      const std::string reason = take_openssl_error("");
      throw_error(errc::cache_unavailable,
                  prefix + "handshake interrupted: " +
                      (!reason.empty() ? reason : err != 0 ? errno_text(err) : "Redis closed the connection") +
                      " (check that the port is Redis' tls-port and whether it requires a client certificate)");
    }
    throw_error(errc::tls_error, prefix + "handshake failed: " + take_openssl_error("unknown TLS error"));
  }
}

[[noreturn]] void RedisConnection::fail_ssl(int e, const char* doing) {
  const int err = errno;
  if (e == SSL_ERROR_SSL)
    throw_error(errc::tls_error, "TLS to Redis at " + where_->endpoint + " failed while " + doing + ": " +
                                     take_openssl_error("unknown TLS error"));
  ERR_clear_error();
  throw_error(errc::cache_unavailable, "Redis at " + where_->endpoint + " closed the connection while " + doing +
                                           (e == SSL_ERROR_SYSCALL && err != 0 ? " (" + errno_text(err) + ")" : ""));
}

bool RedisConnection::idle_alive() const noexcept {
  if (fd_ < 0 || start_failure_) return false;
  // A connection that answered moments ago is trusted without a system call (two on this
  // path cost more than the rest of a cache hit): idle timeouts are seconds long.
  const auto since_reply = where_->clock->now() - last_reply_;
  if (since_reply >= Clock::time_point::duration::zero() && since_reply < trusted_idle) return true;
  pollfd p{fd_, POLLIN, 0};
  const int n = ::poll(&p, 1, 0);
  if (n == 0) return true;  // nothing to read: open and idle
  if (n < 0) return errno == EINTR;
  if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return false;
  char byte = 0;
  const auto got = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (got == 0) return false;  // the peer closed it
  if (got < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  // Bytes on an idle connection: with TLS, post-handshake records such as session tickets
  // (read with the next reply); in plain RESP, a reply nobody asked for: out of step.
  return ssl_ != nullptr;
}

void RedisConnection::encode(std::span<const std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  const int len = redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), argv.data(), lens.data());
  if (len < 0) throw std::bad_alloc();
  out_.assign(cmd, static_cast<std::size_t>(len));
  redisFreeCommand(cmd);
  out_done_ = 0;
}

void RedisConnection::send(std::span<const std::string_view> args) {
  deadline_ = detail::add_sat(steady::now(), where_->command_timeout);
  encode(args);
  flush(true);
}

RedisReply RedisConnection::take_reply() {
  void* reply = nullptr;
  if (redisReaderGetReply(reader_, &reply) != REDIS_OK)
    throw_error(errc::cache_unavailable,
                "Redis at " + where_->endpoint + " sent a malformed reply (" + std::string(reader_->errstr) + ")");
  if (reply) last_reply_ = where_->clock->now();
  return RedisReply(static_cast<redisReply*>(reply));
}

RedisReply RedisConnection::poll_reply() {
  char buf[16 * 1024];
  while (true) {
    if (auto reply = take_reply()) {
      scanner_.reset();
      return reply;
    }
    if (!held_.empty()) {
      const std::string held = std::exchange(held_, {});
      feed_stream(held.data(), held.size());
      continue;
    }
    if (ssl_) {
      ERR_clear_error();
      const int r = SSL_read(ssl_, buf, sizeof buf);
      if (r <= 0) {
        const int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return nullptr;
        fail_ssl(e, "reading a pushed message");
      }
      feed_stream(buf, static_cast<std::size_t>(r));
    } else {
      const auto r = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (r == 0) throw_error(errc::cache_unavailable, "Redis at " + where_->endpoint + " closed the connection");
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return nullptr;
        throw_error(errc::cache_unavailable, "Redis at " + where_->endpoint + " failed a read: " + errno_text(errno));
      }
      feed_stream(buf, static_cast<std::size_t>(r));
    }
  }
}

void RedisConnection::feed_stream(const char* data, std::size_t n) {
  const std::size_t mine = scanner_.scan(std::string_view(data, n), where_->endpoint);
  if (mine > 0 && redisReaderFeed(reader_, data, mine) != REDIS_OK) throw std::bad_alloc();
  held_.assign(data + mine, n - mine);
}

void RedisConnection::start(std::span<const std::string_view> args) {
  deadline_ = detail::add_sat(steady::now(), where_->command_timeout);  // max(): no limit
  encode(args);
  start_failure_ = nullptr;
  scanner_.reset();
  try {
    flush(false);
  } catch (...) {
    start_failure_ = std::current_exception();
  }
}

RedisReply RedisConnection::finish() {
  if (start_failure_) std::rethrow_exception(std::exchange(start_failure_, nullptr));
  flush(true);
  while (true) {
    if (auto reply = take_reply()) return reply;
    read_some();
  }
}

RedisReply RedisConnection::command(std::span<const std::string_view> args) {
  start(args);
  return finish();
}

void RedisConnection::flush(bool wait) {
  const auto timed_out = [this] {
    throw_error(errc::cache_unavailable, "Redis at " + where_->endpoint + " did not take a command within " +
                                             std::to_string(where_->command_timeout.count()) + " ms (command_timeout)");
  };
  while (out_done_ < out_.size()) {
    const char* p = out_.data() + out_done_;
    const std::size_t n = out_.size() - out_done_;
    short want = POLLOUT;
    if (ssl_) {
      ERR_clear_error();
      const int r = SSL_write(ssl_, p, static_cast<int>(n));
      if (r > 0) {
        out_done_ += static_cast<std::size_t>(r);
        continue;
      }
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ) want = POLLIN;
      else if (e != SSL_ERROR_WANT_WRITE) fail_ssl(e, "sending a command");
    } else {
      const auto r = ::send(fd_, p, n, MSG_NOSIGNAL);
      if (r >= 0) {
        out_done_ += static_cast<std::size_t>(r);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        throw_error(errc::cache_unavailable,
                    "Redis at " + where_->endpoint + " failed a command: " + errno_text(errno));
    }
    if (!wait) return;
    if (!wait_ready(fd_, want, deadline_)) timed_out();
  }
}

void RedisConnection::feed(const char* data, std::size_t n) {
  const std::size_t mine = scanner_.scan(std::string_view(data, n), where_->endpoint);
  if (mine > 0 && redisReaderFeed(reader_, data, mine) != REDIS_OK) throw std::bad_alloc();
  if (mine < n)
    throw_error(errc::cache_unavailable, "Redis at " + where_->endpoint +
                                             " sent bytes past the end of the reply (out of step); closing the connection");
}

void RedisConnection::read_some() {
  char buf[16 * 1024];
  while (true) {
    short want = POLLIN;
    if (ssl_) {
      ERR_clear_error();
      const int r = SSL_read(ssl_, buf, sizeof buf);
      if (r > 0) {
        feed(buf, static_cast<std::size_t>(r));
        return;
      }
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_WRITE) want = POLLOUT;
      else if (e != SSL_ERROR_WANT_READ) fail_ssl(e, "reading a reply");
    } else {
      // Plain TCP: wait first, as the reply is rarely there the moment the command is sent.
      if (!wait_ready(fd_, POLLIN, deadline_)) break;
      const auto r = ::recv(fd_, buf, sizeof buf, 0);
      if (r > 0) {
        feed(buf, static_cast<std::size_t>(r));
        return;
      }
      if (r == 0) throw_error(errc::cache_unavailable, "Redis at " + where_->endpoint + " closed the connection");
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      throw_error(errc::cache_unavailable, "Redis at " + where_->endpoint + " failed a command: " + errno_text(errno));
    }
    if (!wait_ready(fd_, want, deadline_)) break;
  }
  throw_error(errc::cache_unavailable, "Redis at " + where_->endpoint + " did not answer within " +
                                           std::to_string(where_->command_timeout.count()) + " ms (command_timeout)");
}

}  // namespace credkit::detail
