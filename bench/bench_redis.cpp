// credkit bench — a RedisTokenCache hit (GET + decrypt + parse) against a bare hiredis GET
// loop on the same key, over loopback, against a redis-server this benchmark starts.
// The bare loop runs inline on the benchmark thread; a credkit hit hands the wait for Redis to
// a cache I/O thread and its completion back (the async contract), so a second bare variant
// makes the same two thread hand-offs (post to a pool thread, fulfil a promise) for a fair ratio.
// The other caches' hits (memory, sync and async; encrypted file of 100 entries) are measured
// beside it, for the "Choosing a cache" comparison in docs/caches.md.
#include "bench_support.hpp"
#include "support/child_server.hpp"

#include <credkit/caches/encrypted_file_token_cache.hpp>
#include <credkit/caches/memory_token_cache.hpp>
#include <credkit/caches/redis_token_cache.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <csignal>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// A redis-server on a loopback port for the process's lifetime.
struct RedisServer {
  unsigned short port = credkit::test::free_loopback_port();
  credkit::test::ChildServer server{{"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1", "--save",
                                     "", "--appendonly", "no", "--logfile", "/dev/null"},
                                    port};
};

struct Fixture {
  RedisServer server;
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::thread thread{[this] { io.run(); }};
  std::shared_ptr<credkit::RedisTokenCache> cache;
  credkit::TokenCacheKey key{"bench-user", {"chat", "voip"}};
  std::string redis_key;
  std::size_t token_bytes = 0;
  Fixture() {
    credkit::RedisTokenCacheOptions o;
    o.port = server.port;
    o.keys.push_back(credkit::CacheEncryptionKey::generate());
    cache = credkit::RedisTokenCache::create(io.get_executor(), std::move(o));
    auto token = credkit::bench::make_token(std::chrono::system_clock::now() + 1h, 7);
    token_bytes = token.token.size();
    cache->async_put(key, token, asio::use_future).get();
    redisContext* c = redisConnect("127.0.0.1", server.port);
    auto* r = static_cast<redisReply*>(redisCommand(c, "KEYS *tok:*"));
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1) redis_key = r->element[0]->str;
    if (r) freeReplyObject(r);
    redisFree(c);
    if (redis_key.empty()) throw std::runtime_error("the cache's Redis key was not found");
  }
  ~Fixture() {
    cache.reset();
    work.reset();
    thread.join();
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void report_percentiles(benchmark::State& state, std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  if (us.empty()) return;
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
}

void BM_Redis_CredkitCacheHit(benchmark::State& state) {
  auto& f = fixture();
  std::vector<double> us;
  us.reserve(1 << 16);
  std::size_t bytes = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    std::optional<credkit::AccessToken> t = f.cache->async_get(f.key, asio::use_future).get();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    if (!t) {
      state.SkipWithError("cache miss");
      break;
    }
    bytes += t->token.size();
  }
  benchmark::DoNotOptimize(bytes);
  report_percentiles(state, us);
  state.counters["token_bytes"] = double(f.token_bytes);
}

void BM_Redis_BareHiredisGet(benchmark::State& state) {
  auto& f = fixture();
  redisContext* c = redisConnect("127.0.0.1", f.server.port);
  std::vector<double> us;
  us.reserve(1 << 16);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", f.redis_key.data(), f.redis_key.size()));
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    if (!r || r->type != REDIS_REPLY_STRING) {
      state.SkipWithError("GET failed");
      if (r) freeReplyObject(r);
      break;
    }
    benchmark::DoNotOptimize(r->len);
    freeReplyObject(r);
  }
  redisFree(c);
  report_percentiles(state, us);
}

// The bare GET with credkit's hand-offs: posted to a pool thread, result through a promise.
void BM_Redis_BareHiredisGetSameHops(benchmark::State& state) {
  auto& f = fixture();
  asio::thread_pool worker(1);
  redisContext* c = redisConnect("127.0.0.1", f.server.port);
  std::vector<double> us;
  us.reserve(1 << 16);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    std::promise<std::size_t> done;
    auto result = done.get_future();
    asio::post(worker, [&] {
      auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", f.redis_key.data(), f.redis_key.size()));
      const std::size_t len = r && r->type == REDIS_REPLY_STRING ? r->len : 0;
      if (r) freeReplyObject(r);
      done.set_value(len);
    });
    const std::size_t len = result.get();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    if (len == 0) {
      state.SkipWithError("GET failed");
      break;
    }
    benchmark::DoNotOptimize(len);
  }
  worker.join();
  redisFree(c);
  report_percentiles(state, us);
}

// A MemoryTokenCache hit through the synchronous `get` (a shard lock, no hand-off).
void BM_Memory_CacheHitSync(benchmark::State& state) {
  auto& f = fixture();
  auto memory = credkit::MemoryTokenCache::create(f.io.get_executor());
  memory->put(f.key, credkit::bench::make_token(std::chrono::system_clock::now() + 1h, 7));
  for (auto _ : state) {
    auto t = memory->get(f.key);
    if (!t) {
      state.SkipWithError("cache miss");
      break;
    }
    benchmark::DoNotOptimize(t);
  }
}

// The same hit through `async_get` with a future: the completion's thread hop dominates.
void BM_Memory_CacheHitAsync(benchmark::State& state) {
  auto& f = fixture();
  auto memory = credkit::MemoryTokenCache::create(f.io.get_executor());
  memory->put(f.key, credkit::bench::make_token(std::chrono::system_clock::now() + 1h, 7));
  std::vector<double> us;
  us.reserve(1 << 16);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto t = memory->async_get(f.key, asio::use_future).get();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    if (!t) {
      state.SkipWithError("cache miss");
      break;
    }
  }
  report_percentiles(state, us);
}

// An EncryptedFileTokenCache hit in a file of 100 entries (a stat, then one AES-GCM decryption).
void BM_File_CacheHit100Entries(benchmark::State& state) {
  auto& f = fixture();
  char dir_template[] = "/tmp/credkit-bench-file-XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  credkit::EncryptedFileTokenCacheOptions o;
  o.path = dir + "/tokens.bin";
  o.keys.push_back(credkit::CacheEncryptionKey::generate());
  auto file = credkit::EncryptedFileTokenCache::create(f.io.get_executor(), std::move(o));
  const auto token = credkit::bench::make_token(std::chrono::system_clock::now() + 1h, 7);
  for (int i = 0; i < 100; ++i)
    file->async_put(credkit::TokenCacheKey("user-" + std::to_string(i)), token, asio::use_future).get();
  const credkit::TokenCacheKey hit("user-7");
  std::vector<double> us;
  us.reserve(1 << 16);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto t = file->async_get(hit, asio::use_future).get();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    if (!t) {
      state.SkipWithError("cache miss");
      break;
    }
  }
  report_percentiles(state, us);
  std::filesystem::remove_all(dir);
}

}  // namespace

BENCHMARK(BM_Redis_CredkitCacheHit)->UseRealTime();
BENCHMARK(BM_Redis_BareHiredisGet)->UseRealTime();
BENCHMARK(BM_Redis_BareHiredisGetSameHops)->UseRealTime();
BENCHMARK(BM_Memory_CacheHitSync);
BENCHMARK(BM_Memory_CacheHitAsync)->UseRealTime();
BENCHMARK(BM_File_CacheHit100Entries)->UseRealTime();

BENCHMARK_MAIN();
