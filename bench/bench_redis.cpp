// credkit bench — a RedisTokenCache hit (GET + decrypt + parse) against a bare hiredis GET
// loop on the same key, over loopback, against a redis-server this benchmark starts.
// The bare loop runs inline on the benchmark thread; a credkit hit hands the wait for Redis to
// a cache I/O thread and its completion back (the async contract), so a second bare variant
// makes the same two thread hand-offs (post to a pool thread, fulfil a promise) for a fair ratio.
// The other caches' hits (memory, sync and async; encrypted file of 100 entries) are measured
// beside it, for the "Choosing a cache" comparison in docs/caches.md. Last, the hand-off between
// instances: how soon instances waiting on another's fetch get its token, woken by push or by polling.
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
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <random>
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

// The `percent`th percentile of `sorted` (not empty), by rank.
double percentile(const std::vector<double>& sorted, std::size_t percent) {
  return sorted[std::min(sorted.size() - 1, sorted.size() * percent / 100)];
}

void report_percentiles(benchmark::State& state, std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  if (us.empty()) return;
  state.counters["p50_us"] = percentile(us, 50);
  state.counters["p99_us"] = percentile(us, 99);
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

// ---- The hand-off between instances: push wake-ups against polling ---------------------
// One leader instance takes a fresh key's Redis lock and runs an upstream fetch the benchmark
// holds open; `handoff_waiters` other instances (separate RedisTokenCache objects, each with its
// own subscription) wait on it. The benchmark then lets the fetch report its token (t0) and
// takes each waiter's completion time in its handler: the hand-off is the difference.

constexpr std::size_t handoff_waiters = 8;
constexpr int handoff_rounds = 200;
constexpr int handoff_warmup_rounds = 3;  // not recorded: first use of connections and scripts
constexpr auto handoff_step_limit = 5s;   // the bound of every handshake of a round

// What the instances of one hand-off run report to the benchmark thread, under one mutex.
struct HandoffBoard {
  explicit HandoffBoard(std::size_t waiters)
      : waits_armed(waiters), done_at(waiters), tokens(waiters), errors(waiters) {}

  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::uint64_t> waits_armed;  // per waiter: poll timers armed so far
  std::vector<std::optional<std::chrono::steady_clock::time_point>> done_at;  // per waiter, this round
  std::vector<std::string> tokens;                                             // per waiter, this round
  std::vector<std::exception_ptr> errors;                                      // per waiter, this round
  credkit::TokenCache::FetchDone leader_fetch;  // the leader's upstream fetch, held open
  bool leader_done = false;

  template <typename Change>
  void update(Change change) {
    {
      std::lock_guard lock(mutex);
      change();
    }
    changed.notify_all();
  }

  template <typename Ready>
  bool wait_for(Ready ready) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, handoff_step_limit, ready);
  }
};

// The system clock, but a waiter's flight arming its poll timer is reported to the board: the
// flight is then waiting on the leader (a push from then on ends the wait at once).
class WaitReportingClock final : public credkit::Clock {
 public:
  WaitReportingClock(std::shared_ptr<HandoffBoard> board, std::size_t waiter)
      : board_(std::move(board)), waiter_(waiter) {}
  time_point now() const noexcept override { return system_->now(); }
  time_point coarse_now() const noexcept override { return system_->coarse_now(); }
  std::chrono::nanoseconds elapsed() const override { return system_->elapsed(); }
  std::unique_ptr<credkit::Timer> make_timer(const asio::any_io_executor& executor) override {
    return std::make_unique<ReportingTimer>(system_->make_timer(executor), board_, waiter_);
  }

 private:
  class ReportingTimer final : public credkit::Timer {
   public:
    ReportingTimer(std::unique_ptr<credkit::Timer> timer, std::shared_ptr<HandoffBoard> board, std::size_t waiter)
        : timer_(std::move(timer)), board_(std::move(board)), waiter_(waiter) {}
    void async_wait_for(std::chrono::nanoseconds duration, std::function<void(bool)> handler) override {
      timer_->async_wait_for(duration, std::move(handler));
      board_->update([&] { ++board_->waits_armed[waiter_]; });
    }
    void cancel() noexcept override { timer_->cancel(); }

   private:
    std::unique_ptr<credkit::Timer> timer_;
    std::shared_ptr<HandoffBoard> board_;
    std::size_t waiter_;
  };

  std::shared_ptr<credkit::Clock> system_ = credkit::Clock::system();
  std::shared_ptr<HandoffBoard> board_;
  std::size_t waiter_;
};

std::shared_ptr<credkit::RedisTokenCache> make_handoff_instance(bool push, const credkit::CacheEncryptionKey& key,
                                                                std::shared_ptr<credkit::Clock> clock) {
  credkit::RedisTokenCacheOptions o;
  o.port = fixture().server.port;
  o.key_prefix = push ? "handoff-push:" : "handoff-poll:";  // the two runs never hear each other
  o.keys.push_back(key);
  o.push_wakeups = push;
  o.clock = std::move(clock);
  return credkit::RedisTokenCache::create(fixture().io.get_executor(), std::move(o));
}

// A fetch that reports a fresh token at once.
credkit::TokenCache::UpstreamFetch immediate_fetch() {
  return [](credkit::TokenCache::FetchDone report) {
    report(nullptr, credkit::bench::make_token(std::chrono::system_clock::now() + 1h));
  };
}

// Waits, at most handoff_step_limit, until every instance's push subscription is confirmed.
bool subscriptions_up(const std::vector<std::shared_ptr<credkit::RedisTokenCache>>& instances) {
  const auto end = std::chrono::steady_clock::now() + handoff_step_limit;
  while (!std::all_of(instances.begin(), instances.end(), [](const auto& c) { return c->stats().push_up; })) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// One round on a fresh key; returns each waiter's hand-off in µs, or throws naming the step
// that did not happen. `phase`: how long all waiters have been waiting when the fetch reports.
std::vector<double> handoff_round(const std::shared_ptr<HandoffBoard>& board, credkit::RedisTokenCache& leader,
                                  const std::vector<std::shared_ptr<credkit::RedisTokenCache>>& waiters,
                                  const credkit::TokenCacheKey& key, std::chrono::microseconds phase, int round) {
  const std::size_t n = waiters.size();
  std::vector<std::uint64_t> armed_before;
  board->update([&] {
    board->leader_fetch = nullptr;
    board->leader_done = false;
    board->done_at.assign(n, std::nullopt);
    board->tokens.assign(n, {});
    board->errors.assign(n, nullptr);
    armed_before = board->waits_armed;
  });
  // The leader's fetch is called once it holds the lock: that is the handshake.
  leader.async_get_or_fetch(
      key, 0ms,
      [board](credkit::TokenCache::FetchDone report) {
        board->update([&] { board->leader_fetch = std::move(report); });
      },
      [board](std::exception_ptr, credkit::AccessToken) { board->update([&] { board->leader_done = true; }); });
  if (!board->wait_for([&] { return bool(board->leader_fetch); }))
    throw std::runtime_error("the leader's fetch did not start");
  for (std::size_t i = 0; i < n; ++i) {
    waiters[i]->async_get_or_fetch(
        key, 0ms,
        [](credkit::TokenCache::FetchDone report) {
          report(std::make_exception_ptr(std::runtime_error("a waiter fetched the token itself instead of waiting")),
                 {});
        },
        [board, i](std::exception_ptr e, credkit::AccessToken t) {
          const auto at = std::chrono::steady_clock::now();
          board->update([&] {
            board->done_at[i] = at;
            board->tokens[i] = std::move(t.token);
            board->errors[i] = std::move(e);
          });
        });
  }
  credkit::TokenCache::FetchDone report;
  {
    std::unique_lock lock(board->mutex);
    report = board->leader_fetch;
  }
  try {
    // A waiter is waiting once it has read (miss), failed to take the lock and armed its timer.
    if (!board->wait_for([&] {
          for (std::size_t i = 0; i < n; ++i)
            if (board->waits_armed[i] == armed_before[i]) return false;
          return true;
        }))
      throw std::runtime_error("the waiters did not all wait on the leader");
  } catch (...) {
    report(std::current_exception(), {});  // frees the lock for the next round
    throw;
  }
  std::this_thread::sleep_for(phase);
  const auto token = credkit::bench::make_token(std::chrono::system_clock::now() + 1h, std::uint64_t(round));
  const auto t0 = std::chrono::steady_clock::now();
  report(nullptr, token);
  if (!board->wait_for([&] {
        return board->leader_done && std::all_of(board->done_at.begin(), board->done_at.end(),
                                                 [](const auto& at) { return at.has_value(); });
      }))
    throw std::runtime_error("the waiters did not all complete");
  std::lock_guard lock(board->mutex);
  std::vector<double> us;
  for (std::size_t i = 0; i < n; ++i) {
    if (board->errors[i]) std::rethrow_exception(board->errors[i]);
    if (board->tokens[i] != token.token) throw std::runtime_error("a waiter got another token than the leader's");
    us.push_back(std::chrono::duration<double, std::micro>(*board->done_at[i] - t0).count());
  }
  return us;
}

void run_handoff(benchmark::State& state, bool push) {
  auto board = std::make_shared<HandoffBoard>(handoff_waiters);
  const auto encryption_key = credkit::CacheEncryptionKey::generate();
  auto leader = make_handoff_instance(push, encryption_key, nullptr);
  std::vector<std::shared_ptr<credkit::RedisTokenCache>> waiters;
  for (std::size_t i = 0; i < handoff_waiters; ++i)
    waiters.push_back(make_handoff_instance(push, encryption_key, std::make_shared<WaitReportingClock>(board, i)));
  auto instances = waiters;
  instances.push_back(leader);
  // Each instance's first flight opens its subscription (with push) and pooled connections.
  const credkit::TokenCacheKey warm("handoff-warm-up");
  for (auto& c : instances) c->async_get_or_fetch(warm, 0ms, immediate_fetch(), asio::use_future).get();
  if (push && !subscriptions_up(instances)) {
    state.SkipWithError("the push subscriptions did not come up");
    return;
  }
  // The fetch reports a uniformly random time after the last waiter began waiting, as in a
  // fleet: with polling the hand-off then depends on where each waiter is in its poll period.
  const auto period = credkit::RedisTokenCacheOptions{}.poll_interval;
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_int_distribution<std::int64_t> phase_us(0, std::chrono::microseconds(period).count() - 1);
  const auto wakeups = [&] {
    std::uint64_t sum = 0;
    for (auto& w : waiters) sum += w->stats().push_wakeups;
    return sum;
  };
  const auto records = [&] {  // wake-ups answered by the record the push carried
    std::uint64_t sum = 0;
    for (auto& w : waiters) sum += w->stats().pushed_records;
    return sum;
  };
  std::vector<double> us;
  std::vector<double> first_us;  // each round's earliest hand-off: one wake-up, no queue behind others
  std::uint64_t wakeups_before = 0, records_before = 0;
  for (auto _ : state) {
    try {
      for (int round = -handoff_warmup_rounds; round < handoff_rounds; ++round) {
        if (round == 0) wakeups_before = wakeups(), records_before = records();
        const credkit::TokenCacheKey key(std::string(push ? "push-" : "poll-") + std::to_string(round));
        auto round_us = handoff_round(board, *leader, waiters, key, std::chrono::microseconds(phase_us(rng)), round);
        if (round < 0) continue;
        us.insert(us.end(), round_us.begin(), round_us.end());
        first_us.push_back(*std::min_element(round_us.begin(), round_us.end()));
      }
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      return;
    }
  }
  std::uint64_t direct = 0;
  for (auto& c : instances) direct += c->stats().direct_fetches;
  state.counters["waiters"] = double(handoff_waiters);
  state.counters["rounds"] = handoff_rounds;
  state.counters["push_wakeups_per_wait"] = double(wakeups() - wakeups_before) / double(us.size());
  state.counters["pushed_records_per_wait"] = double(records() - records_before) / double(us.size());
  state.counters["direct_fetches"] = double(direct);
  state.counters["fallback_poll_ms"] =
      double((push ? credkit::RedisTokenCacheOptions{}.push_poll_interval : period).count());
  report_percentiles(state, us);
  state.counters["max_us"] = us.back();  // sorted by report_percentiles
  std::sort(first_us.begin(), first_us.end());
  state.counters["first_p50_us"] = percentile(first_us, 50);
  state.counters["first_p99_us"] = percentile(first_us, 99);
}

// Waiters woken by their subscription to `<prefix>stored` (push_wakeups, the default).
void BM_Redis_HandoffPush(benchmark::State& state) { run_handoff(state, true); }

// Waiters that only poll (push_wakeups = false, poll_interval 20 ms ± 25 %).
void BM_Redis_HandoffPolling(benchmark::State& state) { run_handoff(state, false); }

}  // namespace

BENCHMARK(BM_Redis_CredkitCacheHit)->UseRealTime();
BENCHMARK(BM_Redis_BareHiredisGet)->UseRealTime();
BENCHMARK(BM_Redis_BareHiredisGetSameHops)->UseRealTime();
BENCHMARK(BM_Memory_CacheHitSync);
BENCHMARK(BM_Memory_CacheHitAsync)->UseRealTime();
BENCHMARK(BM_File_CacheHit100Entries)->UseRealTime();
// All rounds in one iteration, once whatever --benchmark_repetitions says: the percentiles are
// over every waiter of every round.
BENCHMARK(BM_Redis_HandoffPush)->Iterations(1)->Repetitions(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Redis_HandoffPolling)->Iterations(1)->Repetitions(1)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
