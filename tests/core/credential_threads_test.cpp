// Integration tests in real time with real threads: the SDK-owned executor, blocking
// get_token from many threads, and a stress run for TSan.
#include <doctest/doctest.h>

#include "support/test_tokens.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/thread_pool.hpp>

#include <random>
#include <thread>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using sys = std::chrono::system_clock;

TEST_SUITE("integration") {

TEST_CASE("the SDK-owned executor: blocking get_token from the app thread, joined on close") {
  std::atomic<int> calls{0};
  TokenCredentialOptions o;
  o.fetcher = Fetcher::blocking([&](const FetchContext&) {
    ++calls;
    return AccessToken{make_jwt(sys::now() + 1h), sys::now() + 1h};
  });
  auto a = TokenCredential::create(o);
  auto b = TokenCredential::create(o);
  auto ta = a->get_token(5000ms);
  auto tb = b->get_token(5000ms);
  CHECK(ta.expires_on() > sys::now());
  CHECK(tb.expires_on() > sys::now());
  CHECK(calls == 2);
  a->close();
  CHECK_THROWS_AS((void)a->get_token(), Error);
  CHECK(b->get_token() == tb);  // the shared thread lives on for b
  b.reset();                    // last one: joins the SDK thread
  a.reset();
}

TEST_CASE("get_token with a timeout gives up with errc::timeout and leaves no waiter behind") {
  TokenCredentialOptions o;
  o.mode = RefreshMode::on_demand;
  std::vector<FetchCompletion> held;
  std::mutex m;
  o.fetcher = Fetcher::async([&](FetchContext, FetchCompletion done) {
    std::lock_guard l(m);
    held.push_back(std::move(done));
  });
  auto cred = TokenCredential::create(o);
  try {
    (void)cred->get_token(50ms);
    FAIL("expected a timeout");
  } catch (const Error& e) {
    CHECK(e.code() == make_error_code(errc::timeout));
  }
  cred->close();
  std::lock_guard l(m);
  held.clear();
}

TEST_CASE("stress: readers, async callers with cancellation, invalidations and refreshes on real threads") {
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::vector<std::thread> io_threads;
  for (int i = 0; i < 2; ++i) io_threads.emplace_back([&] { io.run(); });

  std::atomic<int> fetches{0};
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0}, expired_served{0}, errors{0}, cancelled{0};
  TokenCredentialOptions o;
  o.policy.refresh_before_expiry = 300ms;
  o.policy.min_validity = 100ms;
  o.policy.min_refresh_interval = 10ms;
  o.policy.retry_initial = 10ms;
  o.policy.retry_max = 50ms;
  std::mt19937 rng(1);
  std::mutex rng_mutex;
  o.fetcher = Fetcher::async([&](FetchContext ctx, FetchCompletion done) {
    const int n = ++fetches;
    bool fail;
    {
      std::lock_guard l(rng_mutex);
      fail = rng() % 5 == 0;
    }
    if (fail) {
      done.fail(errc::network_error, "injected failure");
      return;
    }
    const auto exp = sys::now() + 600ms;
    auto timer = std::make_shared<asio::steady_timer>(ctx.executor(), 2ms);
    timer->async_wait([timer, exp, n, done = std::move(done)](boost::system::error_code) mutable {
      done.succeed(AccessToken{make_jwt(exp, "u" + std::to_string(n)), exp});
    });
  });
  auto cred = TokenCredential::create(io.get_executor(), o);
  Subscription subs[4];
  std::atomic<int> events{0};

  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&] {
      while (!stop) {
        try {
          auto tok = cred->get_token(2000ms);
          ++reads;
          if (tok.expires_on() <= sys::now()) ++expired_served;
        } catch (const Error&) {
          ++errors;
        }
      }
    });
  }
  workers.emplace_back([&] {  // async callers, half of them cancelled at once
    while (!stop) {
      auto sig = std::make_shared<asio::cancellation_signal>();
      std::promise<void> done, emitted;
      cred->async_get_token(asio::bind_cancellation_slot(sig->slot(), [&](std::exception_ptr e, TokenHandle tok) {
        if (e && error_code_of(e) == make_error_code(errc::cancelled)) ++cancelled;
        if (!e && tok.expires_on() <= sys::now()) ++expired_served;
        done.set_value();
      }));
      // Emit from the credential's executor, as Asio requires for cancellation slots; the
      // signal must outlive the emit, which may run after the completion.
      asio::post(cred->get_executor(), [sig, &emitted] {
        sig->emit(asio::cancellation_type::terminal);
        emitted.set_value();
      });
      done.get_future().wait();
      emitted.get_future().wait();
    }
  });
  workers.emplace_back([&] {  // invalidations, subscriptions churn
    int i = 0;
    while (!stop) {
      if (auto cur = cred->cached_token()) cred->invalidate(cur);
      subs[i % 4] = cred->on_token_refreshed([&](TokenCredential&, const TokenEvent&) { ++events; });
      ++i;
      std::this_thread::sleep_for(20ms);
    }
  });
  std::this_thread::sleep_for(1500ms);
  stop = true;
  for (auto& w : workers) w.join();
  cred->close();
  for (auto& s : subs) s.reset();
  guard.reset();
  for (auto& t : io_threads) t.join();

  MESSAGE("reads=" << reads.load() << " fetches=" << fetches.load() << " errors=" << errors.load()
                   << " cancelled=" << cancelled.load() << " events=" << events.load());
  CHECK(reads > 100);
  CHECK(fetches > 5);
  CHECK(expired_served == 0);
}

TEST_CASE("concurrent create, use and close of many credentials on one io_context") {
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        TokenCredentialOptions o;
        o.mode = (i % 2) ? RefreshMode::on_demand : RefreshMode::proactive;
        o.fetcher = Fetcher::async([](FetchContext, FetchCompletion done) {
          done.succeed(AccessToken{"token-0123456789abcdef", sys::now() + 1h});
        });
        auto cred = TokenCredential::create(io.get_executor(), o);
        auto sub = cred->on_token_refreshed([](TokenCredential&, const TokenEvent&) {});
        if (cred->get_token(2000ms)) ++ok;
        if (i % 3 == 0) cred->close();
      }
    });
  }
  for (auto& t : threads) t.join();
  guard.reset();
  runner.join();  // every credential is gone: run() returned
  CHECK(ok == 200);
}

}  // TEST_SUITE
