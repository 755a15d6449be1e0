// Hostile peers (issue 12, class 5): a fake RESP peer on loopback answering every command
// with a generated hostile reply (lying sizes and counts, deep nesting, endless lines, drips,
// garbage type bytes). A real redis-server cannot send lies, so this is the one place a fake
// peer is justified. Every call must fail within command_timeout + 2 s (a liveness bound) with
// an Error, without allocating what the peer claims. Plus the bounded RESP scanner itself
// against many more generated headers, and the token server surviving EMFILE on accept.
#include <credkit/caches/redis_token_cache.hpp>

#include "caches/cache_test_support.hpp"
#include "caches/redis_connection.hpp"
#include "support/loopback_listener.hpp"

#include <token_server.hpp>

#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <random>

using namespace credkit;
using namespace std::chrono_literals;

namespace {

constexpr auto command_timeout = 500ms;
constexpr auto slack = 2s;  // liveness bound: command_timeout + slack (room for sanitizer builds under load)

/// How the fake peer answers each command on a connection.
struct Script {
  std::string name;
  std::string bytes;                       // sent after the command arrives
  std::chrono::milliseconds drip{0};       // > 0: one byte per interval
  bool endless = false;                    // then keep sending `filler` forever (no CRLF)
  char filler = 'a';
};

/// A plain TCP acceptor on loopback that answers whatever arrives with the current script.
class FakeRespPeer {
 public:
  FakeRespPeer() {
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~FakeRespPeer() {
    stop_ = true;
    listener_.shutdown();
    thread_.join();
    for (auto& t : conns_) t.join();
  }
  int port() const { return listener_.port(); }
  void set(Script s) {
    std::lock_guard lock(mutex_);
    script_ = std::move(s);
  }

 private:
  void accept_loop() {
    while (!stop_) {
      const int fd = listener_.accept_within(50ms);
      if (fd < 0) continue;
      Script s;
      {
        std::lock_guard lock(mutex_);
        s = script_;
      }
      conns_.emplace_back([this, fd, s = std::move(s)] { serve(fd, s); });
    }
  }

  /// Waits for some command bytes, then answers with the script; stops when the client closes.
  void serve(int fd, const Script& s) {
    const auto alive = [&] { return !stop_; };
    char buf[4096];
    pollfd p{fd, POLLIN, 0};
    while (alive() && ::poll(&p, 1, 50) == 0) {
    }
    if (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0) return (void)::close(fd);
    const auto send_some = [&](const char* d, std::size_t n) {
      // Never blocks for long: a client that stopped reading makes us give up.
      pollfd w{fd, POLLOUT, 0};
      if (::poll(&w, 1, 2000) <= 0) return false;
      return ::send(fd, d, n, MSG_NOSIGNAL | MSG_DONTWAIT) > 0;
    };
    bool ok = true;
    if (s.drip.count() > 0) {
      for (char c : s.bytes) {
        if (!alive() || !(ok = send_some(&c, 1))) break;
        std::this_thread::sleep_for(s.drip);
      }
    } else {
      std::size_t done = 0;
      while (ok && done < s.bytes.size() && alive()) {
        pollfd w{fd, POLLOUT, 0};
        if (::poll(&w, 1, 2000) <= 0) break;
        const auto n = ::send(fd, s.bytes.data() + done, s.bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
      }
    }
    if (s.endless) {
      const std::string chunk(16 * 1024, s.filler);
      const auto until = std::chrono::steady_clock::now() + 5s;
      while (ok && alive() && std::chrono::steady_clock::now() < until) {
        ok = s.drip.count() > 0 ? send_some(chunk.data(), 1) : send_some(chunk.data(), chunk.size());
        if (s.drip.count() > 0) std::this_thread::sleep_for(s.drip);
      }
    }
    // Hold the connection until the client drops it.
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (alive() && std::chrono::steady_clock::now() < until) {
      pollfd r{fd, POLLIN, 0};
      if (::poll(&r, 1, 50) > 0 && ::recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0) break;
    }
    ::close(fd);
  }

  test::LoopbackListener listener_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  Script script_;
  std::thread thread_;
  std::vector<std::thread> conns_;  // joined at destruction
};

/// The seeded variants, by family. Every one of them breaks a limit or never completes.
std::vector<Script> hostile_scripts() {
  std::mt19937_64 rng(20261205);
  const auto pick = [&](auto lo, auto hi) {
    return std::uniform_int_distribution<std::int64_t>(static_cast<std::int64_t>(lo), static_cast<std::int64_t>(hi))(rng);
  };
  std::vector<Script> out;
  // The instance the review found.
  out.push_back({"instance *2147483647 :1", "*2147483647\r\n:1\r\n"});
  // Huge, negative, overflowing and non-numeric array counts.
  for (std::string c : {"2147483647", "-5", "-2", "99999999999999999999", "9223372036854775807", "1025", "4294967296",
                        "", "+3", "0x10", "1 ", "--1"})
    out.push_back({"array count '" + c + "'", "*" + c + "\r\n:1\r\n:2\r\n"});
  for (int i = 0; i < 8; ++i) {
    const auto c = std::to_string(pick(RedisTokenCacheOptions::max_reply_elements + 1, std::int64_t{1} << 62));
    out.push_back({"array count " + c, "*" + c + "\r\n" + std::string(static_cast<std::size_t>(pick(0, 3)), '\0') +
                                           ":1\r\n"});
  }
  // Huge, negative, overflowing and non-numeric bulk lengths.
  for (std::string l : {"2147483647", "-5", "-2", "99999999999999999999", "4194305", "abc", "", "1x", "+5", "1e9"})
    out.push_back({"bulk length '" + l + "'", "$" + l + "\r\nxyz\r\n"});
  for (int i = 0; i < 8; ++i) {
    const auto l = std::to_string(pick(RedisTokenCacheOptions::max_reply_bytes + 1, std::int64_t{1} << 62));
    out.push_back({"bulk length " + l, "$" + l + "\r\nabc"});
  }
  // Arrays nested past max_reply_depth (and a wide tree past max_reply_elements).
  for (int i = 0; i < 6; ++i) {
    const auto depth = pick(RedisTokenCacheOptions::max_reply_depth + 1, 200000);
    std::string s;
    for (std::int64_t d = 0; d < depth; ++d) s += "*1\r\n";
    out.push_back({"nesting depth " + std::to_string(depth), s + ":1\r\n"});
  }
  {
    std::string s = "*2\r\n";
    for (int i = 0; i < 2; ++i) s += "*1000\r\n";
    out.push_back({"element total 2002 in two arrays", s});
  }
  // Endless lines without CRLF, fast (a bound on line length) and dripped (the deadline).
  for (char type : {'+', '-', ':', '$', '*'})
    out.push_back({std::string("endless line after '") + type + "'", std::string(1, type), 0ms, true, '7'});
  for (char type : {'+', '$'})
    out.push_back({std::string("dripped endless line after '") + type + "'", std::string(1, type), 40ms, true, '9'});
  out.push_back({"CR without LF forever", "+OK\r", 0ms, true, '\r'});
  // A valid reply dripped 1 byte every 50 ms: longer than command_timeout in total.
  for (int i = 0; i < 3; ++i) {
    const auto len = pick(15, 60);
    out.push_back({"drip of a valid " + std::to_string(len) + "-byte bulk",
                   "$" + std::to_string(len) + "\r\n" + std::string(static_cast<std::size_t>(len), 'x') + "\r\n", 50ms});
  }
  out.push_back({"drip of *2147483647", "*2147483647\r\n:1\r\n", 50ms});
  // Garbage type bytes (anything but + - : $ *), RESP3 types included.
  for (char c : {'%', '_', ',', '#', '!', '=', '(', '|', '~', '>', '\0', '\xff'})
    out.push_back({"type byte " + std::to_string(static_cast<unsigned char>(c)), std::string(1, c) + "1\r\n"});
  for (int i = 0; i < 6; ++i) {
    char c;
    do c = static_cast<char>(pick(0, 255));
    while (std::string_view("+-:$*").find(c) != std::string_view::npos);
    out.push_back({"random type byte " + std::to_string(static_cast<unsigned char>(c)), std::string(1, c) + "OK\r\n"});
  }
  // Bulk strings that lie about their length (no CRLF where it must be).
  out.push_back({"bulk shorter than claimed, then garbage", "$3\r\nabcdef\r\n"});
  // Total reply bytes past max_reply_bytes, each part within its own limit.
  {
    const std::size_t part = RedisTokenCacheOptions::max_reply_bytes / 2;
    std::string s = "*3\r\n";
    for (int i = 0; i < 3; ++i) s += "$" + std::to_string(part) + "\r\n" + std::string(part, 'z') + "\r\n";
    out.push_back({"three bulks of max_reply_bytes/2", s});
  }
  return out;
}

using cachetest::key_of;

}  // namespace

TEST_CASE("hostile peers: every generated hostile RESP reply fails the call within command_timeout") {
  FakeRespPeer peer;
  boost::asio::thread_pool pool(1);
  RedisTokenCacheOptions o;
  o.host = "127.0.0.1";
  o.port = peer.port();
  o.keys = {key_of(3)};
  o.connect_timeout = command_timeout;
  o.command_timeout = command_timeout;
  o.retry_after_failure = 0ms;
  auto cache = RedisTokenCache::create(pool.get_executor(), o);
  const TokenCacheKey k("mallory");

  const auto scripts = hostile_scripts();
  int variants = 0;
  for (const auto& s : scripts) {
    peer.set(s);
    for (int op = 0; op < 2; ++op) {  // get, then put
      ++variants;
      const std::string label = s.name + (op == 0 ? " (get)" : " (put)");
      const auto start = std::chrono::steady_clock::now();
      std::optional<Error> error;
      bool completed = false;
      try {
        if (op == 0) {
          auto f = cache->async_get(k, boost::asio::use_future);
          completed = f.wait_for(command_timeout + slack + 5s) == std::future_status::ready;
          if (completed) f.get();
        } else {
          AccessToken t{"tok-hostile-peers-test-0123456789abcdef",
                        std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now() + 1h)};
          auto f = cache->async_put(k, t, boost::asio::use_future);
          completed = f.wait_for(command_timeout + slack + 5s) == std::future_status::ready;
          if (completed) f.get();
        }
      } catch (const Error& e) {
        error = e;
      }
      const auto elapsed = std::chrono::steady_clock::now() - start;
      REQUIRE_MESSAGE(completed, label << ": the call hung");
      REQUIRE_MESSAGE(error.has_value(), label << ": a hostile reply was accepted");
      const std::string what = error->what();
      CHECK_MESSAGE(error->code() == make_error_code(errc::cache_unavailable), label << ": " << what);
      const auto took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
      CHECK_MESSAGE(elapsed < command_timeout + slack, label << ": took " << took_ms << " ms");
    }
  }
  MESSAGE("hostile RESP variants tried: " << variants << " (" << scripts.size() << " replies x get/put)");
  pool.join();
}

TEST_CASE("hostile peers: the bounded RESP scanner refuses generated hostile headers byte by byte") {
  // Many more variants than the network test can afford: each fed one byte at a time (the
  // scanner must decide before hiredis sees a header) and whole.
  std::mt19937_64 rng(777);
  const auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  int hostile = 0, valid = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string reply;
    switch (pick(0, 5)) {
      case 0: reply = "*" + std::to_string(pick(RedisTokenCacheOptions::max_reply_elements + 1, INT64_MAX)) + "\r\n"; break;
      case 1: reply = "$" + std::to_string(pick(RedisTokenCacheOptions::max_reply_bytes + 1, INT64_MAX)) + "\r\n"; break;
      case 2: reply = std::string(1, "*$"[pick(0, 1)]) + "-" + std::to_string(pick(2, INT64_MAX)) + "\r\n"; break;
      case 3: {
        const auto depth = pick(RedisTokenCacheOptions::max_reply_depth + 1, 64);
        for (std::int64_t d = 0; d < depth; ++d) reply += "*1\r\n";
        break;
      }
      case 4: {
        char c;
        do c = static_cast<char>(pick(0, 255));
        while (std::string_view("+-:$*").find(c) != std::string_view::npos);
        reply = std::string(1, c) + "\r\n";
        break;
      }
      case 5: reply = std::string(1, "+-:"[pick(0, 2)]) + std::string(RedisTokenCacheOptions::max_reply_line_bytes + 1, '1'); break;
    }
    ++hostile;
    detail::RespScanner scanner;
    bool refused = false;
    try {
      bool completed = false;
      for (char c : reply) {
        scanner.scan(std::string_view(&c, 1), "fake:0");
        completed = completed || scanner.complete();
      }
      REQUIRE_FALSE(completed);
    } catch (const Error& e) {
      refused = e.code() == make_error_code(errc::cache_unavailable);
    }
    CHECK_MESSAGE(refused, "variant " << i << ": " << reply.substr(0, 40));
  }
  // Valid replies within the limits complete exactly at their last byte.
  for (int i = 0; i < 500; ++i) {
    std::string reply;
    const auto n = pick(0, 20);
    reply = "*" + std::to_string(n) + "\r\n";
    for (std::int64_t j = 0; j < n; ++j) {
      switch (pick(0, 4)) {
        case 0: reply += "+OK\r\n"; break;
        case 1: reply += ":" + std::to_string(pick(INT64_MIN + 1, INT64_MAX)) + "\r\n"; break;
        case 2: {
          const auto len = pick(0, 300);
          reply += "$" + std::to_string(len) + "\r\n" + std::string(static_cast<std::size_t>(len), '\n') + "\r\n";
          break;
        }
        case 3: reply += "$-1\r\n"; break;
        case 4: reply += "*2\r\n:1\r\n$2\r\n\r\n\r\n"; break;
      }
    }
    ++valid;
    detail::RespScanner scanner;
    std::size_t used = 0;
    for (std::size_t at = 0; at < reply.size(); at += 7) {
      REQUIRE_FALSE(scanner.complete());
      used += scanner.scan(std::string_view(reply).substr(at, 7), "fake:0");
    }
    CHECK(scanner.complete());
    CHECK(used == reply.size());
  }
  MESSAGE("RESP scanner variants: " << hostile << " hostile, " << valid << " valid");
}

namespace {

int highest_fd() {
  int hi = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(d)) hi = std::max(hi, std::atoi(e->d_name));
    ::closedir(d);
  }
  return hi;
}

/// Reads from `fd` until the first line has arrived (or the peer closed, or the receive timeout
/// passed); that line without its CRLF, "" when none came.
std::string read_status_line(int fd) {
  std::string resp;
  char buf[2048];
  while (resp.find("\r\n") == std::string::npos) {
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<std::size_t>(n));
  }
  return resp.substr(0, resp.find("\r\n"));
}

/// Sends `request` raw and returns the status line ("" when the server closed without one);
/// `elapsed` receives how long the answer took (bounded by a 5 s receive timeout).
std::string raw_status(int port, const std::string& request, std::chrono::milliseconds& elapsed) {
  const auto start = std::chrono::steady_clock::now();
  const int fd = test::connect_loopback(static_cast<unsigned short>(port));
  if (fd < 0) return "";
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (std::size_t sent = 0; sent < request.size();) {
    const auto n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close as soon as it has seen too much
    sent += static_cast<std::size_t>(n);
  }
  const std::string status = read_status_line(fd);
  ::close(fd);
  elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  return status;
}

/// One GET; the status line, or "" on failure.
std::string http_status(int port, const std::string& target) {
  std::chrono::milliseconds took{};
  return raw_status(port, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", took);
}

}  // namespace

TEST_CASE("hostile peers: the token server keeps accepting after accept fails with EMFILE") {
  samples::TokenServer server;
  server.start();
  const int port = server.port();
  REQUIRE(http_status(port, "/chat/user/alice/token") == "HTTP/1.1 200 OK");

  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  int rounds = 0;
  for (int round = 0; round < 3; ++round) {  // several exhaustions in a row
    ++rounds;
    // The table is filled with descriptors that are not connections to the server, so that
    // while it is full the server only fails to accept: no session starts inside the window.
    // (Sanitizer checks need descriptors too; UBSan's vptr check probes memory through a
    // pipe and reports a false "invalid vptr" without one, so as little as possible runs then.)
    // Sessions of earlier requests must be gone first: one still closing while the table is
    // full would run Beast's polymorphic handlers then.
    REQUIRE(server.wait_idle(5s));
    const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(client >= 0);
    const auto backoffs_before = server.request_count("accept_backoff");
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(highest_fd() + 1 + 24);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    // A descriptor the server frees late (a closing session) is taken at once as well.
    std::vector<int> fillers;
    const auto fill = [&] {
      while (fillers.size() < 1000) {
        const int fd = ::fcntl(client, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) return;
        fillers.push_back(fd);
      }
    };
    fill();
    // The connection completes in the kernel's backlog; the server's accept then finds it
    // and no descriptor for it (EMFILE), and backs off. Wait (bounded) until it has, twice.
    const sockaddr_in a = test::loopback_address(static_cast<unsigned short>(port));
    const bool connected = ::connect(client, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (server.request_count("accept_backoff") < backoffs_before + 2 && std::chrono::steady_clock::now() < deadline) {
      fill();
      std::this_thread::sleep_for(5ms);
    }
    const auto backoffs = server.request_count("accept_backoff") - backoffs_before;
    for (int fd : fillers) ::close(fd);
    const bool restored = ::setrlimit(RLIMIT_NOFILE, &saved) == 0;
    // Only now, with descriptors free again, doctest may run.
    const std::string context_text = "round " + std::to_string(round) + ": " + std::to_string(fillers.size()) +
                                     " fillers, " + std::to_string(backoffs) + " accept back-offs";
    REQUIRE(restored);
    CHECK_MESSAGE(connected, context_text);
    CHECK_MESSAGE(backoffs >= 2, context_text);  // the server met EMFILE, backed off and kept trying
    // The connection queued during the exhaustion is served once descriptors are free...
    const std::string request = "GET /chat/user/carol/token HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    timeval tv{5, 0};
    ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CHECK(::send(client, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
    const std::string status = read_status_line(client);
    ::close(client);
    CHECK_MESSAGE(status == "HTTP/1.1 200 OK", context_text);
    // ...and so is a new one.
    CHECK(http_status(port, "/chat/user/bob/token") == "HTTP/1.1 200 OK");
  }
  MESSAGE("EMFILE exhaustion rounds: " << rounds);
  server.stop();
}

TEST_CASE("hostile peers: the token server bounds inbound headers and bodies, and keeps serving") {
  samples::TokenServer server;
  server.start();
  const int port = server.port();
  const std::string route = "/chat/user/alice/token";
  int variants = 0;
  // Header sizes around the 16 KiB limit, and far beyond it.
  for (std::size_t pad : {std::size_t{100}, std::size_t{15'000}, std::size_t{16 * 1024 + 1}, std::size_t{64 * 1024},
                          std::size_t{1024 * 1024}}) {
    CAPTURE(pad);
    std::chrono::milliseconds took{};
    const auto status = raw_status(
        port, "GET " + route + " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + std::string(pad, 'p') + "\r\nConnection: close\r\n\r\n",
        took);
    if (pad < 16 * 1024 - 200) {
      CHECK(status == "HTTP/1.1 200 OK");
    } else if (pad > 16 * 1024) {
      CHECK(status.rfind("HTTP/1.1 200", 0) != 0);  // refused (an error status or a close), never served
    }
    CHECK(took < std::chrono::milliseconds(4500));  // answered or closed, not left hanging
    ++variants;
  }
  // Bodies around the 64 KiB limit, beyond it, and a Content-Length that lies about a huge body.
  for (std::uint64_t length : {std::uint64_t{10}, std::uint64_t{64 * 1024}, std::uint64_t{64 * 1024 + 1},
                               std::uint64_t{10} * 1024 * 1024, std::uint64_t{1'000'000'000'000}}) {
    CAPTURE(length);
    const std::size_t actual = static_cast<std::size_t>(std::min<std::uint64_t>(length, 11 * 1024 * 1024));
    const std::size_t sent_body = length > 100'000'000 ? 10 : actual;
    std::chrono::milliseconds took{};
    const auto status = raw_status(port,
                                   "POST " + route + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                                       std::to_string(length) + "\r\nConnection: close\r\n\r\n" + std::string(sent_body, 'b'),
                                   took);
    if (length > 64 * 1024) CHECK(status.rfind("HTTP/1.1 200", 0) != 0);
    CHECK(took < std::chrono::milliseconds(4500));
    ++variants;
  }
  // Whatever came before, the next ordinary request is served.
  CHECK(http_status(port, route) == "HTTP/1.1 200 OK");
  MESSAGE("token server inbound size variants: " << variants);
  server.stop();
}
