// Soak: many threads reading, async callers cancelling, ~100 ms refreshes with random injected
// failures, credentials created and closed, listeners churning. Real time, real threads.
//
// Duration: CREDKIT_SOAK_SECONDS (default 20 s for a developer's ctest; scripts/test, i.e. CI,
// sets 60 s in each of the plain, ASan and TSan runs; longer by setting it).
// Invariants checked: no token is handed out after its expiry, every async call completes
// exactly once (none lost, none twice), every blocking wait is bounded, every error a caller
// sees is a credkit Error.
#include <doctest/doctest.h>

#include "support/test_tokens.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using sys = std::chrono::system_clock;

namespace {

std::chrono::seconds soak_duration() {
  if (const char* s = std::getenv("CREDKIT_SOAK_SECONDS")) {
    const long v = std::strtol(s, nullptr, 10);
    if (v > 0) return std::chrono::seconds(v);
  }
  return 20s;
}

struct Counters {
  std::atomic<long> reads{0};            // tokens handed out (blocking + async)
  std::atomic<long> fetches{0};          // fetcher invocations
  std::atomic<long> refreshes{0};        // `refreshed` events observed
  std::atomic<long> failures_injected{0};
  std::atomic<long> expired_served{0};   // must stay 0
  std::atomic<long> async_started{0};
  std::atomic<long> async_completed{0};
  std::atomic<long> completed_twice{0};  // must stay 0
  std::atomic<long> cancelled{0};
  std::atomic<long> caller_errors{0};
  std::atomic<long> foreign_errors{0};   // an exception that is not a credkit Error: must stay 0
  std::atomic<long> credentials_created{0};
  std::atomic<long> subscriptions{0};
  std::atomic<long> updates_pushed{0};
  std::atomic<long> invalidations{0};
};

/// Thread-safe random numbers for the fetchers and the workers.
class Dice {
 public:
  explicit Dice(unsigned seed) : rng_(seed) {}
  unsigned roll(unsigned n) {
    std::lock_guard l(m_);
    return rng_() % n;
  }

 private:
  std::mutex m_;
  std::mt19937 rng_;
};

/// An async fetcher over a real timer that mints 400 ms tokens (so with a 300 ms refresh
/// window a refresh falls due about every 100 ms) and injects every kind of failure a fetcher
/// can produce: an error, a throw, a dropped completion, an already expired token, a hang
/// past fetch_timeout.
Fetcher soak_fetcher(Counters& c, Dice& dice, std::atomic<int>& minted) {
  return Fetcher::async([&c, &dice, &minted](FetchContext ctx, FetchCompletion done) {
    ++c.fetches;
    const unsigned r = dice.roll(100);
    if (r < 6) {
      ++c.failures_injected;
      done.fail(errc::network_error, "injected: token service unreachable");
      return;
    }
    if (r < 9) {
      ++c.failures_injected;
      throw std::runtime_error("injected: fetcher threw");
    }
    if (r < 11) {
      ++c.failures_injected;
      return;  // completion dropped: the credential must see errc::fetcher_abandoned
    }
    if (r < 13) {
      ++c.failures_injected;
      done.succeed(AccessToken{make_jwt(sys::now() - 1s, "expired"), sys::now() - 1s});
      return;
    }
    if (r < 14) {
      ++c.failures_injected;  // hang longer than fetch_timeout; completes late (ignored)
      auto late = std::make_shared<asio::steady_timer>(ctx.executor(), 400ms);
      late->async_wait([late, done = std::move(done)](boost::system::error_code) mutable {
        done.succeed(AccessToken{make_jwt(sys::now() + 400ms, "late"), sys::now() + 400ms});
      });
      return;
    }
    const int n = ++minted;
    auto timer = std::make_shared<asio::steady_timer>(ctx.executor(), std::chrono::milliseconds(1 + r % 4));
    timer->async_wait([timer, n, done = std::move(done)](boost::system::error_code) mutable {
      const auto exp = sys::now() + 400ms;
      done.succeed(AccessToken{make_jwt(exp, "soak-" + std::to_string(n)), exp});
    });
  });
}

RefreshPolicy soak_policy() {
  RefreshPolicy p;
  p.refresh_before_expiry = 300ms;
  p.min_validity = 50ms;
  p.min_refresh_interval = 10ms;
  p.retry_initial = 5ms;
  p.retry_max = 40ms;
  p.fetch_timeout = 150ms;
  p.wake_check_interval = 100ms;
  return p;
}

void count_error(Counters& c, const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    if (err.code() == make_error_code(errc::cancelled)) ++c.cancelled;
    else ++c.caller_errors;
  } catch (...) {
    ++c.foreign_errors;
  }
}

/// One blocking get_token, counted: a read (and whether it served an expired token) or an error.
void read_token(TokenCredential& cred, Counters& c, std::chrono::milliseconds timeout) {
  try {
    auto tok = cred.get_token(timeout);
    ++c.reads;
    if (tok.expires_on() <= sys::now()) ++c.expired_served;
  } catch (...) {
    count_error(c, std::current_exception());
  }
}

/// Starts one async get_token whose completion is counted exactly once; when `cancel` is set
/// the call is cancelled from the credential's executor right away.
void start_async_call(const std::shared_ptr<TokenCredential>& cred, Counters& c, bool cancel,
                      std::atomic<int>& in_flight) {
  ++c.async_started;
  ++in_flight;
  auto sig = std::make_shared<asio::cancellation_signal>();
  auto calls = std::make_shared<std::atomic<int>>(0);
  cred->async_get_token(asio::bind_cancellation_slot(
      sig->slot(), [&c, &in_flight, sig, calls](std::exception_ptr e, TokenHandle tok) {
        if (calls->fetch_add(1) != 0) {
          ++c.completed_twice;
          return;
        }
        if (e) {
          count_error(c, e);
        } else {
          ++c.reads;
          if (tok.expires_on() <= sys::now()) ++c.expired_served;
        }
        ++c.async_completed;
        --in_flight;
      }));
  if (cancel) {
    // The signal lives in the completion too, so it outlives both the emit and the slot.
    asio::post(cred->get_executor(), [sig] { sig->emit(asio::cancellation_type::terminal); });
  }
}

}  // namespace

TEST_SUITE("reliability") {

TEST_CASE("soak: readers, cancelling async callers, 100 ms refreshes with injected failures, churn") {
  const auto duration = soak_duration();
  Counters c;
  Dice dice(20261123);
  std::atomic<int> minted{0};

  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::vector<std::thread> io_threads;
  for (int i = 0; i < 2; ++i) io_threads.emplace_back([&] { io.run(); });

  // The long-lived, shared credentials (proactive and on demand).
  std::vector<std::shared_ptr<TokenCredential>> shared;
  for (int i = 0; i < 2; ++i) {
    TokenCredentialOptions o;
    o.mode = i == 0 ? RefreshMode::proactive : RefreshMode::on_demand;
    o.policy = soak_policy();
    o.fetcher = soak_fetcher(c, dice, minted);
    o.random_seed = 7 + i;
    shared.push_back(TokenCredential::create(io.get_executor(), o));
    ++c.credentials_created;
  }
  auto refreshed_sub0 = shared[0]->on_token_refreshed([&](TokenCredential&, const TokenEvent&) { ++c.refreshes; });
  auto refreshed_sub1 = shared[1]->on_token_refreshed([&](TokenCredential&, const TokenEvent&) { ++c.refreshes; });

  std::atomic<bool> stop{false};
  std::atomic<int> in_flight{0};
  std::vector<std::thread> workers;

  // Blocking readers.
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&, t] {
      int i = 0;
      while (!stop) {
        read_token(*shared[(i++ + t) % shared.size()], c, 2000ms);
      }
    });
  }

  // Async callers; about a third cancelled at once. At most 64 in flight.
  workers.emplace_back([&] {
    int i = 0;
    while (!stop) {
      if (in_flight.load() >= 64) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      start_async_call(shared[i % shared.size()], c, dice.roll(3) == 0, in_flight);
      ++i;
    }
  });

  // Listeners subscribing and unsubscribing; the app pushing tokens and reporting 401s.
  workers.emplace_back([&] {
    std::vector<Subscription> subs(8);
    int i = 0;
    while (!stop) {
      auto& cred = shared[i % shared.size()];
      const unsigned r = dice.roll(4);
      auto& slot = subs[i % subs.size()];
      if (r == 0) slot = cred->on_token_will_expire([](TokenCredential&, const TokenEvent&) {});
      if (r == 1) slot = cred->on_refresh_failed([](TokenCredential&, const TokenEvent&) {});
      if (r == 2) slot = cred->on_token_expired([](TokenCredential&, const TokenEvent&) {});
      if (r == 3) slot.reset();
      ++c.subscriptions;
      if (i % 10 == 0) {
        const auto exp = sys::now() + 400ms;
        try {
          cred->update_token(AccessToken{make_jwt(exp, "pushed-" + std::to_string(i)), exp});
          ++c.updates_pushed;
        } catch (...) {
          count_error(c, std::current_exception());
        }
      }
      if (i % 7 == 0) {
        if (auto cur = cred->cached_token(); cur && cred->invalidate(cur)) ++c.invalidations;
      }
      ++i;
      std::this_thread::sleep_for(2ms);
    }
  });

  // Credentials created, used and closed with calls still outstanding; some on the SDK-owned
  // executor, some destroyed without an explicit close.
  workers.emplace_back([&] {
    int i = 0;
    while (!stop) {
      TokenCredentialOptions o;
      o.mode = (i % 2) ? RefreshMode::on_demand : RefreshMode::proactive;
      o.policy = soak_policy();
      o.fetcher = soak_fetcher(c, dice, minted);
      auto cred = (i % 5 == 0) ? TokenCredential::create(o) : TokenCredential::create(io.get_executor(), o);
      ++c.credentials_created;
      auto sub = cred->on_token_refreshed([&](TokenCredential&, const TokenEvent&) { ++c.refreshes; });
      for (int k = 0; k < 4; ++k) start_async_call(cred, c, k == 3, in_flight);
      read_token(*cred, c, 1000ms);
      start_async_call(cred, c, false, in_flight);
      if (i % 3 != 0) cred->close();
      cred.reset();  // the last owner: destruction closes it
      ++i;
      std::this_thread::sleep_for(5ms);
    }
  });

  const auto started = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(duration);
  stop = true;
  for (auto& w : workers) w.join();
  for (auto& cred : shared) cred->close();

  // Every async call must complete (closed credentials complete theirs with credential_closed).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.async_completed.load() + c.completed_twice.load() < c.async_started.load() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  refreshed_sub0.reset();
  refreshed_sub1.reset();
  shared.clear();
  guard.reset();
  for (auto& t : io_threads) t.join();

  const long lost = c.async_started - c.async_completed;
  std::ostringstream report;
  report << "soak: " << secs << " s, reads=" << c.reads << " fetches=" << c.fetches
            << " refreshes=" << c.refreshes << " failures_injected=" << c.failures_injected
            << " caller_errors=" << c.caller_errors << " async_calls=" << c.async_started
            << " cancelled=" << c.cancelled << " credentials_created=" << c.credentials_created
            << " subscription_changes=" << c.subscriptions << " updates_pushed=" << c.updates_pushed
            << " invalidations=" << c.invalidations << " expired_served=" << c.expired_served
            << " lost_callers=" << lost << " completed_twice=" << c.completed_twice
            << " foreign_errors=" << c.foreign_errors << "\n";
  std::cout << report.str() << std::flush;
  // Also left in the working directory (ctest's: the test's build folder), where scripts/test
  // picks it up, so a CI log shows the figures of a passing run.
  std::ofstream("soak_report.txt") << report.str();

  CHECK(c.expired_served == 0);
  CHECK(lost == 0);
  CHECK(c.completed_twice == 0);
  CHECK(c.foreign_errors == 0);
  // The run did what it claims (bounded below by a small fraction of what a 2-core TSan
  // build achieves, so the check cannot pass on an idle run).
  CHECK(c.failures_injected > 0);
  CHECK(c.refreshes > 10 * duration.count());
  CHECK(c.reads > 100 * duration.count());
  CHECK(c.cancelled > 0);
  CHECK(c.credentials_created > 10);
}

}  // TEST_SUITE
