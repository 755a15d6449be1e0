// credkit bench — the hot path: a client asking the shared credential for the token to
// put on a request, token fresh, against the lock-and-copy design of the peer SDKs.
#include "baseline_token_cache.hpp"
#include "bench_support.hpp"

#include <credkit/core/token_credential.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>

#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using credkit::bench::MutexTokenCache;
using credkit::bench::SharedMutexTokenCache;

// The io_context is never run: the credential's only timer (the will-expire point, an hour
// away) stays pending, exactly as in a long-running client between refreshes.
boost::asio::io_context& io() {
  static boost::asio::io_context instance;
  return instance;
}

credkit::Fetcher never_called_fetcher() {
  return credkit::Fetcher::async([](credkit::FetchContext, credkit::FetchCompletion c) {
    c.fail(credkit::errc::fetch_failed, "the benchmark's fetcher must not run");
  });
}

std::shared_ptr<credkit::TokenCredential> make_credential(std::uint64_t user) {
  credkit::TokenCredentialOptions o;
  o.initial_token = credkit::bench::make_token(std::chrono::system_clock::now() + 1h, user);
  o.fetcher = never_called_fetcher();
  o.mode = credkit::RefreshMode::proactive;
  return credkit::TokenCredential::create(io().get_executor(), std::move(o));
}

template <typename Cache>
std::unique_ptr<Cache> make_baseline(std::uint64_t user) {
  return std::make_unique<Cache>(credkit::bench::make_token(std::chrono::system_clock::now() + 1h, user),
                                 [] { return credkit::bench::make_token(std::chrono::system_clock::now() + 1h); },
                                 std::chrono::minutes(2));
}

// One credential shared by every benchmark thread, built once (thread-safe static init).
credkit::TokenCredential& shared_credential() {
  static auto cred = make_credential(1);
  return *cred;
}
template <typename Cache>
Cache& shared_baseline() {
  static auto cache = make_baseline<Cache>(1);
  return *cache;
}

// --- 1. One shared credential, token fresh --------------------------------------------

void BM_HotPath_Credkit(benchmark::State& state) {
  auto& cred = shared_credential();
  for (auto _ : state) {
    credkit::TokenHandle h = cred.get_token();
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(state.iterations());
}

// The honest cost when the caller needs its own std::string (e.g. to build a header).
void BM_HotPath_CredkitCopyString(benchmark::State& state) {
  auto& cred = shared_credential();
  for (auto _ : state) {
    credkit::TokenHandle h = cred.get_token();
    std::string s = h.token();
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}

template <typename Cache>
void BM_HotPath_Baseline(benchmark::State& state) {
  auto& cache = shared_baseline<Cache>();
  for (auto _ : state) {
    credkit::AccessToken t = cache.get_token();
    benchmark::DoNotOptimize(t);
  }
  state.SetItemsProcessed(state.iterations());
}

// --- 1b. Many credentials read round-robin from one thread (a bot serving many users).
// credkit's per-thread cache has 64 slots indexed by credential id: 16 credentials fit,
// 256 do not, so every read there takes the slow path (lock + copy + allocation).

// The first `n` of a pool of credentials made once (consecutive ids, as in an app that
// creates them at start-up).
constexpr int kPool = 256;

std::vector<std::shared_ptr<credkit::TokenCredential>>& credential_pool() {
  static auto v = [] {
    std::vector<std::shared_ptr<credkit::TokenCredential>> out;
    for (int i = 0; i < kPool; ++i) out.push_back(make_credential(1000 + i));
    return out;
  }();
  return v;
}
std::vector<std::unique_ptr<MutexTokenCache>>& baseline_pool() {
  static auto v = [] {
    std::vector<std::unique_ptr<MutexTokenCache>> out;
    for (int i = 0; i < kPool; ++i) out.push_back(make_baseline<MutexTokenCache>(1000 + i));
    return out;
  }();
  return v;
}

// get_token() from the first state.range(0) members of `pool` in turn, each thread starting at
// its own offset: the same loop for credkit and for the baseline.
template <typename Pool>
void round_robin(benchmark::State& state, Pool& pool) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7;
  for (auto _ : state) {
    auto token = pool[i++ % n]->get_token();
    benchmark::DoNotOptimize(token);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_RoundRobin_Credkit(benchmark::State& state) { round_robin(state, credential_pool()); }

void BM_RoundRobin_MutexBaseline(benchmark::State& state) { round_robin(state, baseline_pool()); }

// --- Floors: what the two unavoidable parts of a credkit read cost on this machine ------

// Handing out a shared_ptr: one atomic increment, and one decrement when the caller drops it.
// Each thread's token sits on its own cache lines (alignas), so the two threads' reference
// counts never share a line: the floor measures the atomic operations, not false sharing.
struct alignas(64) PaddedToken {
  credkit::AccessToken token;
};
void BM_Floor_SharedPtrCopy(benchmark::State& state) {
  thread_local auto p = std::make_shared<const PaddedToken>(
      PaddedToken{credkit::bench::make_token(std::chrono::system_clock::now() + 1h)});
  for (auto _ : state) {
    std::shared_ptr<const PaddedToken> copy = p;
    benchmark::DoNotOptimize(copy);
  }
  state.SetItemsProcessed(state.iterations());
}

// Reading the wall clock coarsely (what credkit checks freshness with).
void BM_Floor_CoarseClock(benchmark::State& state) {
  for (auto _ : state) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    benchmark::DoNotOptimize(ts);
  }
  state.SetItemsProcessed(state.iterations());
}

// Reading the wall clock precisely (what the baselines check freshness with).
void BM_Floor_PreciseClock(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(std::chrono::system_clock::now());
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(BM_Floor_SharedPtrCopy)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Floor_CoarseClock)->Threads(1)->UseRealTime();
BENCHMARK(BM_Floor_PreciseClock)->Threads(1)->UseRealTime();
BENCHMARK(BM_HotPath_Credkit)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_HotPath_CredkitCopyString)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_HotPath_Baseline<MutexTokenCache>)->Name("BM_HotPath_MutexBaseline")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_HotPath_Baseline<SharedMutexTokenCache>)
    ->Name("BM_HotPath_SharedMutexBaseline")
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK(BM_RoundRobin_Credkit)->Arg(16)->Arg(256)->Threads(1)->UseRealTime();
BENCHMARK(BM_RoundRobin_MutexBaseline)->Arg(16)->Arg(256)->Threads(1)->UseRealTime();

BENCHMARK_MAIN();
