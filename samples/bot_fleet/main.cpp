// bot_fleet — several bot processes serve one user's chat through on-demand credentials
// backed by one Redis (RedisTokenCache). Tokens are short (6 s), so they expire several
// times during the run; the distributed single-flight makes each expiry cost ONE request to
// the token service, however many bots and callers ask at that moment.
//
//   bot_fleet [--bots 4] [--callers 25] [--seconds 20] [--lifetime 6] [--redis-port N]
//
// Without --redis-port it starts its own redis-server (/usr/bin/redis-server) on a free
// loopback port. The token service is a tiny loopback HTTP server in this process that
// counts requests. Exit status 0 when no caller failed and every expiry cost one fetch.
#include <credkit/caches/cached_token_source.hpp>
#include <credkit/caches/redis_token_cache.hpp>
#include <credkit/credkit.hpp>

#include <boost/asio/thread_pool.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using namespace std::chrono_literals;
using sys_clock = std::chrono::system_clock;

namespace {

struct Args {
  int bots = 4, callers = 25, seconds = 20, lifetime = 6, redis_port = 0, token_port = 0;
  bool bot = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (k == "--bot") a.bot = true;
    else if (k == "--bots") a.bots = next();
    else if (k == "--callers") a.callers = next();
    else if (k == "--seconds") a.seconds = next();
    else if (k == "--lifetime") a.lifetime = next();
    else if (k == "--redis-port") a.redis_port = next();
    else if (k == "--token-port") a.token_port = next();
    else {
      std::cerr << "usage: bot_fleet [--bots N] [--callers N] [--seconds N] [--lifetime S] [--redis-port P]\n";
      std::exit(2);
    }
  }
  if (a.bots < 1 || a.callers < 1 || a.seconds < 1 || a.lifetime < 4) {
    std::cerr << "bot_fleet: --bots, --callers, --seconds must be >= 1 and --lifetime >= 4\n";
    std::exit(2);
  }
  return a;
}

std::int64_t unix_ms(sys_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

int listen_loopback(int& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 256) != 0) return -1;
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

/// The app's token service: `GET /token` -> `<token> <expiry unix ms>`, counted.
class TokenService {
 public:
  explicit TokenService(std::chrono::seconds lifetime) : lifetime_(lifetime) {
    fd_ = listen_loopback(port_);
    if (fd_ < 0) throw std::runtime_error("token service: cannot listen on loopback");
    thread_ = std::thread([this] { serve(); });
  }
  ~TokenService() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<sys_clock::time_point> requests() {
    std::lock_guard lock(mutex_);
    return times_;
  }

 private:
  void serve() {
    while (!stop_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      timeval tv{2, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      std::string req;
      char buf[1024];
      while (req.find("\r\n\r\n") == std::string::npos) {
        auto n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      int n;
      {
        std::lock_guard lock(mutex_);
        times_.push_back(sys_clock::now());
        n = static_cast<int>(times_.size());
      }
      std::this_thread::sleep_for(50ms);  // a token service takes a moment
      const std::string body = "fleet-token-" + std::to_string(n) + "-0123456789abcdefghijklmnop " +
                               std::to_string(unix_ms(sys_clock::now() + lifetime_));
      const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                               "\r\nConnection: close\r\n\r\n" + body;
      ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }
  std::chrono::seconds lifetime_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<sys_clock::time_point> times_;
  std::thread thread_;
};

/// The bots' blocking fetcher: one HTTP GET to the token service.
credkit::AccessToken fetch_token(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    throw credkit::Error(credkit::errc::network_error, "cannot reach the token service on 127.0.0.1");
  }
  const std::string req = "GET /token HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[2048];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, static_cast<size_t>(n));
  ::close(fd);
  const auto body_at = resp.find("\r\n\r\n");
  const auto sp = resp.rfind(' ');
  if (resp.rfind("HTTP/1.1 200", 0) != 0 || body_at == std::string::npos || sp < body_at)
    throw credkit::Error(credkit::errc::invalid_response, "the token service answered badly");
  return credkit::AccessToken{resp.substr(body_at + 4, sp - body_at - 4),
                              sys_clock::time_point(std::chrono::milliseconds(std::stoll(resp.substr(sp + 1))))};
}

/// The same encryption key in every bot (a real fleet reads it from its secret store).
credkit::CacheEncryptionKey fleet_key() {
  return credkit::CacheEncryptionKey::from_hex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
}

int run_bot(const Args& a) {
  boost::asio::thread_pool pool(2);
  credkit::RedisTokenCacheOptions o;
  o.port = a.redis_port;
  o.keys = {fleet_key()};
  o.expiry_margin = 1s;                // short tokens: keep the margin below min_validity
  o.coalesce_in_process = false;       // every caller goes to Redis: shows the distributed lock
  auto cache = credkit::RedisTokenCache::create(pool.get_executor(), o);
  credkit::RefreshPolicy policy;
  policy.min_validity = 2s;
  policy.min_refresh_interval = 100ms;
  const credkit::TokenCacheKey key("support-bot", {"chat"});
  auto inner = credkit::Fetcher::blocking([port = a.token_port](const credkit::FetchContext&) { return fetch_token(port); });

  std::vector<std::shared_ptr<credkit::TokenCredential>> creds;
  for (int i = 0; i < a.callers; ++i) creds.push_back(credkit::make_cached_credential(pool.get_executor(), cache, key, inner, policy));
  std::atomic<long> calls{0}, errors{0}, expired{0};
  std::mutex mutex;
  std::set<std::string> seen;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(a.seconds);
  std::vector<std::thread> callers;
  for (int i = 0; i < a.callers; ++i)
    callers.emplace_back([&, i] {
      while (std::chrono::steady_clock::now() < end) {
        try {
          auto t = creds[i]->get_token(10s);
          ++calls;
          if (t.expires_on() <= sys_clock::now()) ++expired;
          std::lock_guard lock(mutex);
          seen.insert(t.token());
        } catch (const std::exception& e) {
          if (errors++ == 0) std::cerr << "bot " << ::getpid() << ": " << e.what() << "\n";
        }
        std::this_thread::sleep_for(50ms);  // "send a chat message"
      }
    });
  for (auto& t : callers) t.join();
  for (auto& c : creds) c->close();
  std::printf("bot %d: %ld token requests by %d callers, %zu distinct tokens, %ld expired, %ld errors\n",
              static_cast<int>(::getpid()), calls.load(), a.callers, seen.size(), expired.load(), errors.load());
  pool.join();
  return errors || expired ? 1 : 0;
}

pid_t spawn(const std::vector<std::string>& argv, bool quiet) {
  std::vector<char*> av;
  for (auto& s : argv) av.push_back(const_cast<char*>(s.c_str()));
  av.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (quiet) {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, av[0], &fa, nullptr, av.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

bool redis_answers(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  if (ok) {
    const char ping[] = "PING\r\n";
    char buf[16] = {};
    timeval tv{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ok = ::send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) > 0 && ::recv(fd, buf, sizeof buf, 0) > 0 &&
         std::strncmp(buf, "+PONG", 5) == 0;
  }
  ::close(fd);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  if (a.bot) return run_bot(a);

  pid_t redis_pid = -1;
  if (a.redis_port == 0) {
    int fd = listen_loopback(a.redis_port);  // pick a free port
    ::close(fd);
    redis_pid = spawn({"/usr/bin/redis-server", "--port", std::to_string(a.redis_port), "--bind", "127.0.0.1", "--save",
                       "", "--appendonly", "no"},
                      true);
    if (redis_pid < 0) {
      std::cerr << "bot_fleet: cannot start /usr/bin/redis-server; pass --redis-port of a running one\n";
      return 1;
    }
    std::cout << "started redis-server on 127.0.0.1:" << a.redis_port << "\n";
  }
  const auto redis_deadline = std::chrono::steady_clock::now() + 10s;
  while (!redis_answers(a.redis_port)) {
    if (std::chrono::steady_clock::now() > redis_deadline) {
      std::cerr << "bot_fleet: Redis on 127.0.0.1:" << a.redis_port << " does not answer\n";
      if (redis_pid > 0) ::kill(redis_pid, SIGKILL);
      return 1;
    }
    std::this_thread::sleep_for(20ms);
  }

  int status_all = 0;
  std::vector<sys_clock::time_point> requests;
  const auto start = sys_clock::now();
  {
    TokenService service{std::chrono::seconds(a.lifetime)};
    std::cout << a.bots << " bots x " << a.callers << " callers, tokens live " << a.lifetime << " s, running "
              << a.seconds << " s (redis 127.0.0.1:" << a.redis_port << ", token service 127.0.0.1:" << service.port()
              << ")\n" << std::flush;
    std::vector<pid_t> bots;
    char exe[4096];
    const auto n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    for (int i = 0; i < a.bots; ++i)
      bots.push_back(spawn({exe, "--bot", "--redis-port", std::to_string(a.redis_port), "--token-port",
                            std::to_string(service.port()), "--seconds", std::to_string(a.seconds), "--callers",
                            std::to_string(a.callers), "--lifetime", std::to_string(a.lifetime)},
                           false));
    for (auto pid : bots) {
      int st = 0;
      if (pid < 0 || ::waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) status_all = 1;
    }
    requests = service.requests();
  }
  if (redis_pid > 0) {
    ::kill(redis_pid, SIGTERM);
    ::waitpid(redis_pid, nullptr, 0);
  }

  // Group the token service's requests by expiry: requests closer than 1 s belong together.
  std::vector<std::vector<sys_clock::time_point>> rounds;
  for (auto t : requests) {
    if (rounds.empty() || t - rounds.back().back() > 1s) rounds.emplace_back();
    rounds.back().push_back(t);
  }
  std::cout << "\ntoken service: " << requests.size() << " fetch(es) in " << a.seconds << " s for " << a.bots
            << " bots x " << a.callers << " callers\n";
  bool single = true;
  for (std::size_t i = 0; i < rounds.size(); ++i) {
    const auto at = std::chrono::duration_cast<std::chrono::milliseconds>(rounds[i].front() - start).count();
    std::cout << "  expiry " << i << " (t=" << at / 1000.0 << " s): " << rounds[i].size() << " fetch(es)\n";
    single = single && rounds[i].size() == 1;
  }
  std::cout << (single && status_all == 0 ? "OK: one fetch per expiry across the fleet\n"
                                          : "FAILED: see above\n");
  return single && status_all == 0 ? 0 : 1;
}
