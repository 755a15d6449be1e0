// bot_fleet — several bot processes serve many users' chats through on-demand credentials
// backed by one shared Redis (RedisTokenCache): one redis-server, or with --cluster a real
// Redis Cluster of 3 primaries and 3 replicas. Tokens are short, so they expire several times
// during the run; the distributed single-flight makes each user's expiry cost ONE request to
// the token service, however many bots and callers ask at that moment.
//
//   bot_fleet [--bots 4] [--callers 25] [--users 1] [--seconds 20] [--lifetime 6]
//             [--cluster] [--service-ms 50] [--redis-port N] [--metrics-port N]
//
// Each bot holds one credential per user; its callers go through the users in turn. Without
// --redis-port (and without --cluster) it starts its own redis-server on a free loopback
// port. The token service is a small loopback HTTP server in this process that counts
// requests per user. It prints users, expiries, fetches, the redirects the bots followed and
// their memory per credential; exit status 0 when no caller failed or saw an expired token
// and every user's expiry cost one fetch.
//
// With --metrics-port N, bot i serves Prometheus metrics at http://127.0.0.1:(N+i)/metrics
// while it runs: its credentials (labelled "chat") and its Redis cache ("fleet-redis") report
// to one credkit::prometheus::Exporter (docs/operations.md lists the metrics).
#include <credkit/caches/cached_token_source.hpp>
#include <credkit/caches/redis_token_cache.hpp>
#include <credkit/credkit.hpp>
#ifdef BOT_FLEET_METRICS
#include <credkit/prometheus/exporter.hpp>
#endif

#include "support/child_server.hpp"
#include "support/redis_topologies.hpp"

#include <boost/asio/thread_pool.hpp>
#ifdef BOT_FLEET_METRICS
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using sys_clock = std::chrono::system_clock;

namespace {

struct Args {
  int bots = 4, callers = 25, users = 1, seconds = 20, lifetime = 6, service_ms = 50, redis_port = 0, token_port = 0;
  int metrics_port = 0;  // 0: no /metrics; bot i listens on metrics_port + i
  bool cluster = false;
  std::string nodes;  // bots: the cluster's nodes, "host:port,host:port,..."
  bool bot = false;
};

/// A whole decimal number in [low, high], or none.
std::optional<int> number(std::string_view text, int low, int high) {
  int v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < low || v > high) return std::nullopt;
  return v;
}

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "bot_fleet: " << why
            << "\nusage: bot_fleet [--bots N] [--callers N] [--users N] [--seconds N] [--lifetime S] [--cluster]"
               " [--service-ms MS] [--redis-port P] [--metrics-port P]\n";
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    const auto value = [&](int low, int high) {
      if (i + 1 >= argc) usage(k + " needs a value");
      const auto v = number(argv[++i], low, high);
      if (!v) usage(k + " must be a number in " + std::to_string(low) + ".." + std::to_string(high));
      return *v;
    };
    if (k == "--bot") a.bot = true;
    else if (k == "--cluster") a.cluster = true;
    else if (k == "--nodes" && i + 1 < argc) a.nodes = argv[++i];
    else if (k == "--bots") a.bots = value(1, 64);
    else if (k == "--callers") a.callers = value(1, 1000);
    else if (k == "--users") a.users = value(1, 10'000'000);
    else if (k == "--seconds") a.seconds = value(1, 86400);
    else if (k == "--lifetime") a.lifetime = value(4, 86400);
    else if (k == "--service-ms") a.service_ms = value(0, 10'000);
    else if (k == "--redis-port") a.redis_port = value(1, 65535);
    else if (k == "--token-port") a.token_port = value(1, 65535);
    else if (k == "--metrics-port") a.metrics_port = value(1, 65535);
    else usage("unknown argument " + k);
  }
  return a;
}

std::int64_t unix_ms(sys_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

/// Reads an HTTP message head (at most 8 KiB) from `fd`; empty on failure or overflow.
std::string read_head(int fd, std::size_t limit = 8192) {
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() > limit) return {};
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return {};
    head.append(buf, static_cast<std::size_t>(n));
  }
  return head;
}

/// The app's token service: `GET /token?user=<n>` -> `<token> <expiry unix ms>`, counted per
/// user. Several threads accept, so a fleet's refreshes do not queue behind one another.
class TokenService {
 public:
  TokenService(std::chrono::seconds lifetime, std::chrono::milliseconds delay) : lifetime_(lifetime), delay_(delay) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 1024) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("token service: cannot listen on loopback");
    port_ = ntohs(a.sin_port);
    for (int i = 0; i < 8; ++i) threads_.emplace_back([this] { serve(); });
  }
  ~TokenService() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    for (auto& t : threads_) t.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  /// Each request's time, per user.
  std::map<int, std::vector<sys_clock::time_point>> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void serve() {
    while (!stop_) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stop_) return;
        continue;
      }
      timeval tv{2, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      const std::string head = read_head(c);
      const auto at = head.find("GET /token?user=");
      const auto end = at == std::string::npos ? at : head.find(' ', at + 16);
      const auto user = end == std::string::npos ? std::nullopt : number(head.substr(at + 16, end - at - 16), 0, 10'000'000);
      if (!user) {
        const std::string bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        ::send(c, bad.data(), bad.size(), MSG_NOSIGNAL);
        ::close(c);
        continue;
      }
      long n;
      {
        std::lock_guard lock(mutex_);
        requests_[*user].push_back(sys_clock::now());
        n = ++count_;
      }
      if (delay_ > 0ms) std::this_thread::sleep_for(delay_);  // a token service takes a moment
      const std::string body = "fleet-token-" + std::to_string(n) + "-user-" + std::to_string(*user) +
                               "-0123456789abcdefghijklmnop " + std::to_string(unix_ms(sys_clock::now() + lifetime_));
      const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                               "\r\nConnection: close\r\n\r\n" + body;
      ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }
  std::chrono::seconds lifetime_;
  std::chrono::milliseconds delay_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::map<int, std::vector<sys_clock::time_point>> requests_;
  long count_ = 0;
  std::vector<std::thread> threads_;
};

/// The bots' blocking fetcher: one HTTP GET to the token service for `user`.
credkit::AccessToken fetch_token(int port, int user) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) ::close(fd);
    throw credkit::Error(credkit::errc::network_error, "cannot reach the token service on 127.0.0.1");
  }
  const std::string req = "GET /token?user=" + std::to_string(user) + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[2048];
  for (ssize_t n; resp.size() < 16384 && (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, static_cast<size_t>(n));
  ::close(fd);
  const auto body_at = resp.find("\r\n\r\n");
  const auto sp = resp.rfind(' ');
  long long expiry_ms = 0;
  const bool ok = resp.rfind("HTTP/1.1 200", 0) == 0 && body_at != std::string::npos && sp > body_at &&
                  std::from_chars(resp.data() + sp + 1, resp.data() + resp.size(), expiry_ms).ec == std::errc();
  if (!ok) throw credkit::Error(credkit::errc::invalid_response, "the token service answered badly");
  return credkit::AccessToken{resp.substr(body_at + 4, sp - body_at - 4),
                              sys_clock::time_point(std::chrono::milliseconds(expiry_ms))};
}

/// The same encryption key in every bot (a real fleet reads it from its secret store).
credkit::CacheEncryptionKey fleet_key() {
  return credkit::CacheEncryptionKey::from_hex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
}

/// Resident memory of this process, in bytes (/proc/self/statm).
long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

/// This bot's /metrics: one exporter for its credentials and its cache, served by
/// prometheus-cpp's Exposer on loopback. `observer` is null without --metrics-port.
struct BotMetrics {
  std::shared_ptr<credkit::MetricsObserver> observer;
#ifdef BOT_FLEET_METRICS
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<prometheus::Exposer> exposer;
#endif

  explicit BotMetrics(int port) {
    if (port == 0) return;
#ifdef BOT_FLEET_METRICS
    registry = std::make_shared<prometheus::Registry>();
    auto exporter = credkit::prometheus::Exporter::create(registry);
    exposer = std::make_unique<prometheus::Exposer>("127.0.0.1:" + std::to_string(port), 1);
    exposer->RegisterCollectable(registry);
    exposer->RegisterCollectable(exporter);
    observer = exporter;
    std::printf("bot %d: metrics at http://127.0.0.1:%d/metrics\n", static_cast<int>(::getpid()), port);
    std::fflush(stdout);
#else
    usage("--metrics-port needs credkit built with its credkit::prometheus component (prometheus-cpp)");
#endif
  }
};

int run_bot(const Args& a) {
  boost::asio::thread_pool pool(2), fetches(8);
  BotMetrics metrics(a.metrics_port);
  credkit::RedisTokenCacheOptions o;
  o.port = a.redis_port;
  if (a.cluster) {
    o.deployment = credkit::RedisDeployment::cluster;
    std::stringstream nodes(a.nodes);
    for (std::string node; std::getline(nodes, node, ',');) {
      if (o.nodes.empty() && o.port == 0) {
        const auto colon = node.rfind(':');
        o.host = node.substr(0, colon);
        o.port = number(node.substr(colon + 1), 1, 65535).value_or(0);
      } else {
        o.nodes.push_back(node);
      }
    }
  }
  o.keys = {fleet_key()};
  o.expiry_margin = 1s;                 // short tokens: keep the margin below min_validity
  o.coalesce_in_process = a.users > 1;  // one user: every caller goes to Redis (shows the lock)
  o.command_timeout = 2s;               // a loaded 2-core machine runs every process of the fleet
  o.wait_timeout = 30s;
  o.metrics = metrics.observer;
  o.metrics_name = "fleet-redis";
  auto cache = credkit::RedisTokenCache::create(pool.get_executor(), o);
  credkit::RefreshPolicy policy;
  policy.min_validity = std::chrono::seconds(std::max(2, a.lifetime / 3));
  policy.min_refresh_interval = 100ms;

  // One credential per user; with one user, one per caller (each asks Redis on its own).
  const long before = resident_bytes();
  const int credentials = a.users > 1 ? a.users : a.callers;
  std::vector<std::shared_ptr<credkit::TokenCredential>> creds;
  creds.reserve(static_cast<std::size_t>(credentials));
  for (int i = 0; i < credentials; ++i) {
    const int user = a.users > 1 ? i : 0;
    // A blocking fetcher on the bot's own fetch pool: any number of users may refresh at once.
    auto inner = credkit::Fetcher::blocking(
        [port = a.token_port, user](const credkit::FetchContext&) { return fetch_token(port, user); },
        fetches.get_executor());
    // make_cached_credential's pieces, with the metrics options: one label for all users (a
    // label per user would make a series per user).
    credkit::CachedFetcherOptions fetch_options;
    fetch_options.min_validity = policy.min_validity;
    credkit::TokenCredentialOptions options;
    options.fetcher = credkit::make_cached_fetcher(
        cache, credkit::TokenCacheKey("user-" + std::to_string(user), {"chat"}), std::move(inner), fetch_options);
    options.mode = credkit::RefreshMode::on_demand;
    options.policy = policy;
    options.metrics = metrics.observer;
    options.metrics_name = "chat";
    creds.push_back(credkit::TokenCredential::create(pool.get_executor(), std::move(options)));
  }
  const long per_credential = (resident_bytes() - before) / credentials;

  std::atomic<long> calls{0}, errors{0}, expired{0};
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(a.seconds);
  std::vector<std::thread> callers;
  for (int c = 0; c < a.callers; ++c)
    callers.emplace_back([&, c] {
      std::size_t i = static_cast<std::size_t>(c) % creds.size();
      while (std::chrono::steady_clock::now() < end) {
        try {
          const auto t = creds[i]->get_token(30s);
          ++calls;
          if (t.expires_on() <= sys_clock::now()) ++expired;
        } catch (const std::exception& e) {
          if (errors++ == 0) std::cerr << "bot " << ::getpid() << ": " << e.what() << "\n";
        }
        i = (i + static_cast<std::size_t>(a.callers)) % creds.size();
        // One user: "send a chat message" every 50 ms. Many: go through them as fast as they come.
        if (a.users == 1) std::this_thread::sleep_for(50ms);
      }
    });
  for (auto& t : callers) t.join();
  for (auto& c : creds) c->close();
  const auto s = cache->stats();
  std::printf("bot %d: %ld token requests by %d callers over %d credentials, %ld expired, %ld errors; "
              "%ld bytes resident per credential; Redis: %llu redirects, %llu topology reads, %llu direct fetches, "
              "%llu push wake-ups\n",
              static_cast<int>(::getpid()), calls.load(), a.callers, credentials, expired.load(), errors.load(),
              per_credential, static_cast<unsigned long long>(s.redirects),
              static_cast<unsigned long long>(s.topology_reads), static_cast<unsigned long long>(s.direct_fetches),
              static_cast<unsigned long long>(s.push_wakeups));
  std::fflush(stdout);
  creds.clear();
  pool.join();
  fetches.join();
  return errors || expired ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  if (a.bot) return run_bot(a);

  // The shared Redis: a cluster, the one given, or a redis-server of our own.
  std::unique_ptr<credkit::test::RedisCluster> cluster;
  std::unique_ptr<credkit::test::ChildServer> redis;
  std::string where;
  int redis_port = a.redis_port;
  std::string nodes;
  try {
    if (a.cluster) {
      cluster = std::make_unique<credkit::test::RedisCluster>();
      for (const auto& n : cluster->nodes()) nodes += (nodes.empty() ? "" : ",") + n.text();
      where = "Redis Cluster of 3 primaries + 3 replicas (" + nodes + ")";
    } else {
      if (redis_port == 0) {
        redis_port = credkit::test::free_loopback_port();
        redis = std::make_unique<credkit::test::ChildServer>(
            std::vector<std::string>{"redis-server", "--port", std::to_string(redis_port), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no"},
            static_cast<unsigned short>(redis_port), SIGTERM, 10s);
      }
      where = "redis 127.0.0.1:" + std::to_string(redis_port);
    }
  } catch (const std::exception& e) {
    std::cerr << "bot_fleet: cannot start Redis (" << e.what() << "); pass --redis-port of a running one\n";
    return 1;
  }

  int status_all = 0;
  std::map<int, std::vector<sys_clock::time_point>> requests;
  {
    TokenService service{std::chrono::seconds(a.lifetime), std::chrono::milliseconds(a.service_ms)};
    std::cout << a.bots << " bots x " << a.callers << " callers, " << a.users << " user(s), tokens live "
              << a.lifetime << " s, running " << a.seconds << " s (" << where << ", token service 127.0.0.1:"
              << service.port() << ")\n" << std::flush;
    char exe[4096];
    const auto n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    std::vector<pid_t> bots;
    for (int i = 0; i < a.bots; ++i) {
      std::vector<std::string> argv{exe, "--bot", "--token-port", std::to_string(service.port()), "--seconds",
                                    std::to_string(a.seconds), "--callers", std::to_string(a.callers), "--users",
                                    std::to_string(a.users), "--lifetime", std::to_string(a.lifetime)};
      if (a.metrics_port != 0) argv.insert(argv.end(), {"--metrics-port", std::to_string(a.metrics_port + i)});
      if (a.cluster) argv.insert(argv.end(), {"--cluster", "--nodes", nodes});
      else argv.insert(argv.end(), {"--redis-port", std::to_string(redis_port)});
      bots.push_back(credkit::test::spawn_child(argv, /*keep_output=*/true));
    }
    for (const pid_t bot : bots) {
      int st = 0;
      if (::waitpid(bot, &st, 0) != bot || !WIFEXITED(st) || WEXITSTATUS(st) != 0) status_all = 1;
    }
    requests = service.requests();
  }

  // Per user, requests closer than half a lifetime answer the same expiry: one is the fetch,
  // the others are duplicates the single-flight should have prevented.
  long fetches = 0, expiries = 0;
  int worst_user = -1;
  long worst = 0;
  for (auto& [user, times] : requests) {
    std::sort(times.begin(), times.end());
    long user_expiries = 0;
    for (std::size_t i = 0; i < times.size(); ++i)
      if (i == 0 || times[i] - times[i - 1] >= std::chrono::seconds(a.lifetime) / 2) ++user_expiries;
    fetches += static_cast<long>(times.size());
    expiries += user_expiries;
    if (static_cast<long>(times.size()) - user_expiries > worst) {
      worst = static_cast<long>(times.size()) - user_expiries;
      worst_user = user;
    }
  }
  std::cout << "\nusers: " << a.users << " (" << requests.size() << " asked for), expiries: " << expiries
            << ", token service fetches: " << fetches << " (" << fetches - expiries << " beyond one per expiry";
  if (worst_user >= 0) std::cout << "; most for one user: " << worst << " extra, user-" << worst_user;
  std::cout << ")\n";
  const bool single = fetches == expiries && static_cast<int>(requests.size()) == a.users;
  std::cout << (single && status_all == 0 ? "OK: one fetch per user per expiry across the fleet\n"
                                          : "FAILED: see above\n");
  return single && status_all == 0 ? 0 : 1;
}
