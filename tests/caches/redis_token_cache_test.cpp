// RedisTokenCache against a real redis-server: encryption at rest, TTL, AUTH, outage and
// recovery (kill and restart), the single-flight lock (dead holder, safe release) and the
// multi-process test: 8 processes x 50 callers on one stale key -> 1 fetch.
#include <credkit/caches/cached_token_source.hpp>
#include <credkit/caches/encrypted_file_token_cache.hpp>
#include <credkit/caches/memory_token_cache.hpp>
#include <credkit/caches/redis_token_cache.hpp>

#include "caches/redis_test_support.hpp"
#include "caches/record_crypto.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <utility>

using namespace credkit;
using namespace std::chrono_literals;
using cachetest::RedisServer;
using cachetest::get_or_fetch;
using cachetest::service_fetch;

namespace {

CacheEncryptionKey test_key() { return CacheEncryptionKey::from_raw(std::vector<unsigned char>(32, 0x42)); }

RedisTokenCacheOptions options_for(int port) {
  RedisTokenCacheOptions o;
  o.port = port;
  o.keys = {test_key()};
  o.retry_after_failure = 200ms;
  o.connect_timeout = 300ms;
  o.command_timeout = 300ms;
  return o;
}


std::chrono::system_clock::time_point exp_in(std::chrono::milliseconds d) {
  return std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now() + d);
}


}  // namespace

TEST_CASE("RedisTokenCache: round trip, values encrypted in Redis, PX from expiry") {
  RedisServer redis;
  boost::asio::thread_pool pool(1);
  auto o = options_for(redis.port());
  o.expiry_margin = 10s;
  auto cache = RedisTokenCache::create(pool.get_executor(), o);
  const TokenCacheKey k("alice", {"chat"});
  const AccessToken t{"eyJSECRET-redis-token-0123456789abcdef", exp_in(10min)};
  CHECK(!cachetest::get_within(cache->async_get(k, boost::asio::use_future)));
  cachetest::get_within(cache->async_put(k, t, boost::asio::use_future));
  CHECK(cachetest::get_within(cache->async_get(k, boost::asio::use_future)) == t);

  const auto name = cachetest::redis_name(o, k, "tok:");
  const auto raw = redis.command({"GET", name});
  CHECK(raw.size() > t.token.size());
  CHECK(raw.find("SECRET") == std::string::npos);
  const auto keys = redis.command({"KEYS", "*"});
  CHECK(keys.find("alice") == std::string::npos);
  const auto pttl = std::stoll(redis.command({"PTTL", name}));
  CHECK(pttl > (10min - 10s - 5s) / 1ms);
  CHECK(pttl <= (10min - 10s) / 1ms);

  // Explicit TTL shorter than the expiry.
  cachetest::get_within(cache->async_put(k, t, 2s, boost::asio::use_future));
  CHECK(std::stoll(redis.command({"PTTL", name})) <= 2000);

  // Another key (rotation) reads it; a stranger gets a clear error.
  auto rotated_o = o;
  rotated_o.keys = {CacheEncryptionKey::generate(), test_key()};
  // Names follow the primary key: after a rotation, entries are re-fetched once.
  auto rotated = RedisTokenCache::create(pool.get_executor(), rotated_o);
  CHECK(!cachetest::get_within(rotated->async_get(k, boost::asio::use_future)));
  // A record moved under another name fails authentication, never returns a token.
  redis.command({"SET", cachetest::redis_name(o, TokenCacheKey("bob"), "tok:"), raw});
  auto f = cache->async_get(TokenCacheKey("bob"), boost::asio::use_future);
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  CHECK_THROWS_AS(f.get(), Error);

  cachetest::get_within(cache->async_erase(k, boost::asio::use_future));
  CHECK(redis.command({"EXISTS", name}) == "0");
  pool.join();
}

TEST_CASE("RedisTokenCache: AUTH with password and with user + password; bad TLS options are rejected clearly") {
  RedisServer redis({"--requirepass", "s3cret-pass", "--user", "bot", "on", ">bot-pass", "~*", "+@all"});
  boost::asio::thread_pool pool(1);
  const TokenCacheKey k("u");
  const AccessToken t{"token-auth-0123456789abcdef", exp_in(1h)};

  auto o = options_for(redis.port());
  o.password = "s3cret-pass";
  auto c1 = RedisTokenCache::create(pool.get_executor(), o);
  cachetest::get_within(c1->async_put(k, t, boost::asio::use_future));

  o.username = "bot";
  o.password = "bot-pass";
  auto c2 = RedisTokenCache::create(pool.get_executor(), o);
  CHECK(cachetest::get_within(c2->async_get(k, boost::asio::use_future)) == t);

  o.username.clear();
  o.password = "wrong-password";
  auto bad = RedisTokenCache::create(pool.get_executor(), o);
  auto f = bad->async_get(k, boost::asio::use_future);
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  try {
    f.get();
    FAIL("AUTH with a wrong password succeeded");
  } catch (const Error& e) {
    CHECK((e.code() == make_error_code(errc::cache_unavailable)));
    CHECK(std::string(e.what()).find("AUTH") != std::string::npos);
    CHECK(std::string(e.what()).find("wrong-password") == std::string::npos);
  }

  auto rejected = [&](RedisTokenCacheOptions bad, const std::string& named) {
    try {
      RedisTokenCache::create(pool.get_executor(), bad);
      FAIL("accepted: " << named);
    } catch (const Error& e) {
      CHECK((e.code() == make_error_code(errc::invalid_argument)));
      CHECK_MESSAGE(std::string(e.what()).find(named) != std::string::npos, e.what());
    }
  };
  auto tls = options_for(redis.port());
  tls.tls_ca_file = "/etc/ssl/certs/ca-certificates.crt";
  rejected(tls, "tls is false");  // a TLS option without tls is a mistake, not ignored
  tls.tls = true;
  tls.tls_cert_file = "/nonexistent/client.crt";
  rejected(tls, "set both or neither");
  tls.tls_key_file = "/nonexistent/client.key";
  rejected(tls, "/nonexistent/client.crt");
  tls.tls_cert_file.clear();
  tls.tls_key_file.clear();
  tls.tls_ca_file = "/nonexistent/ca.crt";
  rejected(tls, "tls_ca_file (/nonexistent/ca.crt)");
  CHECK_THROWS_AS(RedisTokenCache::create(pool.get_executor(), RedisTokenCacheOptions{}), Error);  // no key
  pool.join();
}

TEST_CASE("RedisTokenCache: Redis killed mid-test -> direct fetches, one warning; restarted -> used again") {
  RedisServer redis;
  cachetest::check_outage_and_recovery(redis, options_for(redis.port()), TokenCacheKey("outage-user"));
}

TEST_CASE("RedisTokenCache: pooled connections Redis closed while idle are replaced, not an outage") {
  RedisServer redis;
  boost::asio::thread_pool pool(1);
  auto o = options_for(redis.port());
  const auto clock = cachetest::redis_test_clock();
  o.clock = clock;
  auto cache = RedisTokenCache::create(pool.get_executor(), o);
  const TokenCacheKey k("idle-user");
  const AccessToken t{"eyJidle-connection-token-0123456789", exp_in(10min)};
  cachetest::LogCapture logs;
  cachetest::get_within(cache->async_put(k, t, boost::asio::use_future));
  CHECK(cachetest::get_within(cache->async_get(k, boost::asio::use_future)) == t);

  // What `timeout N` in redis.conf or an operator's CLIENT KILL does to the idle pool.
  // (The command's own connection is excluded from the kill: SKIPME yes.)
  const auto killed = redis.command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  CHECK(killed != "0");
  // Redis closed them before answering the kill, so their FINs are queued; the pool's 250 ms
  // of trust (RedisConnection::trusted_idle) pass on the cache's clock.
  clock->advance(300ms);

  for (int i = 0; i < 3; ++i) CHECK(cachetest::get_within(cache->async_get(k, boost::asio::use_future)) == t);
  CHECK(logs.count("bypassed") == 0);  // no outage was declared
  pool.join();
}

TEST_CASE("RedisTokenCache: a closed cached credential releases its fetcher (no cycle through the single-flight)") {
  // The lock holder's fetch completion once kept the flight, which keeps the credential's
  // fetch context, whose cancellation slot keeps the inner fetch: nothing was ever freed.
  RedisServer redis;
  cachetest::CountingTokenService service(1h, 1ms);
  boost::asio::thread_pool pool(2);
  auto cache = RedisTokenCache::create(pool.get_executor(), options_for(redis.port()));
  auto guard = std::make_shared<int>(0);
  const std::weak_ptr<int> watched = guard;
  const int port = service.port();
  auto credential = make_cached_credential(
      pool.get_executor(), cache, TokenCacheKey("released"),
      Fetcher::blocking([guard = std::move(guard), port](const FetchContext&) { return cachetest::http_get_token(port); }));
  CHECK(credential->get_token(5s));
  CHECK(service.requests() == 1);  // the lock holder's path: GET miss, SET NX, fetch, SET, release
  credential->close();
  credential.reset();
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (!watched.expired() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
  CHECK(watched.expired());
  pool.join();
}

// "A dead lock holder blocks others only until the lock TTL" runs in virtual time:
// redis_flight_test.cpp, "RedisFlight: lock TTL: a dead holder's lock blocks others only until it expires".

TEST_CASE("RedisTokenCache: a holder whose lock expired does not delete the next holder's lock") {
  RedisServer redis;
  boost::asio::thread_pool pool(1), workers(2);
  auto o = options_for(redis.port());
  o.lock_ttl = 200ms;
  auto cache = RedisTokenCache::create(pool.get_executor(), o);
  const TokenCacheKey k("slow-holder");
  const auto lock = cachetest::redis_name(o, k, "lock:");
  std::string stolen;
  TokenCache::UpstreamFetch slow = [&](TokenCache::FetchDone done) {
    boost::asio::post(workers, [&, done] {
      // Redis expires the lock (200 ms) while the fetch runs; the next holder then takes it.
      const auto until = std::chrono::steady_clock::now() + 10s;
      while (redis.command({"EXISTS", lock}) != "0" && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(5ms);
      stolen = redis.command({"SET", lock, "next-owner", "NX", "PX", "10000"});
      done(nullptr, AccessToken{"slow-token-0123456789abcdef", exp_in(1h)});
    });
  };
  CHECK(get_or_fetch(*cache, k, slow).token == "slow-token-0123456789abcdef");
  CHECK(stolen == "OK");
  CHECK(redis.command({"GET", lock}) == "next-owner");  // compare-and-delete left it alone
  pool.join();
  workers.join();
}

TEST_CASE("RedisTokenCache: 8 processes x 50 concurrent callers on one stale key -> 1 fetch") {
  RedisServer redis;
  cachetest::CountingTokenService service(1h, 100ms);
  boost::asio::thread_pool pool(1);
  auto o = options_for(redis.port());
  o.expiry_margin = 0ms;
  auto seed = RedisTokenCache::create(pool.get_executor(), o);
  const TokenCacheKey k("fleet-user", {"chat"});
  // A token with 60 s left: stale for callers needing 2 min of validity.
  cachetest::get_within(seed->async_put(k, AccessToken{"old-token-0123456789abcdef", exp_in(60s)}, boost::asio::use_future));

  char tmpl[] = "/tmp/credkit-fleet-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const auto start_at = cachetest::unix_ms(std::chrono::system_clock::now() + 1500ms);
  std::vector<pid_t> kids;
  for (int p = 0; p < 8; ++p)
    kids.push_back(cachetest::spawn({cachetest::self_exe()},
                                    {{"CREDKIT_CACHES_CHILD", "redis-bot"},
                                     {"CREDKIT_REDIS_PORT", std::to_string(redis.port())},
                                     {"CREDKIT_TOKEN_PORT", std::to_string(service.port())},
                                     {"CREDKIT_START_AT", std::to_string(start_at)},
                                     {"CREDKIT_CHILD_OUT", dir + "/" + std::to_string(p)}},
                                    false));
  int ok = 0;
  for (auto pid : kids) ok += cachetest::wait_child(pid, 120s) == 0;
  std::set<std::string> tokens;
  int callers = 0;
  int errors_shown = 0;
  for (int p = 0; p < 8; ++p) {
    std::ifstream in(dir + "/" + std::to_string(p));
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("ERROR", 0) == 0 && errors_shown++ == 0) MESSAGE("a caller failed: " << line);
      tokens.insert(line);
      ++callers;
    }
  }
  std::filesystem::remove_all(dir);
  MESSAGE("multi-process single-flight: 8 processes x 50 callers = " << callers << " tokens received, "
                                                                      << tokens.size() << " distinct, "
                                                                      << service.requests() << " token service request(s)");
  CHECK(ok == 8);
  CHECK(callers == 400);
  CHECK(tokens.size() == 1);
  CHECK(service.requests() == 1);
  pool.join();
}

/// Child role "redis-bot": 50 on-demand credentials (one per caller, no in-process
/// coalescing) ask at the same moment; writes each caller's token on a line.
int redis_bot_child() {
  boost::asio::thread_pool pool(2);
  auto o = options_for(std::atoi(std::getenv("CREDKIT_REDIS_PORT")));
  o.coalesce_in_process = false;  // every caller goes to Redis: 400 contenders in all
  o.expiry_margin = 0ms;
  // 8 processes of 50 threads on a loaded (sanitized) machine: a healthy Redis must never
  // time out here, or a caller would fall back to a direct fetch.
  o.connect_timeout = 3s;
  o.command_timeout = 3s;
  o.retry_after_failure = 1s;
  auto cache = RedisTokenCache::create(pool.get_executor(), o);
  const int token_port = std::atoi(std::getenv("CREDKIT_TOKEN_PORT"));
  auto inner = Fetcher::blocking([token_port](const FetchContext&) { return cachetest::http_get_token(token_port); });
  const TokenCacheKey k("fleet-user", {"chat"});
  std::vector<std::shared_ptr<TokenCredential>> creds;
  for (int i = 0; i < 50; ++i) creds.push_back(make_cached_credential(pool.get_executor(), cache, k, inner));
  const auto start_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(std::atoll(std::getenv("CREDKIT_START_AT"))));
  std::vector<std::string> got(50);
  std::vector<std::thread> callers;
  for (int i = 0; i < 50; ++i)
    callers.emplace_back([&, i] {
      std::this_thread::sleep_until(start_at);
      try {
        got[i] = creds[i]->get_token(30s).token();
      } catch (const std::exception& e) {
        got[i] = std::string("ERROR ") + e.what();
      }
    });
  for (auto& t : callers) t.join();
  std::ofstream out(std::getenv("CREDKIT_CHILD_OUT"));
  int failures = 0;
  for (auto& g : got) {
    out << g << "\n";
    failures += g.rfind("ERROR", 0) == 0;
  }
  for (auto& c : creds) c->close();
  pool.join();
  return failures ? 1 : 0;
}

// The hit latency figures (Redis, memory, file) are bench/bench_redis.cpp's.

namespace {

// A leader instance whose upstream fetch holds a key's Redis lock until `let_go()`, and
// `waiter_count` other instances, all on a virtual clock that never moves (no poll timer and
// no wait_timeout fires, so only pushes end waits). Redis timeouts are generous: these cases
// are about who wakes the waiters, not Redis' speed (with options_for's 300 ms, a command slowed
// past it under TSan on a busy 2-core CI machine sent a waiter around Redis; failed twice so).
// Should an assertion fail, the destructor leaves nothing outstanding before the caches and
// the pool go (a REQUIRE unwound past the release once: the held fetch's worker reported into
// caches being destroyed, and completions were posted to a destroyed pool): it releases the
// fetch and joins its worker, moves the clock past wait_timeout so the waiters still waiting
// end, and waits for the pool's work.
struct HeldLeader {
  static constexpr const char* leader_token = "leader-token-0123456789abcdef";

  HeldLeader(int port, std::size_t waiter_count) {
    options = options_for(port);
    options.connect_timeout = 10s;
    options.command_timeout = 10s;
    options.clock = clock;
    leader = RedisTokenCache::create(pool.get_executor(), options);
    for (std::size_t i = 0; i < waiter_count; ++i) waiters.push_back(RedisTokenCache::create(pool.get_executor(), options));
  }
  ~HeldLeader() {
    let_go();
    workers.join();
    clock->advance(1h);
    pool.join();
  }

  /// Starts the leader's flight on `k`; returns once its fetch runs (it holds the lock).
  std::future<AccessToken> lead(const TokenCacheKey& k) {
    TokenCache::UpstreamFetch held = [this](TokenCache::FetchDone done) {
      entered.set_value();
      boost::asio::post(workers, [done, released = released] {
        released.wait();
        done(nullptr, AccessToken{leader_token, exp_in(1h)});
      });
    };
    auto leading = leader->async_get_or_fetch(k, 2min, held, boost::asio::use_future);
    REQUIRE(entered.get_future().wait_for(10s) == std::future_status::ready);
    return leading;
  }
  /// A waiter's flight on `k`, whose own fetch (it must never run) is counted.
  std::future<AccessToken> wait(RedisTokenCache& waiter, const TokenCacheKey& k) {
    TokenCache::UpstreamFetch never = [this](TokenCache::FetchDone done) {
      ++waiter_fetches;
      done(nullptr, AccessToken{"waiter-token-0123456789abcdef", exp_in(1h)});
    };
    return waiter.async_get_or_fetch(k, 2min, never, boost::asio::use_future);
  }
  /// True once every waiter's subscription is up, one flight of each waits, and each has taken
  /// at least `wakeups` pushes (within 30 s).
  bool all_waiting(std::uint64_t wakeups = 0) const {
    const auto until = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      if (std::all_of(waiters.begin(), waiters.end(), [&](auto& w) {
            const auto s = w->stats();
            return s.push_up && s.waiting == 1 && s.push_wakeups >= wakeups;
          }))
        return true;
      if (std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(1ms);
    }
  }
  void let_go() {
    if (!std::exchange(released_set, true)) release.set_value();
  }

  boost::asio::thread_pool pool{2}, workers{1};  // destroyed last
  std::shared_ptr<testing::ManualClock> clock = cachetest::redis_test_clock();
  RedisTokenCacheOptions options;
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  bool released_set = false;
  std::atomic<int> waiter_fetches{0};
  std::shared_ptr<RedisTokenCache> leader;
  std::vector<std::shared_ptr<RedisTokenCache>> waiters;
};

}  // namespace

TEST_CASE("RedisTokenCache: instances waiting on another's fetch are woken by push, not by their poll timer") {
  RedisServer redis;
  HeldLeader f(redis.port(), 3);
  const TokenCacheKey k("pushed-user", {"chat"});
  auto leading = f.lead(k);
  std::vector<std::future<AccessToken>> waiting;
  for (auto& w : f.waiters) waiting.push_back(f.wait(*w, k));
  // Each waiter's subscription comes up (confirmed by Redis) and its flight waits before the
  // leader stores.
  REQUIRE(f.all_waiting());
  for (auto& w : waiting) CHECK(w.wait_for(0s) == std::future_status::timeout);  // still waiting
  f.let_go();
  CHECK(cachetest::get_within(std::move(leading), 10s).token == HeldLeader::leader_token);
  for (auto& w : waiting) CHECK(cachetest::get_within(std::move(w), 10s).token == HeldLeader::leader_token);
  CHECK(f.waiter_fetches == 0);
  for (auto& w : f.waiters) {
    CHECK(w->stats().push_wakeups >= 1);
    CHECK(w->stats().pushed_records == 1);  // the token came in the push: no GET after it
    CHECK(w->stats().direct_fetches == 0);
  }
}

TEST_CASE("RedisTokenCache: a push's record is a hint only; forged, damaged and foreign records never complete a waiter") {
  // Anyone who may PUBLISH can write on the push channel. Generated payloads of every class
  // are published to a waiter's own lookup id while the leader holds the lock: each must end
  // the wait at most (the waiter then reads Redis, finds nothing, and waits again), never
  // complete it.
  RedisServer redis;
  HeldLeader f(redis.port(), 1);
  auto& waiter = *f.waiters.front();
  const auto& o = f.options;
  const TokenCacheKey k("forged-push-user", {"chat"});
  auto leading = f.lead(k);
  auto waiting = f.wait(waiter, k);
  REQUIRE(f.all_waiting());

  const std::string lock = cachetest::redis_name(o, k, "lock:");
  const std::string id = lock.substr(lock.find('{') + 1, lock.size() - lock.find('{') - 2);
  const std::string channel = o.key_prefix + "stored";
  const std::string salt = o.key_prefix;
  const auto salt_bytes = std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(salt.data()), salt.size());
  const detail::Keyring ours(o.keys, salt_bytes);
  const detail::Keyring foreign({CacheEncryptionKey::generate()}, salt_bytes);
  const AccessToken forged{"forged-token-0123456789abcdef", exp_in(1h)};
  std::mt19937_64 rng(20261205);
  const auto random_bytes = [&](std::size_t n) {
    std::string b(n, '\0');
    for (auto& c : b) c = static_cast<char>(rng() & 0xff);  // control bytes, spaces, NULs included
    return b;
  };
  const auto damaged = [&](std::string r) {
    r[rng() % r.size()] ^= static_cast<char>(1u << (rng() % 8));
    return r;
  };
  // Each class, a few generated instances; each names what it is for the failure message.
  std::vector<std::pair<std::string, std::string>> payloads;
  for (int i = 0; i < 6; ++i) {
    payloads.emplace_back("id only", id);
    payloads.emplace_back("empty record", id + " ");
    payloads.emplace_back("random bytes", id + " " + random_bytes(rng() % 300));
    payloads.emplace_back("record of another key", id + " " + ours.encrypt("another-user", forged));
    const auto genuine_shape = ours.encrypt(k.str(), forged);
    payloads.emplace_back("truncated record", id + " " + genuine_shape.substr(0, rng() % genuine_shape.size()));
    payloads.emplace_back("one bit flipped", id + " " + damaged(genuine_shape));
    payloads.emplace_back("record under a foreign key", id + " " + foreign.encrypt(k.str(), forged));
    payloads.emplace_back("stale record of this key",
                          id + " " + ours.encrypt(k.str(), AccessToken{"stale-token-0123456789abcdef", exp_in(1min)}));
    payloads.emplace_back("id with a trailing byte", id + random_bytes(1) + " " + genuine_shape);
  }
  std::uint64_t wakeups = waiter.stats().push_wakeups;
  std::uint64_t stale_records = 0;
  for (const auto& [what, payload] : payloads) {
    CAPTURE(what);
    const bool reaches_waiter = what != "id with a trailing byte" || payload.substr(0, id.size() + 1) == id + " ";
    REQUIRE(redis.command({"PUBLISH", channel, payload}) != "0");  // heard by the waiter's subscription at least
    if (reaches_waiter) REQUIRE(f.all_waiting(++wakeups));
    stale_records += what == "stale record of this key";
    REQUIRE(waiting.wait_for(0s) == std::future_status::timeout);
  }
  // Only the stale record (authentic, but with under min_validity left) was read from a push.
  CHECK(waiter.stats().pushed_records == stale_records);
  f.let_go();
  CHECK(cachetest::get_within(std::move(leading), 10s).token == HeldLeader::leader_token);
  CHECK(cachetest::get_within(std::move(waiting), 10s).token == HeldLeader::leader_token);
  CHECK(waiter.stats().pushed_records == stale_records + 1);
  CHECK(f.waiter_fetches == 0);
  CHECK(waiter.stats().direct_fetches == 0);
}
