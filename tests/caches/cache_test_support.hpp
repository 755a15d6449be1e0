// Test helpers for the caches: a real redis-server child, a counting loopback token
// service, a blocking HTTP GET, child processes re-executing this test binary.
#pragma once

#include <credkit/caches/cache_encryption_key.hpp>
#include <credkit/credkit.hpp>

#include "support/log_capture.hpp"
#include "support/loopback_listener.hpp"

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace credkit::cachetest {

using namespace std::chrono_literals;

/// Starts `argv` with extra environment entries; stdout/stderr to /dev/null unless `quiet` is false.
inline pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
                   bool quiet = true) {
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) envs.emplace_back(*e);
  for (auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char*> av, ev;
  for (auto& s : argv) av.push_back(const_cast<char*>(s.c_str()));
  av.push_back(nullptr);
  for (auto& s : envs) ev.push_back(const_cast<char*>(s.c_str()));
  ev.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (quiet) {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, av[0], &fa, nullptr, av.data(), ev.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("posix_spawn failed for " + argv[0]);
  return pid;
}

/// Waits for `pid` at most `timeout`; kills it past that. Returns the exit status or -1.
inline int wait_child(pid_t pid, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() > end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(5ms);
  }
}

/// A real redis-server on a free loopback port; can be killed and restarted on that port.
/// With `tls`, the port is its TLS port (`--port 0 --tls-port <port>`; `extra` names the files).
class RedisServer {
 public:
  explicit RedisServer(std::vector<std::string> extra = {}, bool tls = false)
      : port_(test::free_loopback_port()), extra_(std::move(extra)), tls_(tls) {
    start();
  }
  ~RedisServer() { stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }

  void start() {
    std::vector<std::string> argv{"/usr/bin/redis-server", "--port", tls_ ? "0" : std::to_string(port_), "--bind",
                                  "127.0.0.1", "--save", "", "--appendonly", "no"};
    if (tls_) argv.insert(argv.end(), {"--tls-port", std::to_string(port_)});
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    pid_ = spawn(argv);
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < end) {
      if (tls_) {
        if (test::loopback_accepts(static_cast<unsigned short>(port_))) return;
        std::this_thread::sleep_for(20ms);
        continue;
      }
      timeval tv{0, 200000};
      if (redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv)) {
        const bool up = !c->err;
        redisFree(c);
        if (up) return;
      }
      std::this_thread::sleep_for(20ms);
    }
    throw std::runtime_error("redis-server did not start on port " + std::to_string(port_));
  }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
      pid_ = -1;
    }
  }

  /// Runs one command on a fresh connection (string reply, "(nil)", integer as text, or "ERR ...").
  std::string command(const std::vector<std::string>& args, const std::string& password = {}) const {
    timeval tv{2, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (!c || c->err) {
      if (c) redisFree(c);
      return "CONNECT-FAILED";
    }
    if (!password.empty()) freeReplyObject(redisCommand(c, "AUTH %s", password.c_str()));
    std::vector<const char*> av;
    std::vector<size_t> lens;
    for (auto& a : args) {
      av.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(av.size()), av.data(), lens.data()));
    std::string out;
    if (!r)
      out = "IO-ERROR";
    else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
      out.assign(r->str, r->len);
    else if (r->type == REDIS_REPLY_ERROR)
      out = "ERR " + std::string(r->str, r->len);
    else if (r->type == REDIS_REPLY_INTEGER)
      out = std::to_string(r->integer);
    else if (r->type == REDIS_REPLY_NIL)
      out = "(nil)";
    else if (r->type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i < r->elements; ++i) out += std::string(r->element[i]->str ? r->element[i]->str : "") + "\n";
    }
    if (r) freeReplyObject(r);
    redisFree(c);
    return out;
  }

 private:
  int port_;
  std::vector<std::string> extra_;
  bool tls_ = false;
  pid_t pid_ = -1;
};

/// A raw 32-byte cache key, every byte `fill`.
inline CacheEncryptionKey key_of(unsigned char fill) {
  return CacheEncryptionKey::from_raw(std::vector<unsigned char>(32, fill));
}

inline std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

/// A loopback HTTP token service counting its requests. Each `GET /token` answers
/// `<token> <expires unix ms>` after `delay`; tokens are unique (`tok-<n>-<padding>`).
class CountingTokenService {
 public:
  explicit CountingTokenService(std::chrono::milliseconds lifetime = 1h, std::chrono::milliseconds delay = 100ms)
      : lifetime_(lifetime), delay_(delay) {
    thread_ = std::thread([this] { serve(); });
  }
  ~CountingTokenService() {
    stop_ = true;
    listener_.shutdown();
    thread_.join();
  }
  int port() const { return listener_.port(); }
  int requests() const { return requests_.load(); }

 private:
  void serve() {
    while (!stop_) {
      int c = listener_.accept();
      if (c < 0) {
        if (stop_) return;
        continue;
      }
      timeval tv{2, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      std::string req;
      char buf[1024];
      while (req.find("\r\n\r\n") == std::string::npos) {
        auto n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      if (req.rfind("GET /token", 0) == 0) {
        const int n = ++requests_;
        std::this_thread::sleep_for(delay_);
        const auto exp = std::chrono::system_clock::now() + lifetime_;
        const std::string body =
            "tok-" + std::to_string(n) + "-abcdefghijklmnopqrstuvwxyz0123456789 " + std::to_string(unix_ms(exp));
        const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                                 "\r\nConnection: close\r\n\r\n" + body;
        ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
      } else {
        const std::string resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
      }
      ::close(c);
    }
  }

  std::chrono::milliseconds lifetime_, delay_;
  test::LoopbackListener listener_{0, 512};
  std::atomic<int> requests_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Blocking `GET /token` to the counting service; returns the token. Throws on failure.
inline AccessToken http_get_token(int port) {
  const int fd = test::connect_loopback(static_cast<unsigned short>(port));
  if (fd < 0) throw Error(errc::network_error, "token service connect failed");
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string req = "GET /token HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[2048];
  while (true) {
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const auto body_at = resp.find("\r\n\r\n");
  if (resp.rfind("HTTP/1.1 200", 0) != 0 || body_at == std::string::npos)
    throw Error(errc::invalid_response, "token service answered badly");
  const std::string body = resp.substr(body_at + 4);
  const auto sp = body.find(' ');
  AccessToken t;
  t.token = body.substr(0, sp);
  t.expires_on = std::chrono::system_clock::time_point(std::chrono::milliseconds(std::stoll(body.substr(sp + 1))));
  return t;
}

/// Waits for a future at most `timeout`; throws if it does not become ready.
template <typename Future>
auto get_within(Future&& f, std::chrono::milliseconds timeout = 20s) {
  if (f.wait_for(timeout) != std::future_status::ready) throw std::runtime_error("operation did not complete in time");
  return f.get();
}

/// Path of this test binary, for re-executing it as a child.
inline std::string self_exe() {
  char buf[4096];
  const auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

// The one log capture (support/log_capture.hpp), also under this namespace for the Redis tests.
using test::LogCapture;

}  // namespace credkit::cachetest
