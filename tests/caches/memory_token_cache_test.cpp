// MemoryTokenCache and the cache-aside fetcher: LRU bound, TTL in virtual time, posting,
// thread safety with real threads, one fetch per key.
#include <credkit/caches/cached_token_source.hpp>
#include <credkit/caches/memory_token_cache.hpp>
#include <credkit/testing/manual_clock.hpp>

#include "caches/cache_test_support.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <sstream>

using namespace credkit;
using namespace std::chrono_literals;

namespace {
AccessToken token_expiring(std::chrono::system_clock::time_point exp, const std::string& s = "token-secret-value-0123456789") {
  return AccessToken{s, exp};
}
}  // namespace

TEST_CASE("TokenCacheKey renders a stable, unambiguous string") {
  CHECK(TokenCacheKey("u", {"b", "a", "b"}).str() == TokenCacheKey("u", {"a", "b"}).str());
  CHECK(TokenCacheKey("u", {"a", "b"}) == TokenCacheKey("u", std::vector<std::string>{"b", "a"}));
  CHECK(TokenCacheKey("a", {"x y"}).str() != TokenCacheKey("a x", {"y"}).str());
  CHECK(TokenCacheKey("a,b", {}).str() != TokenCacheKey("a", {"b"}).str());
  CHECK(TokenCacheKey("user-1", {"chat", "voip"}).str() == "v1:6:user-1:2:4:chat,4:voip");
  std::ostringstream os;
  os << TokenCacheKey("u", {"chat"});
  CHECK(os.str() == "TokenCacheKey{user=u, scopes=[chat]}");
}

TEST_CASE("MemoryTokenCache: round trip, TTL = expiry - margin, explicit TTL, erase (virtual time)") {
  auto clock = std::make_shared<testing::ManualClock>();
  boost::asio::io_context io;
  MemoryTokenCacheOptions o;
  o.expiry_margin = 30s;
  o.clock = clock;
  auto cache = MemoryTokenCache::create(io.get_executor(), o);
  const TokenCacheKey k("user-1", {"chat"});
  const auto t = token_expiring(clock->now() + 10min);

  bool put_done = false;
  cache->async_put(k, t, [&](std::exception_ptr e) {
    CHECK(!e);
    put_done = true;
  });
  CHECK(!put_done);  // posted, never inline
  io.run();
  io.restart();
  CHECK(put_done);

  std::optional<AccessToken> got;
  cache->async_get(k, [&](std::exception_ptr e, std::optional<AccessToken> v) {
    CHECK(!e);
    got = v;
  });
  io.run();
  io.restart();
  REQUIRE(got);
  CHECK(*got == t);

  clock->advance(10min - 30s - 1ms);
  CHECK(cache->get(k).has_value());
  clock->advance(1ms);
  CHECK(!cache->get(k).has_value());  // past expiry - margin

  cache->put(k, token_expiring(clock->now() + 1h), 5s);  // explicit TTL shorter than expiry
  clock->advance(4s);
  CHECK(cache->get(k).has_value());
  clock->advance(1s);
  CHECK(!cache->get(k).has_value());

  cache->put(k, token_expiring(clock->now() + 20s));  // already inside the margin: not stored
  CHECK(cache->size() == 0);

  cache->put(k, token_expiring(clock->now() + 1h));
  cache->erase(k);
  CHECK(!cache->get(k));
  CHECK_THROWS_AS(cache->put(k, t, -1ms), Error);
}

TEST_CASE("MemoryTokenCache: bounded LRU evicts the least recently used entry") {
  boost::asio::io_context io;
  MemoryTokenCacheOptions o;
  o.max_entries = 3;
  o.shards = 1;
  auto cache = MemoryTokenCache::create(io.get_executor(), o);
  const auto exp = std::chrono::system_clock::now() + 1h;
  for (int i = 0; i < 3; ++i) cache->put(TokenCacheKey("u" + std::to_string(i)), token_expiring(exp));
  CHECK(cache->get(TokenCacheKey("u0")));  // u0 becomes most recent; u1 is now the LRU
  cache->put(TokenCacheKey("u3"), token_expiring(exp));
  CHECK(cache->size() == 3);
  CHECK(!cache->get(TokenCacheKey("u1")));
  CHECK(cache->get(TokenCacheKey("u0")));
  CHECK(cache->get(TokenCacheKey("u2")));
  CHECK(cache->get(TokenCacheKey("u3")));

  // Sharded: the bound holds overall.
  o.max_entries = 64;
  o.shards = 8;
  auto sharded = MemoryTokenCache::create(io.get_executor(), o);
  for (int i = 0; i < 1000; ++i) sharded->put(TokenCacheKey("k" + std::to_string(i)), token_expiring(exp));
  CHECK(sharded->size() <= 64);
  CHECK(sharded->size() >= 32);
  MemoryTokenCacheOptions unbounded;
  unbounded.max_entries = 0;
  CHECK_THROWS_AS(MemoryTokenCache::create(io.get_executor(), unbounded), Error);
}

TEST_CASE("MemoryTokenCache: concurrent readers and writers on real threads") {
  boost::asio::thread_pool pool(2);
  MemoryTokenCacheOptions o;
  o.max_entries = 256;
  auto cache = MemoryTokenCache::create(pool.get_executor(), o);
  const auto exp = std::chrono::system_clock::now() + 1h;
  std::atomic<int> wrong{0}, hits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3000; ++i) {
        const std::string user = "u" + std::to_string((i * 7 + t) % 300);
        if (i % 5 == 0) {
          cache->put(TokenCacheKey(user), token_expiring(exp, "tok-for-the-user-" + user));
        } else if (i % 97 == 0) {
          cache->erase(TokenCacheKey(user));
        } else if (auto v = cache->get(TokenCacheKey(user))) {
          ++hits;
          if (v->token != "tok-for-the-user-" + user) ++wrong;
        }
      }
    });
  }
  // And async calls from the pool at the same time.
  std::vector<std::future<std::optional<AccessToken>>> futures;
  for (int i = 0; i < 200; ++i) futures.push_back(cache->async_get(TokenCacheKey("u" + std::to_string(i)), boost::asio::use_future));
  for (auto& th : threads) th.join();
  for (auto& f : futures) {
    auto v = cachetest::get_within(std::move(f));
    if (v) CHECK(v->token.rfind("tok-for-the-user-u", 0) == 0);
  }
  CHECK(wrong == 0);
  CHECK(hits > 0);
  CHECK(cache->size() <= 256);
  pool.join();
}

TEST_CASE("cached fetcher: on-demand credentials over one cache share one fetch per key") {
  boost::asio::thread_pool pool(2);
  auto cache = MemoryTokenCache::create(pool.get_executor());
  std::atomic<int> fetches{0};
  auto inner = Fetcher::async([&](FetchContext, FetchCompletion c) {
    const int n = ++fetches;
    std::thread([n, c = std::move(c)]() mutable {
      std::this_thread::sleep_for(50ms);
      c.succeed(AccessToken{"fetched-" + std::to_string(n) + "-0123456789abcdef", std::chrono::system_clock::now() + 1h});
    }).detach();
  });
  const TokenCacheKey key("bot-user", {"chat"});
  std::vector<std::shared_ptr<TokenCredential>> creds;
  for (int i = 0; i < 20; ++i) creds.push_back(make_cached_credential(pool.get_executor(), cache, key, inner));
  std::vector<std::future<TokenHandle>> results;
  for (auto& c : creds) results.push_back(c->async_get_token(boost::asio::use_future));
  std::string first;
  for (auto& f : results) {
    auto h = cachetest::get_within(std::move(f));
    if (first.empty()) first = h.token();
    CHECK(h.token() == first);
  }
  CHECK(fetches == 1);

  // A new credential for the same key reads the cache: no fetch.
  auto later = make_cached_credential(pool.get_executor(), cache, key, inner);
  CHECK(later->get_token(10s).token() == first);
  CHECK(fetches == 1);

  // A rejected token is erased and fetched again, once.
  CHECK(later->invalidate(first));
  CHECK(later->get_token(10s).token() != first);
  CHECK(fetches == 2);

  // A cached token below min validity is refetched.
  const TokenCacheKey short_key("short-user");
  cache->put(short_key, AccessToken{"short-lived-token-0123456789", std::chrono::system_clock::now() + 90s}, std::nullopt);
  auto c2 = make_cached_credential(pool.get_executor(), cache, short_key, inner);  // min_validity 2 min
  CHECK(c2->get_token(10s).token().rfind("fetched-", 0) == 0);
  CHECK(fetches == 3);

  for (auto& c : creds) c->close();
  later->close();
  c2->close();
  CHECK_THROWS_AS(make_cached_fetcher(nullptr, key, inner), Error);
  CHECK_THROWS_AS(make_cached_fetcher(cache, key, Fetcher{}), Error);
  pool.join();
}

TEST_CASE("cached fetcher: a failing inner fetch fails the credential, nothing is cached") {
  boost::asio::thread_pool pool(2);
  auto cache = MemoryTokenCache::create(pool.get_executor());
  auto inner = Fetcher::blocking([](const FetchContext&) -> AccessToken {
    throw Error(errc::http_status, "token service said 500");
  });
  auto cred = make_cached_credential(pool.get_executor(), cache, TokenCacheKey("x"), inner);
  try {
    cred->get_token(10s);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK((error_code_of(e.cause() ? e.cause() : std::make_exception_ptr(e)) == make_error_code(errc::http_status)));
  }
  CHECK(cache->size() == 0);
  cred->close();
  pool.join();
}
