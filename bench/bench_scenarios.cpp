// credkit bench — scenario measurements that are not loops of one call:
//   coalescing  10 000 concurrent async_get_token callers on an expired token, 1 ms fetcher
//   many        100 000 proactive credentials on one io_context: creation time, memory,
//               and (in virtual time) the spread of their refreshes with and without jitter
//   latency     how late token_will_expire fires after its target, in real time
//
// Usage: credkit_bench_scenarios [--out FILE] [--only NAME] [--quick]
// Writes one JSON document (to FILE, else stdout); progress goes to stderr.
#include "bench_support.hpp"

#include <credkit/core/token_credential.hpp>
#include <credkit/testing/manual_clock.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <atomic>
#include <cmath>
#include <ctime>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

// Allocation census: while `g_census` is set, every operator new on this thread is recorded
// (size only), so the benchmark can list what one credential allocates.
namespace {
thread_local bool g_census = false;
thread_local std::vector<std::size_t>* g_census_sizes = nullptr;
void census(std::size_t n) {
  if (g_census && g_census_sizes) {
    g_census = false;  // the push_back below allocates too
    g_census_sizes->push_back(n);
    g_census = true;
  }
}
}  // namespace

void* operator new(std::size_t n) {
  census(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  census(n);
  if (void* p = std::aligned_alloc(static_cast<std::size_t>(a), (n + static_cast<std::size_t>(a) - 1) /
                                                                     static_cast<std::size_t>(a) * static_cast<std::size_t>(a)))
    return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double ms_since(Clock::time_point t0, Clock::time_point t1) {
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Nearest-rank percentile of an unsorted sample.
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * double(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

// An io_context run by one background thread for the scenario's lifetime.
struct BackgroundIo {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::thread thread{[this] { io.run(); }};
  ~BackgroundIo() {
    work.reset();
    thread.join();
  }
};

// ---------------------------------------------------------------------------------------
// 2. Coalescing

json coalescing(bool quick) {
  constexpr int kCallers = 10'000;
  const int runs = quick ? 5 : 20;
  BackgroundIo bg;
  const std::string token = credkit::bench::make_acs_jwt(std::chrono::system_clock::now() + 1h);

  std::vector<double> total_ms, issue_ms, cpu_ms;
  std::vector<int> fetch_counts;
  int errors = 0, incomplete = 0;
  for (int run = 0; run < runs; ++run) {
    std::atomic<int> fetches{0};
    credkit::TokenCredentialOptions o;
    o.mode = credkit::RefreshMode::on_demand;
    o.initial_token = credkit::AccessToken{token, std::chrono::system_clock::now() - 1min};  // expired
    o.fetcher = credkit::Fetcher::async([&fetches, &token](credkit::FetchContext ctx, credkit::FetchCompletion done) {
      fetches.fetch_add(1, std::memory_order_relaxed);
      auto timer = std::make_shared<asio::steady_timer>(ctx.executor(), 1ms);
      timer->async_wait([timer, &token, done = std::move(done)](const boost::system::error_code&) mutable {
        done.succeed(credkit::AccessToken{token, std::chrono::system_clock::now() + 1h});
      });
    });
    auto cred = credkit::TokenCredential::create(bg.io.get_executor(), std::move(o));

    std::atomic<int> completed{0};
    std::atomic<int> failed{0};
    std::promise<Clock::time_point> all_done;
    auto finished = all_done.get_future();
    const double cpu0 = cpu_seconds();
    const auto t0 = Clock::now();
    for (int i = 0; i < kCallers; ++i) {
      cred->async_get_token([&](std::exception_ptr e, credkit::TokenHandle h) {
        if (e || !h) failed.fetch_add(1, std::memory_order_relaxed);
        if (completed.fetch_add(1, std::memory_order_acq_rel) + 1 == kCallers) all_done.set_value(Clock::now());
      });
    }
    const auto t_issued = Clock::now();
    if (finished.wait_for(10s) != std::future_status::ready) {
      ++incomplete;
      cred->close();
      // Closing completes every waiter (with credential_closed), so this wait ends.
      finished.wait();
      continue;
    }
    const auto t_end = finished.get();
    cpu_ms.push_back((cpu_seconds() - cpu0) * 1e3);
    total_ms.push_back(ms_since(t0, t_end));
    issue_ms.push_back(ms_since(t0, t_issued));
    fetch_counts.push_back(fetches.load());
    errors += failed.load();
    cred->close();
  }
  json r;
  r["callers"] = kCallers;
  r["fetch_delay_ms"] = 1;
  r["runs"] = runs;
  r["incomplete_runs"] = incomplete;
  r["failed_callers"] = errors;
  r["fetches"] = fetch_counts;
  r["fetches_min"] = fetch_counts.empty() ? 0 : *std::min_element(fetch_counts.begin(), fetch_counts.end());
  r["fetches_max"] = fetch_counts.empty() ? 0 : *std::max_element(fetch_counts.begin(), fetch_counts.end());
  r["total_ms"] = total_ms;
  r["total_ms_p50"] = percentile(total_ms, 50);
  r["total_ms_max"] = total_ms.empty() ? 0.0 : *std::max_element(total_ms.begin(), total_ms.end());
  r["total_ms_min"] = total_ms.empty() ? 0.0 : *std::min_element(total_ms.begin(), total_ms.end());
  r["issue_ms_p50"] = percentile(issue_ms, 50);
  // Process CPU time (both threads) per run: what the work costs, independent of how much
  // of the machine other processes take.
  r["cpu_ms"] = cpu_ms;
  r["cpu_ms_p50"] = percentile(cpu_ms, 50);
  return r;
}

// ---------------------------------------------------------------------------------------
// 3. Many credentials

credkit::Fetcher renewing_fetcher(std::shared_ptr<credkit::Clock> clock, const std::string* token,
                                  std::vector<double>* refresh_times, credkit::Clock::time_point origin) {
  return credkit::Fetcher::async([clock, token, refresh_times, origin](credkit::FetchContext,
                                                                      credkit::FetchCompletion done) {
    const auto now = clock->now();
    if (refresh_times) refresh_times->push_back(std::chrono::duration<double>(now - origin).count());
    done.succeed(credkit::AccessToken{*token, now + 1h});
  });
}

// Creates `n` proactive credentials on the real clock (never run: no refresh is due) and
// measures creation time and the heap and RSS they take.
json create_many(int n, std::size_t token_size) {
  asio::io_context io;
  const auto expiry = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now() + 1h);
  std::vector<credkit::AccessToken> tokens;
  tokens.reserve(n);
  for (int i = 0; i < n; ++i) {
    std::string t = credkit::bench::make_acs_jwt(expiry, std::uint64_t(i) + 1);
    t.resize(token_size, 'A');  // the short variant only serves to count token copies
    tokens.push_back(credkit::AccessToken{std::move(t), expiry});
  }
  const std::string renewed = tokens.front().token;
  auto fetcher = renewing_fetcher(credkit::Clock::system(), &renewed, nullptr, {});

  std::vector<std::shared_ptr<credkit::TokenCredential>> creds;
  creds.reserve(n + 1);  // + the census credential below, so the vector never regrows while counting
  malloc_trim(0);
  const std::size_t heap0 = credkit::bench::heap_in_use();
  const std::size_t rss0 = credkit::bench::resident_bytes();
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    credkit::TokenCredentialOptions o;
    o.initial_token = tokens[i];
    o.fetcher = fetcher;
    o.mode = credkit::RefreshMode::proactive;
    creds.push_back(credkit::TokenCredential::create(io.get_executor(), std::move(o)));
  }
  const auto t1 = Clock::now();
  const double cpu1 = cpu_seconds();
  const std::size_t heap1 = credkit::bench::heap_in_use();
  const std::size_t rss1 = credkit::bench::resident_bytes();

  // What one more credential allocates, by size (operator new calls on this thread).
  std::vector<std::size_t> sizes;
  {
    credkit::TokenCredentialOptions o;
    o.initial_token = tokens.back();
    o.fetcher = fetcher;
    g_census_sizes = &sizes;
    g_census = true;
    creds.push_back(credkit::TokenCredential::create(io.get_executor(), std::move(o)));
    g_census = false;
    g_census_sizes = nullptr;
  }

  for (auto& c : creds) c->close();
  credkit::testing::ManualClock::drain(io);
  creds.clear();
  credkit::testing::ManualClock::drain(io);
  // What outlives the credentials: the secret scrubber's fingerprints of the last tokens it
  // saw (a table with a fixed cap, whatever the number of credentials).
  const std::size_t heap_end = credkit::bench::heap_in_use();

  json r;
  r["count"] = n;
  r["retained_after_destroy_bytes"] = double(heap_end) - double(heap0);
  // What the credentials held and gave back when destroyed, per credential.
  r["released_bytes_per_credential"] = (double(heap1) - double(heap_end)) / n;
  r["allocation_sizes"] = sizes;
  r["allocations"] = sizes.size();
  r["allocated_bytes"] = std::accumulate(sizes.begin(), sizes.end(), std::size_t{0});
  r["token_bytes"] = token_size;
  r["create_ns_per_credential"] = ms_since(t0, t1) * 1e6 / n;
  r["create_cpu_ns_per_credential"] = (cpu1 - cpu0) * 1e9 / n;
  r["heap_bytes_per_credential"] = double(heap1 - heap0) / n;
  r["rss_bytes_per_credential"] = double(rss1 - rss0) / n;
  return r;
}

// Refresh times of `n` proactive credentials whose tokens all expire at the same instant,
// in virtual time, with the given jitter.
json spread(int n, double jitter, std::chrono::milliseconds wake_check) {
  auto clock = std::make_shared<credkit::testing::ManualClock>();
  asio::io_context io;
  const auto origin = clock->now();
  const auto expiry = origin + 1h;
  const std::string token = credkit::bench::make_acs_jwt(expiry);
  std::vector<double> refresh_times;
  refresh_times.reserve(n);
  auto fetcher = renewing_fetcher(clock, &token, &refresh_times, origin);

  credkit::RefreshPolicy policy;  // ACS defaults: refresh 10 min before expiry
  policy.jitter = jitter;
  policy.wake_check_interval = wake_check;
  std::vector<std::shared_ptr<credkit::TokenCredential>> creds;
  creds.reserve(n);
  for (int i = 0; i < n; ++i) {
    credkit::TokenCredentialOptions o;
    o.initial_token = credkit::AccessToken{token, expiry};
    o.fetcher = fetcher;
    o.policy = policy;
    o.clock = clock;
    o.random_seed = std::uint64_t(i) + 1;
    creds.push_back(credkit::TokenCredential::create(io.get_executor(), std::move(o)));
  }
  // Run virtual time past the latest will-expire point (expiry - 10 min).
  const auto cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  clock->run_for(io, std::chrono::minutes(50) + std::chrono::seconds(5));
  const auto t1 = Clock::now();
  const auto cpu1 = cpu_seconds();

  // 1-second buckets over the jittered refresh window [expiry-10min-window, expiry-10min].
  constexpr double kNominal = 50 * 60;  // seconds from origin to expiry - 10 min
  constexpr double kWindowFraction = 0.5;  // the jitter used "on"; same buckets for "off"
  const int buckets = int(std::lround(kWindowFraction * 600));
  const double lo = kNominal - buckets;
  std::vector<int> hist(buckets, 0);
  int outside = 0;
  for (double t : refresh_times) {
    const int b = int(std::floor(t - lo));
    if (t >= lo && t <= kNominal + 1e-9) {
      ++hist[std::clamp(b, 0, buckets - 1)];
    } else {
      ++outside;
    }
  }
  const double in_window = double(refresh_times.size() - outside);
  const double mean = in_window / buckets;
  const int max_bucket = hist.empty() ? 0 : *std::max_element(hist.begin(), hist.end());

  for (auto& c : creds) c->close();
  credkit::testing::ManualClock::drain(io);

  json r;
  r["jitter"] = jitter;
  r["credentials"] = n;
  r["refreshes"] = refresh_times.size();
  r["outside_window"] = outside;
  r["bucket_seconds"] = 1;
  r["window_start_s"] = lo;
  r["buckets"] = hist;
  r["max_bucket"] = max_bucket;
  r["mean_bucket"] = mean;
  r["max_over_mean"] = mean > 0 ? max_bucket / mean : 0.0;
  r["virtual_seconds"] = 50 * 60 + 5;
  r["wake_check_interval_ms"] = wake_check.count();
  r["run_real_seconds"] = std::chrono::duration<double>(t1 - t0).count();
  r["run_cpu_seconds"] = cpu1 - cpu0;
  return r;
}

json many(bool quick) {
  const int n = quick ? 10'000 : 100'000;
  json r;
  std::cerr << "many: creating " << n << " credentials (1 KB tokens)\n";
  json big = create_many(n, 1025);
  std::cerr << "many: creating " << n << " credentials (short tokens)\n";
  json small = create_many(n, 64);
  const double copies = (big["heap_bytes_per_credential"].get<double>() - small["heap_bytes_per_credential"].get<double>()) /
                        double(1025 - 64);
  r["big_tokens"] = big;
  r["small_tokens"] = small;
  r["token_copies_per_credential"] = copies;
  r["overhead_beside_one_token_copy"] = big["heap_bytes_per_credential"].get<double>() - 1025.0;
  r["overhead_beside_token_copies"] = big["heap_bytes_per_credential"].get<double>() - copies * 1025.0;
  // Per credential, without the scrubber's capped table: what a credential holds and releases.
  r["held_beside_one_token_copy"] = big["released_bytes_per_credential"].get<double>() - 1025.0;
  r["scrubber_retained_bytes"] = big["retained_after_destroy_bytes"];
  std::cerr << "many: virtual-time refresh spread, jitter off\n";
  r["spread_jitter_off"] = spread(n, 0.0, std::chrono::seconds(30));
  std::cerr << "many: virtual-time refresh spread, jitter 0.5\n";
  r["spread_jitter_on"] = spread(n, 0.5, std::chrono::seconds(30));
  return r;
}

// ---------------------------------------------------------------------------------------
// 4. Event latency

constexpr auto kLead = 1000ms;  // refresh_before_expiry of the latency scenario
constexpr auto kPeriod = 20ms;  // time from a token's arrival to its will-expire point

json latency(bool quick) {
  const int events = quick ? 100 : 400;
  BackgroundIo bg;
  const std::string token = credkit::bench::make_acs_jwt(std::chrono::system_clock::now() + 1h);

  credkit::TokenCredentialOptions o;
  o.mode = credkit::RefreshMode::proactive;
  o.policy.refresh_before_expiry = kLead;
  o.policy.min_refresh_interval = 1ms;
  o.initial_token = credkit::AccessToken{token, std::chrono::system_clock::now() + kLead + kPeriod};
  o.fetcher = credkit::Fetcher::async([&token](credkit::FetchContext, credkit::FetchCompletion done) {
    done.succeed(credkit::AccessToken{token, std::chrono::system_clock::now() + kLead + kPeriod});
  });

  std::mutex m;
  std::vector<double> late_us;
  std::promise<void> enough;
  auto enough_f = enough.get_future();
  auto cred = credkit::TokenCredential::create(bg.io.get_executor(), std::move(o));
  auto sub = cred->on_token_will_expire([&](credkit::TokenCredential&, const credkit::TokenEvent& ev) {
    const auto now = std::chrono::system_clock::now();
    if (!ev.token) return;
    const auto target = ev.token.expires_on() - kLead;
    std::lock_guard lock(m);
    late_us.push_back(std::chrono::duration<double, std::micro>(now - target).count());
    if (int(late_us.size()) == events) enough.set_value();
  });
  const auto t0 = Clock::now();
  const bool ok = enough_f.wait_for(kPeriod * events * 3 + 5s) == std::future_status::ready;
  const auto t1 = Clock::now();
  sub.reset();
  cred->close();
  std::vector<double> sample;
  {
    std::lock_guard lock(m);
    sample = late_us;
  }
  json r;
  r["events"] = sample.size();
  r["complete"] = ok;
  r["period_ms"] = kPeriod.count();
  r["seconds"] = std::chrono::duration<double>(t1 - t0).count();
  r["late_us"] = sample;
  r["p50_us"] = percentile(sample, 50);
  r["p90_us"] = percentile(sample, 90);
  r["p99_us"] = percentile(sample, 99);
  r["max_us"] = sample.empty() ? 0.0 : *std::max_element(sample.begin(), sample.end());
  r["min_us"] = sample.empty() ? 0.0 : *std::min_element(sample.begin(), sample.end());
  return r;
}

double load_average() {
  std::ifstream f("/proc/loadavg");
  double l = 0;
  f >> l;
  return l;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out, only;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) {
      out = argv[++i];
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (a == "--quick") {
      quick = true;
    } else {
      std::cerr << "usage: " << argv[0] << " [--out FILE] [--only coalescing|many|latency] [--quick]\n";
      return 2;
    }
  }
  json doc;
  doc["quick"] = quick;
  doc["load_average_start"] = load_average();
  try {
    if (only.empty() || only == "coalescing") {
      std::cerr << "coalescing...\n";
      doc["coalescing"] = coalescing(quick);
    }
    if (only.empty() || only == "latency") {
      std::cerr << "latency...\n";
      doc["event_latency"] = latency(quick);
    }
    if (only.empty() || only == "many") {
      std::cerr << "many credentials...\n";
      doc["many_credentials"] = many(quick);
    }
  } catch (const std::exception& e) {
    std::cerr << "benchmark failed: " << e.what() << "\n";
    return 1;
  }
  doc["load_average_end"] = load_average();
  if (out.empty()) {
    std::cout << doc.dump(1) << "\n";
  } else {
    std::ofstream f(out);
    f << doc.dump(1) << "\n";
    if (!f) {
      std::cerr << "cannot write " << out << "\n";
      return 1;
    }
  }
  return 0;
}
