// async_get_token with every completion-token style, per-operation cancellation, and the
// three fetcher styles.
#include <doctest/doctest.h>

#include "support/test_tokens.hpp"

#include <credkit/core/coroutine_fetcher.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <thread>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {
TokenCredentialOptions on_demand(VirtualEnv& env, Fetcher f) {
  TokenCredentialOptions o;
  o.mode = RefreshMode::on_demand;
  o.clock = env.clock;
  o.fetcher = std::move(f);
  return o;
}
errc code_of(const std::exception_ptr& e) { return static_cast<errc>(error_code_of(e).value()); }
}  // namespace

TEST_CASE("use_future") {
  VirtualEnv env;
  ScriptedFetcher f(env.clock);
  auto cred = TokenCredential::create(env.io.get_executor(), on_demand(env, f.fetcher()));
  std::future<TokenHandle> fut = cred->async_get_token(asio::use_future);
  env.drain();
  REQUIRE(fut.wait_for(0s) == std::future_status::ready);
  CHECK(fut.get().expires_on() > env.now());
}

TEST_CASE("use_future delivers the credkit Error as the exception") {
  VirtualEnv env;
  ScriptedFetcher f(env.clock);
  f.script({ScriptedFetcher::Step::fail});
  auto cred = TokenCredential::create(env.io.get_executor(), on_demand(env, f.fetcher()));
  auto fut = cred->async_get_token(asio::use_future);
  env.drain();
  CHECK_THROWS_AS(fut.get(), Error);
}

TEST_CASE("use_awaitable inside a coroutine") {
  VirtualEnv env;
  ScriptedFetcher f(env.clock);
  auto cred = TokenCredential::create(env.io.get_executor(), on_demand(env, f.fetcher()));
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
  CHECK(f.calls() == 1);
}

TEST_CASE("deferred: nothing starts until the deferred operation is invoked") {
  VirtualEnv env;
  ScriptedFetcher f(env.clock);
  auto cred = TokenCredential::create(env.io.get_executor(), on_demand(env, f.fetcher()));
  auto op = cred->async_get_token(asio::deferred);
  env.drain();
  CHECK(f.calls() == 0);
  TokenHandle got;
  std::move(op)([&](std::exception_ptr e, TokenHandle t) {
    CHECK_FALSE(e);
    got = t;
  });
  env.drain();
  CHECK(got);
  CHECK(f.calls() == 1);
}

TEST_CASE("completions are posted: never invoked inline, even with a fresh token") {
  VirtualEnv env;
  ScriptedFetcher f(env.clock);
  auto cred = TokenCredential::create(env.io.get_executor(), on_demand(env, f.fetcher()));
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
TEST_CASE("completions are posted, never run inside the call that completes the fetch") {
  VirtualEnv env;
  bool inside_completion = false;
  auto fetcher = Fetcher::async([&](FetchContext, FetchCompletion done) {
    inside_completion = true;
    done.succeed(AccessToken{make_jwt(env.now() + 1h), env.now() + 1h});
    inside_completion = false;
  });
  auto cred = TokenCredential::create(env.io.get_executor(), on_demand(env, std::move(fetcher)));
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

TEST_CASE("handlers run on the credential's executor by default, or on their associated executor") {
  VirtualEnv env;
  ScriptedFetcher f(env.clock);
  auto cred = TokenCredential::create(env.io.get_executor(), on_demand(env, f.fetcher()));
  bool on_strand = false;
  cred->async_get_token([&](std::exception_ptr, TokenHandle) {
    auto* strand = cred->get_executor().target<asio::strand<asio::any_io_executor>>();
    on_strand = strand && strand->running_in_this_thread();
  });
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

TEST_CASE("cancelling one waiter completes it with cancelled; the others and the fetch carry on") {
  VirtualEnv env;
  ScriptedFetcher f(env.clock);
  f.script({ScriptedFetcher::Step::hold});
  auto cred = TokenCredential::create(env.io.get_executor(), on_demand(env, f.fetcher()));
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
  f.release_all();
  env.drain();
  CHECK(others == 5);
  CHECK(f.calls() == 1);
  sig.emit(asio::cancellation_type::terminal);  // late: harmless
  env.drain();
}

TEST_CASE("partial and total cancellation are honoured too") {
  for (auto type : {asio::cancellation_type::partial, asio::cancellation_type::total}) {
    VirtualEnv env;
    ScriptedFetcher f(env.clock);
    f.script({ScriptedFetcher::Step::hold});
    auto cred = TokenCredential::create(env.io.get_executor(), on_demand(env, f.fetcher()));
    asio::cancellation_signal sig;
    std::exception_ptr error;
    cred->async_get_token(asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e, TokenHandle) { error = e; }));
    env.drain();
    sig.emit(type);
    env.drain();
    CHECK(code_of(error) == errc::cancelled);
  }
}

TEST_CASE("the coroutine fetcher style") {
  VirtualEnv env;
  auto clock = env.clock;
  std::atomic<int> calls{0};
  auto fetcher = coroutine_fetcher([clock, &calls](FetchContext ctx) -> asio::awaitable<AccessToken> {
    ++calls;
    CHECK(ctx.reason() == FetchReason::initial);
    co_return AccessToken{make_jwt(clock->now() + 1h), clock->now() + 1h};
  });
  auto cred = TokenCredential::create(env.io.get_executor(), on_demand(env, fetcher));
  auto fut = cred->async_get_token(asio::use_future);
  env.drain();
  CHECK(fut.get().expires_on() == env.now() + 1h);
  CHECK(calls == 1);
}

TEST_CASE("a coroutine fetcher is cancelled through its slot when the fetch times out") {
  VirtualEnv env;
  std::atomic<bool> aborted{false};
  auto fetcher = coroutine_fetcher([&aborted](FetchContext ctx) -> asio::awaitable<AccessToken> {
    asio::steady_timer forever(ctx.executor(), std::chrono::hours(24));
    boost::system::error_code ec;
    co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    aborted = ec == asio::error::operation_aborted;
    throw std::runtime_error("cancelled");
  });
  auto o = on_demand(env, fetcher);
  auto cred = TokenCredential::create(env.io.get_executor(), o);
  std::exception_ptr error;
  cred->async_get_token([&](std::exception_ptr e, TokenHandle) { error = e; });
  env.run_for(31s);
  CHECK(code_of(error) == errc::fetch_timeout);
  env.drain();
  CHECK(aborted);
}

TEST_CASE("the blocking fetcher style runs off the credential's executor") {
  VirtualEnv env;
  asio::thread_pool pool(1);
  auto clock = env.clock;
  std::thread::id fetch_thread;
  auto fetcher = Fetcher::blocking(
      [&](const FetchContext&) {
        fetch_thread = std::this_thread::get_id();
        return make_jwt(clock->now() + 1h);  // a string: expiry parsed from the token
      },
      pool.get_executor());
  auto cred = TokenCredential::create(env.io.get_executor(), on_demand(env, fetcher));
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
