// The caches' side of the metrics: every lookup's outcome (hit, miss, error) reaches the
// observer once, Redis fallbacks are reported, a throwing observer is logged and changes
// nothing, and each cache's options check metrics_name.
#include <credkit/caches.hpp>
#include <credkit/testing/manual_clock.hpp>

#include "support/async_helpers.hpp"
#include "support/log_capture.hpp"
#include "support/loopback_port.hpp"

#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <future>

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono_literals;

namespace {

/// Counts what caches report, by "<cache>/<event>".
class RecordingObserver : public MetricsObserver {
 public:
  void cache_lookup(std::string_view cache, CacheLookup outcome) override {
    add(std::string(cache) + "/" + std::string(to_string(outcome)));
  }
  void redis_redirect(std::string_view cache) override { add(std::string(cache) + "/redirect"); }
  void redis_fallback(std::string_view cache) override { add(std::string(cache) + "/fallback"); }

  int count(const std::string& what) const {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(what);
    return it == counts_.end() ? 0 : it->second;
  }
  int total() const {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (const auto& [what, c] : counts_) n += c;
    return n;
  }

 private:
  void add(const std::string& what) {
    std::lock_guard lock(mutex_);
    ++counts_[what];
  }
  mutable std::mutex mutex_;
  std::map<std::string, int> counts_;
};

AccessToken token_until(std::chrono::system_clock::time_point expiry) {
  return {"metrics-test-token-0123456789abcdef", expiry};
}

/// A backend whose reads fail: thrown from the hook, or reported through `done`.
class FailingCache final : public TokenCache {
 public:
  FailingCache(boost::asio::io_context& io, std::shared_ptr<MetricsObserver> metrics, bool throw_from_hook,
               std::string name = "failing")
      : TokenCache(io.get_executor(), nullptr, false, std::move(metrics), std::move(name)), throw_(throw_from_hook) {}

 protected:
  void do_get(std::string, GetDone done) override {
    if (throw_) throw_error(errc::cache_io_error, "the test backend cannot read");
    done(std::make_exception_ptr(Error(errc::cache_corrupt, "the test backend's record is damaged")), std::nullopt);
  }
  void do_put(std::string, AccessToken, std::optional<std::chrono::milliseconds>, WriteDone done) override {
    done(nullptr);
  }
  void do_erase(std::string, WriteDone done) override { done(nullptr); }

 private:
  bool throw_;
};

}  // namespace

TEST_CASE("memory cache: each lookup reports one hit or miss, stale entries and sync reads included") {
  boost::asio::io_context io;
  auto clock = std::make_shared<testing::ManualClock>();
  auto observer = std::make_shared<RecordingObserver>();
  MemoryTokenCacheOptions options;
  options.clock = clock;
  options.expiry_margin = 30s;
  options.metrics = observer;
  options.metrics_name = "mem-1";
  auto cache = MemoryTokenCache::create(io.get_executor(), options);
  const TokenCacheKey key("user-1");

  auto get = [&] {
    return run_op<std::optional<AccessToken>>(io, [&](auto h) { cache->async_get(key, std::move(h)); });
  };
  CHECK_FALSE(get().value);  // absent
  cache->put(key, token_until(clock->now() + 10min));
  CHECK(get().value);          // async hit
  CHECK(cache->get(key));      // sync hit
  clock->advance(9min + 31s);  // inside the 30 s margin: stale, a miss
  CHECK_FALSE(get().value);
  CHECK(observer->count("mem-1/hit") == 2);
  CHECK(observer->count("mem-1/miss") == 2);

  // Cache-aside: a miss runs the fetch and stores, the next read is a hit.
  int fetches = 0;
  auto get_or_fetch = [&] {
    return run_op<AccessToken>(io, [&](auto h) {
      cache->async_get_or_fetch(key, 2min, [&](TokenCache::FetchDone done) {
        ++fetches;
        done(nullptr, token_until(clock->now() + 1h));
      }, std::move(h));
    });
  };
  CHECK_FALSE(get_or_fetch().error);
  CHECK_FALSE(get_or_fetch().error);
  CHECK(fetches == 1);
  CHECK(observer->count("mem-1/miss") == 3);
  CHECK(observer->count("mem-1/hit") == 3);
  CHECK(observer->count("mem-1/error") == 0);
  CHECK(observer->total() == 6);
}

TEST_CASE("a backend's read failure is one error lookup, thrown or reported, and get_or_fetch still fetches") {
  boost::asio::io_context io;
  auto observer = std::make_shared<RecordingObserver>();
  const TokenCacheKey key("user-2");
  for (bool thrown : {false, true}) {
    CAPTURE(thrown);
    auto cache = std::make_shared<FailingCache>(io, observer, thrown);
    auto got = run_op<std::optional<AccessToken>>(io, [&](auto h) { cache->async_get(key, std::move(h)); });
    CHECK(got.error);
  }
  CHECK(observer->count("failing/error") == 2);

  auto cache = std::make_shared<FailingCache>(io, observer, false);
  LogCapture logs;
  auto fetched = run_op<AccessToken>(io, [&](auto h) {
    cache->async_get_or_fetch(key, 0ms, [](TokenCache::FetchDone done) {
      done(nullptr, token_until(std::chrono::system_clock::now() + 1h));
    }, std::move(h));
  });
  CHECK_FALSE(fetched.error);
  CHECK(observer->count("failing/error") == 3);
  CHECK(observer->total() == 3);
}

TEST_CASE("Redis unreachable: the flight's read is an error lookup and its direct fetch a fallback") {
  // The flight runs on the cache I/O threads: its handler is posted to a pool of ours.
  boost::asio::thread_pool handlers(1);
  auto observer = std::make_shared<RecordingObserver>();
  RedisTokenCacheOptions options;
  options.host = "127.0.0.1";
  options.port = free_loopback_port();  // nothing listens: connect is refused at once
  options.keys.push_back(CacheEncryptionKey::generate());
  options.metrics = observer;
  options.metrics_name = "redis-down";
  auto cache = RedisTokenCache::create(handlers.get_executor(), options);
  LogCapture logs;
  auto fetched = cache->async_get_or_fetch(TokenCacheKey("user-3"), 2min, [](TokenCache::FetchDone done) {
    done(nullptr, token_until(std::chrono::system_clock::now() + 1h));
  }, boost::asio::use_future);
  REQUIRE(fetched.wait_for(20s) == std::future_status::ready);
  CHECK_NOTHROW(fetched.get());
  CHECK(observer->count("redis-down/error") == 1);
  CHECK(observer->count("redis-down/fallback") == 1);
  CHECK(cache->stats().direct_fetches == 1);
  CHECK(observer->total() == 2);
}

TEST_CASE("an observer that throws is logged; the lookup completes as without it") {
  struct ThrowingObserver : MetricsObserver {
    void cache_lookup(std::string_view, CacheLookup) override { throw std::runtime_error("observer broke"); }
  };
  boost::asio::io_context io;
  MemoryTokenCacheOptions options;
  options.metrics = std::make_shared<ThrowingObserver>();
  auto cache = MemoryTokenCache::create(io.get_executor(), options);
  const TokenCacheKey key("user-4");
  cache->put(key, token_until(std::chrono::system_clock::now() + 1h));
  LogCapture logs;
  auto got = run_op<std::optional<AccessToken>>(io, [&](auto h) { cache->async_get(key, std::move(h)); });
  CHECK_FALSE(got.error);
  CHECK(got.value);
  CHECK(cache->get(key));
  CHECK(logs.count("metrics observer hook threw") == 2);
}

TEST_CASE("each cache's options check metrics_name with the label rule") {
  auto rejected = [](auto options) {
    try {
      options.validate();
    } catch (const Error& e) {
      return e.code() == make_error_code(errc::invalid_argument) &&
             std::string(e.what()).find("metrics_name") != std::string::npos;
    }
    return false;
  };
  for (const std::string& bad : std::vector<std::string>{"", "has space", "quote\"", std::string(65, 'a'), "new\nline", "brace{"}) {
    CAPTURE(bad);
    MemoryTokenCacheOptions memory;
    memory.metrics_name = bad;
    CHECK(rejected(memory));
    EncryptedFileTokenCacheOptions file;
    file.path = "/tmp/unused-metrics-test-cache";
    file.keys.push_back(CacheEncryptionKey::generate());
    file.metrics_name = bad;
    CHECK(rejected(file));
    RedisTokenCacheOptions redis;
    redis.keys.push_back(CacheEncryptionKey::generate());
    redis.metrics_name = bad;
    CHECK(rejected(redis));
  }
  // A backend of the user's passes its name to the base class, which checks it too.
  boost::asio::io_context io;
  CHECK_THROWS_AS(FailingCache(io, std::make_shared<RecordingObserver>(), false, "bad name"), Error);
  CHECK_THROWS_AS(FailingCache(io, nullptr, false, "bad name"), Error);
  CHECK_NOTHROW(FailingCache(io, nullptr, false, "custom-backend"));
  CHECK(MemoryTokenCacheOptions{}.metrics_name == "memory");
  CHECK(EncryptedFileTokenCacheOptions{}.metrics_name == "file");
  CHECK(RedisTokenCacheOptions{}.metrics_name == "redis");
}
