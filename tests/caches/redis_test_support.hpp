// Helpers shared by the Redis cache tests, plain and TLS: an upstream fetch from the counting
// token service, blocking wrappers, and the kill/restart scenario both transports must pass.
#pragma once

#include <credkit/caches/redis_token_cache.hpp>
#include <credkit/testing/manual_clock.hpp>

#include "caches/cache_test_support.hpp"
#include "caches/record_crypto.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

namespace credkit::cachetest {

/// The Redis key a cache with options `o` stores `k`'s token (`kind` "tok:") or lock ("lock:")
/// under: `<prefix><kind>{<keyed hash of k>}`, the braces a Redis Cluster hash tag.
inline std::string redis_name(const RedisTokenCacheOptions& o, const TokenCacheKey& k, const char* kind) {
  const std::string salt = o.kdf_salt.empty() ? o.key_prefix : o.kdf_salt;
  detail::Keyring kr(o.keys, std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(salt.data()), salt.size()));
  return o.key_prefix + kind + "{" + detail::to_hex(detail::Keyring::lookup(kr.primary(), k.str())) + "}";
}

/// An upstream fetch that asks the counting service from a worker thread.
inline TokenCache::UpstreamFetch service_fetch(boost::asio::thread_pool& workers, int port) {
  return [&workers, port](TokenCache::FetchDone done) {
    boost::asio::post(workers, [done, port] {
      try {
        done(nullptr, http_get_token(port));
      } catch (...) {
        done(std::current_exception(), {});
      }
    });
  };
}

inline AccessToken get_or_fetch(TokenCache& cache, const TokenCacheKey& k, TokenCache::UpstreamFetch f,
                                std::chrono::milliseconds min_validity = std::chrono::minutes(2)) {
  return get_within(cache.async_get_or_fetch(k, min_validity, std::move(f), boost::asio::use_future),
                    std::chrono::seconds(30));
}

/// The error `async_get` fails with (fails the test if it succeeds).
inline Error get_error(TokenCache& cache, const TokenCacheKey& k,
                       std::chrono::milliseconds within = std::chrono::seconds(20)) {
  auto f = cache.async_get(k, boost::asio::use_future);
  REQUIRE(f.wait_for(within) == std::future_status::ready);
  try {
    auto t = f.get();
    FAIL("async_get succeeded: " << (t ? "a token" : "a miss"));
  } catch (const Error& e) {
    return e;
  }
  return Error(errc::no_token, "unreachable");
}

/// A cache clock for the Redis tests: virtual, starting at the real time (the token service's
/// tokens expire by the real clock), moved by the tests past retry_after_failure and idle trust.
inline std::shared_ptr<testing::ManualClock> redis_test_clock() {
  return std::make_shared<testing::ManualClock>(std::chrono::system_clock::now());
}

/// Redis killed mid-run, then restarted on its port: while it is down every call fetches
/// directly with one warning per outage and reads fail with cache_unavailable; once it is back
/// (the cache's clock, a `redis_test_clock`, moved 250 ms: past `retry_after_failure`, which
/// must be under that) tokens are stored in it again. `options` connect to `redis`, with
/// nothing stored under `k`.
inline void check_outage_and_recovery(RedisServer& redis, RedisTokenCacheOptions options, const TokenCacheKey& k) {
  boost::asio::thread_pool pool(1);
  const auto clock = redis_test_clock();
  options.clock = clock;
  auto cache_ptr = RedisTokenCache::create(pool.get_executor(), std::move(options));
  auto& cache = *cache_ptr;
  CountingTokenService service(std::chrono::hours(1), std::chrono::milliseconds(5));
  boost::asio::thread_pool workers(2);
  auto fetch = service_fetch(workers, service.port());
  LogCapture logs;

  const auto first = get_or_fetch(cache, k, fetch);
  CHECK(service.requests() == 1);
  CHECK(get_or_fetch(cache, k, fetch) == first);  // from Redis
  CHECK(service.requests() == 1);

  redis.stop();
  for (int i = 0; i < 5; ++i) {
    auto t = get_or_fetch(cache, k, fetch);  // falls back: fetches directly
    CHECK(t.token.rfind("tok-", 0) == 0);
  }
  CHECK(service.requests() == 6);
  CHECK(logs.count("bypassed") == 1);  // once per outage, not per call
  CHECK((get_error(cache, k, std::chrono::seconds(10)).code() == make_error_code(errc::cache_unavailable)));

  redis.start();  // same port, empty data
  clock->advance(std::chrono::milliseconds(250));  // past retry_after_failure
  const auto refetched = get_or_fetch(cache, k, fetch);
  CHECK(service.requests() == 7);
  CHECK(logs.count("reachable again") == 1);
  CHECK(get_or_fetch(cache, k, fetch) == refetched);  // stored in the restarted Redis
  CHECK(service.requests() == 7);
  workers.join();
  pool.join();
}

}  // namespace credkit::cachetest
