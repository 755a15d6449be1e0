// async_get_token with every completion-token style, per-operation cancellation, and the
// three fetcher styles.
#include <doctest/doctest.h>

#include "support/credential_fixture.hpp"
#include "support/async_helpers.hpp"
#include "core/credential_strand.hpp"

#include <credkit/core/coroutine_fetcher.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <functional>
#include <future>
#include <thread>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {
// On-demand credentials in virtual time; `fetcher` unless a test brings its own.
struct OnDemand : CredentialFixture {
  std::shared_ptr<TokenCredential> create_on_demand() { return create(RefreshMode::on_demand); }
  std::shared_ptr<TokenCredential> create_on_demand(Fetcher own) {
    auto o = options_without_fetcher(RefreshMode::on_demand);
    o.fetcher = std::move(own);
    return create(o);
  }
};
errc code_of(const std::exception_ptr& e) { return static_cast<errc>(error_code_of(e).value()); }
}  // namespace

TEST_CASE_FIXTURE(OnDemand, "use_future") {
  auto cred = create_on_demand();
  std::future<TokenHandle> fut = cred->async_get_token(asio::use_future);
  env.drain();
  REQUIRE(fut.wait_for(0s) == std::future_status::ready);
  CHECK(fut.get().expires_on() > env.now());
}

TEST_CASE_FIXTURE(OnDemand, "use_future delivers the credkit Error as the exception") {
  fetcher.script({ScriptedFetcher::Step::fail});
  auto cred = create_on_demand();
  auto fut = cred->async_get_token(asio::use_future);
  env.drain();
  CHECK_THROWS_AS(fut.get(), Error);
}

TEST_CASE_FIXTURE(OnDemand, "use_awaitable inside a coroutine") {
  auto cred = create_on_demand();
  TokenHandle got;
  asio::co_spawn(
      env.io,
      [&]() -> asio::awaitable<void> {
        got = co_await cred->async_get_token(asio::use_awaitable);
        auto again = co_await cred->async_get_token(asio::use_awaitable);
        CHECK(again == got);
      },
      asio::detached);
  env.drain();
  CHECK(got);
  CHECK(fetcher.calls() == 1);
}

TEST_CASE_FIXTURE(OnDemand, "deferred: nothing starts until the deferred operation is invoked") {
  auto cred = create_on_demand();
  auto op = cred->async_get_token(asio::deferred);
  env.drain();
  CHECK(fetcher.calls() == 0);
  TokenHandle got;
  std::move(op)([&](std::exception_ptr e, TokenHandle t) {
    CHECK_FALSE(e);
    got = t;
  });
  env.drain();
  CHECK(got);
  CHECK(fetcher.calls() == 1);
}

TEST_CASE_FIXTURE(OnDemand, "completions are posted: never invoked inline, even with a fresh token") {
  auto cred = create_on_demand();
  (void)cred->async_get_token(asio::use_future);
  env.drain();
  bool called = false;
  cred->async_get_token([&](std::exception_ptr, TokenHandle) { called = true; });
  CHECK_FALSE(called);
  env.drain();
  CHECK(called);
}

// Handlers are posted, never invoked inline: not inside the fetcher's completion call (which
// may hold the app's locks), even though that call runs on the credential's own strand.
TEST_CASE_FIXTURE(OnDemand, "completions are posted, never run inside the call that completes the fetch") {
  bool inside_completion = false;
  auto completes_inline = Fetcher::async([&](FetchContext, FetchCompletion done) {
    inside_completion = true;
    done.succeed(AccessToken{make_jwt(env.now() + 1h), env.now() + 1h});
    inside_completion = false;
  });
  auto cred = create_on_demand(std::move(completes_inline));
  int ran = 0, ran_inside = 0;
  for (int i = 0; i < 3; ++i) {
    cred->async_get_token([&](std::exception_ptr e, TokenHandle h) {
      CHECK_FALSE(e);
      CHECK(h);
      ++ran;
      if (inside_completion) ++ran_inside;
    });
  }
  env.drain();
  CHECK(ran == 3);
  CHECK(ran_inside == 0);
}

TEST_CASE_FIXTURE(OnDemand, "handlers run on the credential's executor by default, or on their associated executor") {
  auto cred = create_on_demand();
  bool on_strand = false;
  cred->async_get_token([&](std::exception_ptr, TokenHandle) {
    // Whatever strand type the credential chose for this executor shape (native or type-erased).
    on_strand = detail::running_on_strand(cred->get_executor());
  });
  CHECK_FALSE(detail::running_on_strand(cred->get_executor()));
  env.drain();
  CHECK(on_strand);

  asio::io_context other;
  bool ran_on_other = false;
  cred->async_get_token(asio::bind_executor(other, [&](std::exception_ptr, TokenHandle) {
    ran_on_other = other.get_executor().running_in_this_thread();
  }));
  env.drain();
  CHECK_FALSE(ran_on_other);
  other.run();
  CHECK(ran_on_other);
}

TEST_CASE_FIXTURE(OnDemand, "cancelling one waiter completes it with cancelled; the others and the fetch carry on") {
  fetcher.script({ScriptedFetcher::Step::hold});
  auto cred = create_on_demand();
  asio::cancellation_signal sig;
  std::exception_ptr cancelled_error;
  bool cancelled_done = false;
  int others = 0;
  cred->async_get_token(asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e, TokenHandle t) {
    cancelled_error = e;
    cancelled_done = true;
    CHECK_FALSE(t);
  }));
  for (int i = 0; i < 5; ++i) {
    cred->async_get_token([&](std::exception_ptr e, TokenHandle t) {
      CHECK_FALSE(e);
      CHECK(t);
      ++others;
    });
  }
  env.drain();
  for (auto type : {asio::cancellation_type::terminal}) sig.emit(type);
  env.drain();
  CHECK(cancelled_done);
  CHECK(code_of(cancelled_error) == errc::cancelled);
  CHECK(error_code_of(cancelled_error) == std::errc::operation_canceled);
  CHECK(others == 0);
  fetcher.release_all();
  env.drain();
  CHECK(others == 5);
  CHECK(fetcher.calls() == 1);
  sig.emit(asio::cancellation_type::terminal);  // late: harmless
  env.drain();
}

TEST_CASE("partial and total cancellation are honoured too") {
  for (auto type : {asio::cancellation_type::partial, asio::cancellation_type::total}) {
    OnDemand setup;
    auto& env = setup.env;
    setup.fetcher.script({ScriptedFetcher::Step::hold});
    auto cred = setup.create_on_demand();
    asio::cancellation_signal sig;
    std::exception_ptr error;
    cred->async_get_token(asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e, TokenHandle) { error = e; }));
    env.drain();
    sig.emit(type);
    env.drain();
    CHECK(code_of(error) == errc::cancelled);
  }
}

TEST_CASE_FIXTURE(OnDemand, "the coroutine fetcher style") {
  auto clock = env.clock;
  std::atomic<int> calls{0};
  auto coroutine = coroutine_fetcher([clock, &calls](FetchContext ctx) -> asio::awaitable<AccessToken> {
    ++calls;
    CHECK(ctx.reason() == FetchReason::initial);
    co_return AccessToken{make_jwt(clock->now() + 1h), clock->now() + 1h};
  });
  auto cred = create_on_demand(coroutine);
  auto fut = cred->async_get_token(asio::use_future);
  env.drain();
  CHECK(fut.get().expires_on() == env.now() + 1h);
  CHECK(calls == 1);
}

TEST_CASE_FIXTURE(OnDemand, "a coroutine fetcher is cancelled through its slot when the fetch times out") {
  std::atomic<bool> aborted{false};
  auto waits_forever = coroutine_fetcher([&aborted](FetchContext ctx) -> asio::awaitable<AccessToken> {
    asio::steady_timer forever(ctx.executor(), std::chrono::hours(24));
    boost::system::error_code ec;
    co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    aborted = ec == asio::error::operation_aborted;
    throw std::runtime_error("cancelled");
  });
  auto cred = create_on_demand(waits_forever);
  std::exception_ptr error;
  cred->async_get_token([&](std::exception_ptr e, TokenHandle) { error = e; });
  env.run_for(31s);
  CHECK(code_of(error) == errc::fetch_timeout);
  env.drain();
  CHECK(aborted);
}

TEST_CASE_FIXTURE(OnDemand, "the blocking fetcher style runs off the credential's executor") {
  asio::thread_pool pool(1);
  auto clock = env.clock;
  std::thread::id fetch_thread;
  auto blocking = Fetcher::blocking(
      [&](const FetchContext&) {
        fetch_thread = std::this_thread::get_id();
        return make_jwt(clock->now() + 1h);  // a string: expiry parsed from the token
      },
      pool.get_executor());
  auto cred = create_on_demand(blocking);
  auto fut = cred->async_get_token(asio::use_future);
  // The fetch runs on the pool; its completion is posted back to env.io. The waiter keeps
  // env.io busy until then, so run() returns as soon as the token is delivered.
  env.io.restart();
  env.io.run_for(10s);
  REQUIRE(fut.wait_for(0s) == std::future_status::ready);
  CHECK(fut.get().expires_on() > env.now());
  CHECK(fetch_thread != std::this_thread::get_id());
  pool.join();
}

// The credential's strand is made over the executor's own type when it is an io_context's or a
// thread_pool's (the strand then fits inside any_io_executor), over the type-erased executor
// otherwise. Whichever it is, for every executor shape: completions run on the credential's
// strand, and are posted, never invoked inside the call that completes the fetch (even though
// that call runs on the strand itself).
TEST_CASE("every executor shape: completions run on the credential's strand and are never invoked inline") {
  struct Shape {
    const char* name;
    std::function<asio::any_io_executor(asio::io_context&, asio::thread_pool&)> make;
    bool on_pool;
  };
  const std::vector<Shape> shapes = {
      {"io_context executor", [](asio::io_context& io, asio::thread_pool&) { return asio::any_io_executor(io.get_executor()); }, false},
      {"io_context executor, blocking.never",
       [](asio::io_context& io, asio::thread_pool&) {
         return asio::any_io_executor(asio::require(io.get_executor(), asio::execution::blocking.never));
       },
       false},
      {"io_context executor, work tracked",
       [](asio::io_context& io, asio::thread_pool&) {
         return asio::any_io_executor(asio::prefer(io.get_executor(), asio::execution::outstanding_work.tracked));
       },
       false},
      {"strand over io_context", [](asio::io_context& io, asio::thread_pool&) { return asio::any_io_executor(asio::make_strand(io)); }, false},
      {"thread_pool executor", [](asio::io_context&, asio::thread_pool& p) { return asio::any_io_executor(p.get_executor()); }, true},
      {"thread_pool executor, blocking.never",
       [](asio::io_context&, asio::thread_pool& p) {
         return asio::any_io_executor(asio::require(p.get_executor(), asio::execution::blocking.never));
       },
       true},
      {"strand over thread_pool", [](asio::io_context&, asio::thread_pool& p) { return asio::any_io_executor(asio::make_strand(p)); }, true},
  };
  for (const auto& shape : shapes) {
    CAPTURE(shape.name);
    asio::io_context io;
    asio::thread_pool pool(2);
    std::atomic<bool> inside_completion{false};
    auto completes_inline = Fetcher::async([&](FetchContext, FetchCompletion done) {
      inside_completion = true;
      const auto exp = std::chrono::system_clock::now() + 1h;
      done.succeed(AccessToken{make_jwt(exp), exp});
      inside_completion = false;
    });
    TokenCredentialOptions o;
    o.mode = RefreshMode::on_demand;
    o.fetcher = std::move(completes_inline);
    auto cred = TokenCredential::create(shape.make(io, pool), std::move(o));
    std::atomic<int> ran{0}, ran_inside{0}, ran_on_strand{0}, failed{0};
    std::promise<void> all_ran;
    for (int i = 0; i < 3; ++i) {
      cred->async_get_token([&](std::exception_ptr e, TokenHandle h) {
        if (e || !h) ++failed;
        if (inside_completion) ++ran_inside;
        if (detail::running_on_strand(cred->get_executor())) ++ran_on_strand;
        if (++ran == 3) all_ran.set_value();
      });
    }
    if (!shape.on_pool) CHECK(ran == 0);  // nothing ran inside the initiating calls (io not run yet)
    if (shape.on_pool) {
      REQUIRE(all_ran.get_future().wait_for(30s) == std::future_status::ready);
    } else {
      run_until(io, [&] { return ran == 3; });
    }
    CHECK(failed == 0);
    CHECK(ran_inside == 0);
    CHECK(ran_on_strand == 3);
    cred->close();
    pool.join();
  }
}
