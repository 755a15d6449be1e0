// Fault injection against a real loopback token server (plain sockets, so every fault can be
// produced byte by byte) and virtual-time clock jumps. For each fault: no crash, no hang (every
// wait is bounded), a valid cached token keeps being served, the caller's error names the
// cause, and service recovers by itself once the fault ends; the test prints the recovery time.
#include <doctest/doctest.h>

#include "caches/cache_test_support.hpp"
#include "support/credential_fixture.hpp"
#include "support/temp_files.hpp"
#include "token_server.hpp"

#include <credkit/caches/cached_token_source.hpp>
#include <credkit/caches/encrypted_file_token_cache.hpp>
#include <credkit/caches/redis_token_cache.hpp>
#include <credkit/sources/http_token_source.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/use_future.hpp>

#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using sys = std::chrono::system_clock;

namespace {

enum class Fault {
  none, http_503, http_429, refused, reset_mid_body, never_answer, slow_drip, huge_body, malformed_json,
  expired_token, exp_year_3000, negative_exp, non_numeric_exp, wrong_content_type,
};

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::none: return "none";
    case Fault::http_503: return "5xx burst (503)";
    case Fault::http_429: return "429 + Retry-After: 1";
    case Fault::refused: return "connection refused";
    case Fault::reset_mid_body: return "reset mid-body";
    case Fault::never_answer: return "accept, never answer";
    case Fault::slow_drip: return "slow drip (1 byte/200 ms)";
    case Fault::huge_body: return "10 MB body";
    case Fault::malformed_json: return "malformed JSON";
    case Fault::expired_token: return "expired token";
    case Fault::exp_year_3000: return "exp in year 3000";
    case Fault::negative_exp: return "negative exp";
    case Fault::non_numeric_exp: return "non-numeric exp";
    case Fault::wrong_content_type: return "wrong content type (HTML)";
  }
  return "?";
}

/// A token server on 127.0.0.1 answering `{"token": "<JWT>"}` (60 s tokens) unless a fault is set.
class FaultyTokenServer {
 public:
  FaultyTokenServer() {
    listen_on(0);
    thread_ = std::thread([this] { run(); });
  }
  ~FaultyTokenServer() {
    stop_ = true;
    thread_.join();
    if (listener_ >= 0) ::close(listener_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/token"; }
  /// Switches the fault and returns once the server thread has applied it (for "refused": its
  /// listener is closed, or open again), so the next connection sees the new behaviour.
  void set(Fault f) {
    std::unique_lock lock(state_mutex_);
    fault_ = f;
    const auto wanted = ++switches_requested_;
    if (!switch_applied_.wait_for(lock, 5s, [&] { return switches_applied_ >= wanted; }))
      throw std::runtime_error("the fault server did not apply the fault switch within 5 s");
  }
  int requests() const { return requests_; }

 private:
  void listen_on(int port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listener_, 64) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }

  void run() {
    while (!stop_) {
      std::uint64_t switches_seen = 0;
      Fault fault = Fault::none;
      {
        std::lock_guard lock(state_mutex_);
        switches_seen = switches_requested_;
        fault = fault_;
      }
      // "Connection refused": no listener while the fault lasts, the same port afterwards.
      if (fault == Fault::refused && listener_ >= 0) {
        ::close(listener_);
        listener_ = -1;
      }
      if (fault != Fault::refused && listener_ < 0) listen_on(port_);
      acknowledge(switches_seen);
      if (listener_ < 0) {
        std::this_thread::sleep_for(5ms);
        continue;
      }
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      ++requests_;
      {
        std::lock_guard lock(state_mutex_);
        ++active_;  // counted before the thread starts, so the destructor's wait cannot miss it
      }
      std::thread([this, fd] { serve(fd); }).detach();
      // Detached per-connection threads end by themselves within their bounded waits.
    }
    std::unique_lock lock(state_mutex_);
    connection_ended_.wait(lock, [&] { return active_ == 0; });
  }

  void acknowledge(std::uint64_t switches_seen) {
    {
      std::lock_guard lock(state_mutex_);
      switches_applied_ = switches_seen;
    }
    switch_applied_.notify_all();
  }

  static void send_all(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      const auto n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<std::size_t>(n);
    }
  }

  static std::string response(int status, const std::string& type, const std::string& body,
                              const std::string& extra = {}) {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: " + type +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n" + extra + "\r\n" + body;
  }

  void serve(int fd) {
    std::string req;
    char buf[4096];
    const auto until = std::chrono::steady_clock::now() + 2s;
    while (req.find("\r\n\r\n") == std::string::npos && std::chrono::steady_clock::now() < until) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      req.append(buf, static_cast<std::size_t>(n));
    }
    const auto json = [](const std::string& token) { return R"({"token":")" + token + R"("})"; };
    const auto valid = [] { return make_jwt(sys::now() + 60s, "fault-test"); };
    switch (fault_.load()) {
      case Fault::none:
      case Fault::refused: send_all(fd, response(200, "application/json", json(valid()))); break;
      case Fault::http_503: send_all(fd, response(503, "text/plain", "service unavailable")); break;
      case Fault::http_429: send_all(fd, response(429, "text/plain", "slow down", "Retry-After: 1\r\n")); break;
      case Fault::reset_mid_body: {
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"tok");
        linger l{1, 0};  // close with RST
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        break;
      }
      case Fault::never_answer:
        for (int i = 0; i < 100 && fault_ == Fault::never_answer && !stop_; ++i) std::this_thread::sleep_for(20ms);
        break;
      case Fault::slow_drip: {
        const auto r = response(200, "application/json", json(valid()));
        for (std::size_t i = 0; i < r.size() && fault_ == Fault::slow_drip && !stop_; ++i) {
          send_all(fd, r.substr(i, 1));
          std::this_thread::sleep_for(200ms);
        }
        break;
      }
      case Fault::huge_body: {
        // Headers at once, then the 10 MB body streamed in chunks (building it in one string
        // first takes seconds under TSan on a loaded machine, which would time the client out).
        constexpr std::size_t body_size = 10 << 20;
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                         std::to_string(body_size) + "\r\nConnection: close\r\n\r\n{\"token\":\"");
        const std::string chunk(64 * 1024, 'a');
        for (std::size_t sent = 11; sent < body_size && !stop_; sent += chunk.size()) {
          if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) <= 0) break;  // the client gave up: done
        }
        break;
      }
      case Fault::malformed_json: send_all(fd, response(200, "application/json", R"({"token": "eyJ)")); break;
      case Fault::expired_token:
        send_all(fd, response(200, "application/json", json(make_jwt(sys::now() - 60s, "fault-test"))));
        break;
      case Fault::exp_year_3000: send_all(fd, response(200, "application/json", json(make_jwt_exp("32503680000")))); break;
      case Fault::negative_exp: send_all(fd, response(200, "application/json", json(make_jwt_exp("-5")))); break;
      case Fault::non_numeric_exp: send_all(fd, response(200, "application/json", json(make_jwt_exp("\"soon\"")))); break;
      case Fault::wrong_content_type:
        send_all(fd, response(200, "text/html", "<html><body>Login required</body></html>"));
        break;
    }
    ::close(fd);
    // Notified under the lock: once the count reaches 0 the server may be destroyed.
    std::lock_guard lock(state_mutex_);
    --active_;
    connection_ended_.notify_all();
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<Fault> fault_{Fault::none};
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  int active_ = 0;  // connections being served; guarded by state_mutex_
  std::mutex state_mutex_;
  std::uint64_t switches_requested_ = 0, switches_applied_ = 0;
  std::condition_variable switch_applied_, connection_ended_;
  std::thread thread_;
};

HttpTokenSourceOptions source_options(const std::string& url) {
  HttpTokenSourceOptions o;
  o.url = url;
  o.response = HttpTokenResponse::json("token");
  o.http.connect_timeout = 500ms;
  o.http.total_timeout = 1500ms;
  o.http.max_response_bytes = 64 * 1024;
  return o;
}

/// The policy of every credential in these tests: short retries, a bounded fetch.
RefreshPolicy fault_policy() {
  RefreshPolicy p;
  p.min_validity = 5s;
  p.min_refresh_interval = 10ms;
  p.retry_initial = 20ms;
  p.retry_max = 200ms;
  p.fetch_timeout = 3s;
  return p;
}

TokenCredentialOptions credential_options(const HttpTokenSource& source) {
  TokenCredentialOptions o;
  o.mode = RefreshMode::on_demand;
  o.fetcher = source.fetcher();
  o.policy = fault_policy();
  return o;
}

struct Outcome {
  std::error_code code;
  std::string message;
  double seconds = 0;
};

using steady = std::chrono::steady_clock;

double since(steady::time_point t) { return std::chrono::duration<double>(steady::now() - t).count(); }

/// The sample token server's app endpoint behind an `HttpTokenSource`; its request counter is
/// the number of fetches that reached the service.
struct ServiceFixture {
  samples::TokenServer service;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
  std::thread runner{[this] { io.run(); }};
  std::unique_ptr<HttpTokenSource> source;

  ServiceFixture() {
    service.start();
    source = std::make_unique<HttpTokenSource>(io.get_executor(),
                                               source_options(service.base_url() + "/chat/user/alice/token"));
  }
  ~ServiceFixture() {
    guard.reset();
    runner.join();
    service.stop();
  }
  std::uint64_t fetches() const { return service.request_count("chat_user_token"); }
  std::shared_ptr<TokenCredential> credential(std::shared_ptr<TokenCache> cache) {
    return make_cached_credential(io.get_executor(), std::move(cache), TokenCacheKey("alice"), source->fetcher(),
                                  fault_policy());
  }
};

/// The log lines written since `mark` (a previous `all().size()`), on one line.
std::string lines_since(const test::LogCapture& logs, std::size_t mark) {
  std::string text = logs.all().substr(mark);
  for (char& c : text) c = c == '\n' ? ' ' : c;
  return text;
}

}  // namespace

TEST_SUITE("reliability") {

TEST_CASE("token service faults: bounded, cached token kept, cause named, recovery measured") {
  FaultyTokenServer server;
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  HttpTokenSource source(io.get_executor(), source_options(server.url()));

  // A credential holding a valid token throughout: faults must not disturb it.
  auto warm = TokenCredential::create(io.get_executor(), credential_options(source));
  const auto held = warm->get_token(5s);
  REQUIRE(held);

  struct Case {
    Fault fault;
    std::vector<errc> expected;  // what the caller may see (empty: the answer is accepted)
  };
  const std::vector<Case> cases = {
      {Fault::http_503, {errc::http_status}},
      {Fault::http_429, {errc::rate_limited}},
      {Fault::refused, {errc::network_error}},
      {Fault::reset_mid_body, {errc::network_error}},
      {Fault::never_answer, {errc::timeout}},
      {Fault::slow_drip, {errc::timeout}},
      {Fault::huge_body, {errc::response_too_large}},
      {Fault::malformed_json, {errc::invalid_response}},
      {Fault::expired_token, {errc::invalid_token, errc::token_expired_on_arrival}},
      {Fault::exp_year_3000, {}},
      {Fault::negative_exp, {errc::invalid_token}},
      {Fault::non_numeric_exp, {errc::invalid_token}},
      {Fault::wrong_content_type, {errc::invalid_response}},
  };

  std::ostringstream table;
  table << "| fault | what the caller sees | fetch failed after | recovery after fault ends |\n"
        << "|---|---|---|---|\n";
  for (const auto& c : cases) {
    const std::string fault = fault_name(c.fault);
    CAPTURE(fault);
    server.set(c.fault);  // returns once the server thread has applied it

    // A caller with no token yet: the error names the cause, within a bounded time.
    auto cold = TokenCredential::create(io.get_executor(), credential_options(source));
    Outcome seen;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      const auto tok = cold->get_token(6s);
      CHECK(c.expected.empty());
      CHECK(tok.expires_on() > sys::now());
      seen.message = "accepted, expires " + format_time(tok.expires_on());
    } catch (const Error& e) {
      seen.code = e.code();
      seen.message = e.what();
      bool matched = false;
      for (auto x : c.expected) matched |= e.code() == make_error_code(x);
      // The credential may wrap the source's error; then the cause carries the code.
      if (!matched && e.cause()) {
        for (auto x : c.expected) matched |= error_code_of(e.cause()) == make_error_code(x);
        seen.message += " / cause: " + message_of(e.cause());
      }
      CHECK_MESSAGE(matched, "got " << e.code().message() << ": " << e.what());
    }
    seen.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(seen.seconds < 6.0);  // bounded: the fetch ended (transport timeouts), get_token did not give up

    // The credential that holds a valid token keeps serving it, with no fetch.
    CHECK(warm->get_token(1s) == held);

    // The fault ends: the cold credential recovers by itself (the next call succeeds; 429
    // waits for Retry-After).
    server.set(Fault::none);
    const auto t1 = std::chrono::steady_clock::now();
    TokenHandle recovered;
    while (!recovered && std::chrono::steady_clock::now() - t1 < 10s) {
      try {
        recovered = cold->get_token(3s);
      } catch (const Error&) {
        std::this_thread::sleep_for(10ms);
      }
    }
    const double recovery = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    CHECK(recovered);
    cold->close();
    char line[512];
    std::snprintf(line, sizeof line, "| %s | `%s` | %.2f s | %.3f s |\n", fault_name(c.fault),
                  seen.code ? seen.code.message().c_str() : seen.message.c_str(), seen.seconds, recovery);
    table << line;
  }
  std::cout << "faults (" << server.requests() << " requests):\n" << table.str() << std::flush;
  warm->close();
  guard.reset();
  runner.join();
}

TEST_CASE("cache faults: Redis killed and restarted mid-run: tokens keep flowing, Redis used again") {
  ServiceFixture f;
  cachetest::RedisServer redis;
  test::LogCapture logs;
  RedisTokenCacheOptions ro;
  ro.port = redis.port();
  ro.keys.push_back(cachetest::key_of(7));  // connect/command timeouts 500 ms, retry_after_failure 1 s
  auto cache = RedisTokenCache::create(f.io.get_executor(), ro);

  auto warm = f.credential(cache);
  const auto held = warm->get_token(5s);
  auto peer = f.credential(cache);  // another instance: served from Redis
  CHECK(peer->get_token(5s).token() == held.token());
  CHECK(f.fetches() == 1);
  peer->close();

  redis.stop();  // SIGKILL mid-run
  CHECK(warm->get_token(1s) == held);  // the valid token in memory keeps being served
  const auto mark = logs.all().size();
  auto cold = f.credential(cache);
  const auto t0 = steady::now();
  const auto direct = cold->get_token(6s);  // no token yet: fetched directly, Redis bypassed
  const double first_call = since(t0);
  CHECK(direct.expires_on() > sys::now());
  CHECK(f.fetches() == 2);
  auto cold2 = f.credential(cache);
  const auto t1 = steady::now();
  cold2->get_token(6s);
  const double next_call = since(t1);  // within retry_after_failure: Redis skipped at once
  CHECK(logs.count("bypassed") == 1);  // one warning per outage, naming the cause
  const std::string warning = lines_since(logs, mark);
  CHECK(first_call < 3.0);
  cold->close();
  cold2->close();

  redis.start();  // same port, empty (no persistence)
  const auto restarted = steady::now();
  double recovery = -1;
  while (recovery < 0 && since(restarted) < 10) {
    auto c = f.credential(cache);
    c->get_token(6s);
    c->close();
    if (redis.command({"DBSIZE"}) != "0") recovery = since(restarted);
    else std::this_thread::sleep_for(20ms);
  }
  CHECK(recovery >= 0);
  const auto before = f.fetches();
  auto after = f.credential(cache);
  after->get_token(5s);
  CHECK(f.fetches() == before);  // served from Redis again
  CHECK(logs.count("reachable again") == 1);
  CHECK(warm->get_token(1s) == held);
  after->close();
  warm->close();

  std::printf("| Redis killed (SIGKILL) | token served, fetched directly: first call %.3f s, next %.3f s; "
              "one warning: %s | %.3f s after redis-server is back (writes reach Redis again) |\n",
              first_call, next_call, warning.substr(0, 160).c_str(), recovery);
  std::fflush(stdout);
}

TEST_CASE("cache faults: cache file truncated, corrupted, or encrypted with another key") {
  ServiceFixture f;
  test::LogCapture logs;
  namespace fs = std::filesystem;
  const TempDir dir;
  const fs::path path = dir.path / "tokens.bin";
  auto file_cache = [&](unsigned char key) {
    EncryptedFileTokenCacheOptions o;
    o.path = path.string();
    o.keys.push_back(cachetest::key_of(key));
    return EncryptedFileTokenCache::create(f.io.get_executor(), o);
  };
  const TokenCacheKey key("alice");

  enum class Damage { truncated, corrupted, other_key };
  for (const auto damage : {Damage::truncated, Damage::corrupted, Damage::other_key}) {
    const std::string name = damage == Damage::truncated ? "cache file truncated (half)"
                       : damage == Damage::corrupted ? "cache file corrupted (last 16 bytes flipped)"
                                                     : "cache file encrypted with another key";
    CAPTURE(name);
    fs::remove(path);
    auto writer = f.credential(file_cache(1));
    const auto held = writer->get_token(5s);  // fetched and written to the file
    // The cache-aside write lands after the caller has its token: wait for it.
    for (const auto t = steady::now(); since(t) < 5;) {
      if (fs::exists(path) && cachetest::get_within(file_cache(1)->async_get(key, asio::use_future))) break;
      std::this_thread::sleep_for(5ms);
    }
    const auto size = fs::file_size(path);
    if (damage == Damage::truncated) fs::resize_file(path, size / 2);
    if (damage == Damage::corrupted) {
      std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
      std::string tail(16, '\0');
      io.seekg(static_cast<std::streamoff>(size - 16));
      io.read(tail.data(), 16);
      for (char& c : tail) c = static_cast<char>(c ^ 0x5a);
      io.seekp(static_cast<std::streamoff>(size - 16));
      io.write(tail.data(), 16);
    }
    const unsigned char reader_key = damage == Damage::other_key ? 2 : 1;

    CHECK(writer->get_token(1s) == held);  // the token in memory is untouched
    const auto fetches = f.fetches();
    const auto mark = logs.all().size();
    auto cold = f.credential(file_cache(reader_key));
    const auto t0 = steady::now();
    const auto got = cold->get_token(6s);  // the damaged file is not a token source: fetched
    const double served = since(t0);
    CHECK(got.expires_on() > sys::now());
    CHECK(f.fetches() == fetches + 1);
    const std::string warning = lines_since(logs, mark);
    CHECK_MESSAGE(warning.find(damage == Damage::other_key ? "no entry under the keys" : "damaged") != std::string::npos,
                  warning);

    // The fallback fetch wrote the token back, replacing the damaged file: a new reader with
    // the same key finds it there.
    double recovery = -1;
    while (recovery < 0 && since(t0) < 10) {
      std::optional<AccessToken> fresh;
      try {
        fresh = cachetest::get_within(file_cache(reader_key)->async_get(key, asio::use_future));
      } catch (const Error&) {
        // still the damaged file: the write has not landed yet
      }
      if (fresh && fresh->token == got.token()) recovery = since(t0);
      else std::this_thread::sleep_for(5ms);
    }
    CHECK(recovery >= 0);
    auto again = f.credential(file_cache(reader_key));
    CHECK(again->get_token(5s).token() == got.token());
    CHECK(f.fetches() == fetches + 1);
    again->close();
    cold->close();
    writer->close();
    std::printf("| %s | token served, fetched directly in %.3f s; warning: %s | %.3f s (file rewritten) |\n", name.c_str(),
                served, warning.substr(0, 200).c_str(), recovery);
  }
  std::fflush(stdout);
}

TEST_CASE_FIXTURE(CredentialFixture, "clock jumps: forward past expiry refreshes before serving, backward keeps the token") {
  const auto o = options();
  auto cred = create(o);
  env.run_for(1s);
  const auto first = cred->cached_token();
  REQUIRE(first);
  CHECK(fetcher.calls() == 1);

  // Backward by a day: the token looks younger; nothing to do, it keeps being served.
  env.clock->jump(-24h);
  env.run_for(1s);
  auto f = cred->async_get_token(asio::use_future);
  env.run_for(1s);
  CHECK(f.get() == first);
  CHECK(fetcher.calls() == 1);

  // Forward past expiry (a laptop waking up): no caller gets the expired token.
  env.clock->jump(24h + 2h);
  auto g = cred->async_get_token(asio::use_future);
  env.run_for(1s);
  const auto after = g.get();
  CHECK(after.expires_on() > env.now());
  CHECK(fetcher.calls() == 2);
  // Unprompted, the wake check notices the jump within wake_check_interval.
  env.clock->jump(2h);
  const auto jumped = env.elapsed();
  while (fetcher.calls() < 3 && env.elapsed() - jumped < o.policy.wake_check_interval + 2s) env.run_for(100ms);
  const double noticed = std::chrono::duration<double>(env.elapsed() - jumped).count();
  CHECK(fetcher.calls() == 3);
  CHECK(noticed <= std::chrono::duration<double>(o.policy.wake_check_interval).count() + 0.2);
  CHECK(cred->cached_token().expires_on() > env.now());
  cred->close();
  std::printf("| clock back 24 h | same token, 0 fetches | - |\n"
              "| clock forward 26 h (past expiry), caller waiting | never the expired token: the caller waits for "
              "one fetch | immediate (1 fetch) |\n"
              "| clock forward 2 h, no caller | refreshed by the wake check | %.1f s virtual (wake_check_interval "
              "%lld s) |\n",
              noticed, static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(o.policy.wake_check_interval).count()));
  std::fflush(stdout);
}

}  // TEST_SUITE
