// Issue 12, class 4: liveness with the user's executors and callbacks.
//
// (a) A blocking get_token() on any thread that must run the credential's handlers fails
//     promptly with would_deadlock, whatever executor shape the credential was given and
//     whatever shape the caller was posted through.
// (b) Destroying the execution context before the credential is safe: the credential closes,
//     its timer and strand go while Asio's services are alive, and later calls fail with
//     credential_closed (ASan/UBSan report any use-after-free).
// (c) Hung blocking fetchers of some credentials do not starve another credential's blocking
//     fetch.
// (d) Hand-off: outstanding work on the user's executor is released only by threads running
//     that executor's context, never by a fetcher's or cache lane's thread after the handler
//     ran (the app may destroy its io_context then; a late release went into the next
//     io_context allocated at the same address and stopped it: 'ran out of work').
// (e) Timers: the credentials of one execution context share one timer; a credential whose
//     strand is busy (a long listener or handler) delays no other credential's refresh.
//
// Every wait is bounded by a watchdog: a case that would hang fails instead.
#include <credkit/caches.hpp>
#include <credkit/credkit.hpp>

#include "support/async_helpers.hpp"
#include "support/audited_executor.hpp"
#include "support/temp_files.hpp"
#include "support/test_tokens.hpp"

#include <boost/asio.hpp>

#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using credkit::errc;

namespace {

constexpr auto kWatchdog = 10s;

credkit::AccessToken good_token(const std::string& sub = "user-1") {
  const auto exp = std::chrono::system_clock::now() + 1h;
  return credkit::AccessToken{credkit::test::make_jwt(exp, sub), exp};
}

// An async fetcher that succeeds for its first `succeed_first` calls and then parks its
// completions (the fetch stays in flight) until the test drops them.
struct Stash {
  std::mutex mutex;
  std::vector<credkit::FetchCompletion> held;
  std::vector<credkit::FetchContext> contexts;
  std::atomic<int> calls{0};
  int succeed_first = 0;
  std::function<void(const credkit::FetchContext&)> on_call;  // runs inside the fetcher's body
  void release() {
    std::vector<credkit::FetchCompletion> h;
    std::vector<credkit::FetchContext> c;
    {
      std::lock_guard lock(mutex);
      h.swap(held);
      c.swap(contexts);
    }
  }
};

credkit::Fetcher stashing_fetcher(std::shared_ptr<Stash> s) {
  return credkit::Fetcher::async([s](credkit::FetchContext ctx, credkit::FetchCompletion done) {
    const int n = ++s->calls;
    if (s->on_call) s->on_call(ctx);
    if (n <= s->succeed_first) {
      done.succeed(good_token());
      return;
    }
    std::lock_guard lock(s->mutex);
    s->held.push_back(std::move(done));
    s->contexts.push_back(std::move(ctx));
  });
}

// The outcome of one blocking get_token() made on a handler thread.
enum class Outcome { would_deadlock, other_error, returned, hung };

const char* name_of(Outcome o) {
  switch (o) {
    case Outcome::would_deadlock: return "would_deadlock";
    case Outcome::other_error: return "other error";
    case Outcome::returned: return "returned a token";
    case Outcome::hung: return "HUNG (watchdog)";
  }
  return "?";
}

Outcome classify(const std::function<void()>& call) {
  try {
    call();
    return Outcome::returned;
  } catch (const credkit::Error& e) {
    return e.code() == make_error_code(errc::would_deadlock) ? Outcome::would_deadlock : Outcome::other_error;
  } catch (...) {
    return Outcome::other_error;
  }
}

// Posts a blocking get_token() through `where` and waits for its outcome under the watchdog.
// On a hang, closes the credential (which releases the blocked waiter) and reports `hung`.
template <typename Executor>
Outcome blocking_call_on(const Executor& where, const std::shared_ptr<credkit::TokenCredential>& cred) {
  auto p = std::make_shared<std::promise<Outcome>>();
  auto f = p->get_future();
  asio::post(where, [p, cred] { p->set_value(classify([&] { (void)cred->get_token(); })); });
  if (f.wait_for(kWatchdog) != std::future_status::ready) {
    cred->close();
    (void)f.wait_for(kWatchdog);
    return Outcome::hung;
  }
  return f.get();
}

// An io_context run by `n` threads, stopped and joined on destruction (after a watchdog).
struct Runners {
  asio::io_context& io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::vector<std::thread> threads;
  Runners(asio::io_context& ctx, int n) : io(ctx), guard(std::in_place, ctx.get_executor()) {
    io.restart();  // a work guard released before now may have stopped it
    for (int i = 0; i < n; ++i) threads.emplace_back([this] { io.run(); });
  }
  ~Runners() {
    guard.reset();
    io.stop();
    for (auto& t : threads) t.join();
  }
};

// One (a) case: a credential on `make_executor(io)` with a fetch in flight; a blocking
// get_token posted through `make_caller(credential executor)` must fail with would_deadlock.
using ExecutorFactory = std::function<asio::any_io_executor(asio::io_context&)>;

Outcome io_case(const ExecutorFactory& make_executor, int threads, bool wrap_caller) {
  asio::io_context io;
  auto stash = std::make_shared<Stash>();
  credkit::TokenCredentialOptions options;
  options.fetcher = stashing_fetcher(stash);
  const auto ex = make_executor(io);
  auto cred = credkit::TokenCredential::create(ex, std::move(options));
  Outcome out;
  {
    Runners run(io, threads);
    out = wrap_caller ? blocking_call_on(asio::any_io_executor(ex), cred) : blocking_call_on(ex, cred);
    cred->close();
  }
  stash->release();
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// (a) would_deadlock for every executor shape

TEST_CASE("hostile executors (a): blocking get_token on the credential's io_context threads fails with would_deadlock") {
  struct Shape {
    const char* name;
    ExecutorFactory make;
  };
  const std::vector<Shape> shapes = {
      {"io_context executor", [](asio::io_context& io) { return asio::any_io_executor(io.get_executor()); }},
      {"make_strand(io)", [](asio::io_context& io) { return asio::any_io_executor(asio::make_strand(io)); }},
      {"make_strand(any_io_executor)",
       [](asio::io_context& io) { return asio::any_io_executor(asio::make_strand(asio::any_io_executor(io.get_executor()))); }},
      {"strand<io_context::executor_type>",
       [](asio::io_context& io) {
         return asio::any_io_executor(asio::strand<asio::io_context::executor_type>(io.get_executor()));
       }},
      {"prefer(outstanding_work.tracked)",
       [](asio::io_context& io) {
         return asio::any_io_executor(asio::prefer(io.get_executor(), asio::execution::outstanding_work.tracked));
       }},
      {"require(blocking.never)",
       [](asio::io_context& io) {
         return asio::any_io_executor(asio::require(io.get_executor(), asio::execution::blocking.never));
       }},
      {"executor_work_guard's executor",
       [](asio::io_context& io) {
         auto guard = asio::make_work_guard(io);
         return asio::any_io_executor(guard.get_executor());
       }},
      {"strand over tracked executor",
       [](asio::io_context& io) {
         return asio::any_io_executor(
             asio::make_strand(asio::prefer(io.get_executor(), asio::execution::outstanding_work.tracked)));
       }},
      {"any_io_executor(any_io_executor(strand))",
       [](asio::io_context& io) { return asio::any_io_executor(asio::any_io_executor(asio::make_strand(io))); }},
  };
  int cases = 0;
  for (const auto& shape : shapes) {
    for (int threads : {1, 3}) {
      for (bool wrap : {false, true}) {
        const Outcome out = io_case(shape.make, threads, wrap);
        CHECK_MESSAGE(out == Outcome::would_deadlock, std::string(shape.name) << ", " << threads << " thread(s)"
                                                                              << (wrap ? ", caller via any_io_executor" : "")
                                                                              << ": " << std::string(name_of(out)));
        ++cases;
      }
    }
  }
  MESSAGE("(a) io_context shapes checked: " << cases);
}

TEST_CASE("hostile executors (a): a work guard held while the call runs on a plain io thread") {
  asio::io_context io;
  auto stash = std::make_shared<Stash>();
  credkit::TokenCredentialOptions options;
  options.fetcher = stashing_fetcher(stash);
  auto guard = asio::make_work_guard(io);
  auto cred = credkit::TokenCredential::create(io.get_executor(), std::move(options));
  std::thread runner([&] { io.run(); });
  // Posted on the io_context itself (not the credential's strand): any thread running the
  // context could be the one the credential needs.
  const Outcome out = blocking_call_on(io.get_executor(), cred);
  CHECK_MESSAGE(out == Outcome::would_deadlock, name_of(out));
  cred->close();
  guard.reset();
  io.stop();
  runner.join();
  stash->release();
}

TEST_CASE("hostile executors (a): thread_pool executor and a strand over it") {
  int cases = 0;
  for (bool strand : {false, true}) {
    for (bool wrap : {false, true}) {
      asio::thread_pool pool(2);
      auto stash = std::make_shared<Stash>();
      credkit::TokenCredentialOptions options;
      options.fetcher = stashing_fetcher(stash);
      const asio::any_io_executor ex =
          strand ? asio::any_io_executor(asio::make_strand(pool)) : asio::any_io_executor(pool.get_executor());
      auto cred = credkit::TokenCredential::create(ex, std::move(options));
      const Outcome out = wrap ? blocking_call_on(asio::any_io_executor(ex), cred) : blocking_call_on(ex, cred);
      CHECK_MESSAGE(out == Outcome::would_deadlock,
                    (strand ? "strand over thread_pool" : "thread_pool executor") << (wrap ? " (wrapped)" : "") << ": "
                                                                                  << name_of(out));
      cred->close();
      pool.join();
      stash->release();
      ++cases;
    }
  }
  MESSAGE("(a) thread_pool shapes checked: " << cases);
}

TEST_CASE("hostile executors (a): the default executor (no executor given)") {
  auto stash = std::make_shared<Stash>();
  credkit::TokenCredentialOptions options;
  options.fetcher = stashing_fetcher(stash);
  auto cred = credkit::TokenCredential::create(std::move(options));
  const Outcome out = blocking_call_on(cred->get_executor(), cred);
  CHECK_MESSAGE(out == Outcome::would_deadlock, name_of(out));
  cred->close();
  stash->release();
}

namespace {

// A callback_case configuration: the first fetch succeeds, later ones are held.
void one_token_then_hold(std::shared_ptr<credkit::TokenCredential>&, std::shared_ptr<Stash>& stash,
                         credkit::TokenCredentialOptions& options) {
  stash->succeed_first = 1;
  options.fetcher = stashing_fetcher(stash);
}

// Runs `setup(cred, record)` on a credential over `io` run by `threads` threads; `record` is
// called once by the callback under test with the outcome of its blocking get_token().
Outcome callback_case(int threads,
                      const std::function<void(std::shared_ptr<credkit::TokenCredential>&, std::shared_ptr<Stash>&,
                                               credkit::TokenCredentialOptions&)>& configure,
                      const std::function<std::vector<credkit::Subscription>(
                          const std::shared_ptr<credkit::TokenCredential>&, std::function<void(Outcome)>)>& setup) {
  asio::io_context io;
  auto stash = std::make_shared<Stash>();
  credkit::TokenCredentialOptions options;
  std::shared_ptr<credkit::TokenCredential> cred;
  configure(cred, stash, options);
  cred = credkit::TokenCredential::create(io.get_executor(), std::move(options));
  auto p = std::make_shared<std::promise<Outcome>>();
  auto f = p->get_future();
  auto once = std::make_shared<std::once_flag>();
  auto record = [p, once](Outcome o) { std::call_once(*once, [&] { p->set_value(o); }); };
  auto subs = setup(cred, record);
  Outcome out = Outcome::hung;
  {
    Runners run(io, threads);
    if (f.wait_for(kWatchdog) == std::future_status::ready) out = f.get();
    cred->close();
  }
  subs.clear();
  stash->release();
  return out;
}

}  // namespace

TEST_CASE("hostile executors (a): from inside listeners, an async fetcher's body and a completion handler") {
  int cases = 0;
  for (int threads : {1, 3}) {
    CAPTURE(threads);
    // token_refreshed listener: invalidate the new token (a refresh starts), then wait for it.
    {
      std::weak_ptr<credkit::TokenCredential> weak;
      const Outcome out = callback_case(
          threads,
          one_token_then_hold,
          [](const auto& cred, auto record) {
            std::vector<credkit::Subscription> subs;
            subs.push_back(cred->on_token_refreshed([record](credkit::TokenCredential& c, const credkit::TokenEvent& e) {
              c.invalidate(e.token);
              record(classify([&] { (void)c.get_token(); }));
            }));
            return subs;
          });
      CHECK_MESSAGE(out == Outcome::would_deadlock, "token_refreshed listener: " << name_of(out));
      ++cases;
    }
    // token_will_expire listener (no fetcher: the listener is asked for the first token).
    {
      const Outcome out = callback_case(
          threads, [](auto&, auto&, auto&) {},
          [](const auto& cred, auto record) {
            std::vector<credkit::Subscription> subs;
            subs.push_back(cred->on_token_will_expire([record](credkit::TokenCredential& c, const credkit::TokenEvent&) {
              record(classify([&] { (void)c.get_token(); }));
            }));
            return subs;
          });
      CHECK_MESSAGE(out == Outcome::would_deadlock, "token_will_expire listener: " << name_of(out));
      ++cases;
    }
    // Inside the async fetcher's body (its own fetch is in flight).
    {
      auto holder = std::make_shared<std::weak_ptr<credkit::TokenCredential>>();
      auto recorder = std::make_shared<std::function<void(Outcome)>>();
      const Outcome out = callback_case(
          threads,
          [holder, recorder](auto&, auto& stash, auto& options) {
            stash->on_call = [holder, recorder](const credkit::FetchContext&) {
              if (auto c = holder->lock()) (*recorder)(classify([&] { (void)c->get_token(); }));
            };
            options.fetcher = stashing_fetcher(stash);
          },
          [holder, recorder](const auto& cred, auto record) {
            *holder = cred;
            *recorder = record;
            return std::vector<credkit::Subscription>{};
          });
      CHECK_MESSAGE(out == Outcome::would_deadlock, "async fetcher body: " << name_of(out));
      ++cases;
    }
    // Inside an async_get_token completion handler (default executor: the credential's).
    {
      const Outcome out = callback_case(
          threads,
          one_token_then_hold,
          [](const auto& cred, auto record) {
            std::weak_ptr<credkit::TokenCredential> weak = cred;
            cred->async_get_token([weak, record](std::exception_ptr, credkit::TokenHandle t) {
              auto c = weak.lock();
              if (!c || !t) return record(Outcome::other_error);
              c->invalidate(t);
              record(classify([&] { (void)c->get_token(); }));
            });
            return std::vector<credkit::Subscription>{};
          });
      CHECK_MESSAGE(out == Outcome::would_deadlock, "async completion handler: " << name_of(out));
      ++cases;
    }
  }
  MESSAGE("(a) callback cases checked: " << cases);
}

TEST_CASE("hostile executors (a): a thread that does not run the context still waits and gets the token") {
  asio::io_context io;
  auto stash = std::make_shared<Stash>();
  stash->succeed_first = 1;
  credkit::TokenCredentialOptions options;
  options.fetcher = stashing_fetcher(stash);
  auto cred = credkit::TokenCredential::create(asio::make_strand(io), std::move(options));
  Runners run(io, 2);
  const auto token = cred->get_token(kWatchdog);  // this test thread runs no handler
  CHECK(static_cast<bool>(token));
  cred->close();
}

// ---------------------------------------------------------------------------------------------
// (b) the execution context destroyed before the credential

namespace {

struct Outstanding {
  std::shared_ptr<Stash> stash = std::make_shared<Stash>();
  std::shared_ptr<credkit::TokenCredential> cred;
  std::vector<credkit::Subscription> subs;
  std::future<std::optional<std::error_code>> blocking_waiter;
  std::shared_ptr<std::atomic<int>> async_completions = std::make_shared<std::atomic<int>>(0);
};

// A credential with everything outstanding: listeners, a fetch in flight (async, parked), a
// blocking waiter parked on another thread, async_get_token outstanding. With `with_timer`, a
// first token is fetched so the proactive timer is pending and a second fetch is parked after
// an invalidate.
void make_outstanding(Outstanding& o, const asio::any_io_executor& ex, bool with_timer) {
  credkit::TokenCredentialOptions options;
  o.stash->succeed_first = with_timer ? 1 : 0;
  options.fetcher = stashing_fetcher(o.stash);
  o.cred = credkit::TokenCredential::create(ex, std::move(options));
  for (auto kind : {0, 1, 2, 3}) {
    auto h = [](credkit::TokenCredential&, const credkit::TokenEvent&) {};
    switch (kind) {
      case 0: o.subs.push_back(o.cred->on_token_refreshed(h)); break;
      case 1: o.subs.push_back(o.cred->on_refresh_failed(h)); break;
      case 2: o.subs.push_back(o.cred->on_token_expired(h)); break;
      default: o.subs.push_back(o.cred->on_token_will_expire(h)); break;
    }
  }
  for (int i = 0; i < 3; ++i) {
    o.cred->async_get_token([c = o.async_completions](std::exception_ptr, credkit::TokenHandle) { ++*c; });
  }
}

void start_blocking_waiter(Outstanding& o) {
  o.blocking_waiter = std::async(std::launch::async, [cred = o.cred]() -> std::optional<std::error_code> {
    try {
      (void)cred->get_token(kWatchdog);
      return std::error_code{};
    } catch (const credkit::Error& e) {
      return e.code();
    }
  });
}

void check_closed_after_context(Outstanding& o) {
  REQUIRE(o.blocking_waiter.valid());
  REQUIRE_MESSAGE(o.blocking_waiter.wait_for(kWatchdog) == std::future_status::ready, "a parked waiter hung");
  const auto waiter = o.blocking_waiter.get();
  REQUIRE(waiter.has_value());
  CHECK_MESSAGE(*waiter == make_error_code(errc::credential_closed), "parked waiter got: " << waiter->message());
  CHECK(o.cred->is_closed());
  CHECK(credkit::test::as_error([&] {
          try {
            (void)o.cred->get_token();
          } catch (...) {
            return std::current_exception();
          }
          return std::exception_ptr{};
        }())
            .code() == make_error_code(errc::credential_closed));
  std::exception_ptr async_error;
  try {
    o.cred->async_get_token([](std::exception_ptr, credkit::TokenHandle) {});
  } catch (...) {
    async_error = std::current_exception();
  }
  CHECK(credkit::test::as_error(async_error).code() == make_error_code(errc::credential_closed));
  CHECK_THROWS_AS(o.cred->update_token(good_token()), credkit::Error);
  CHECK_FALSE(static_cast<bool>(o.cred->on_token_refreshed([](auto&, const auto&) {})));
  o.cred->close();
  (void)o.cred->get_executor();
}

}  // namespace

TEST_CASE("hostile executors (b): io_context destroyed before the credential") {
  int cases = 0;
  for (bool with_timer : {false, true}) {
    for (bool strand : {false, true}) {
      for (int mode : {0, 1, 2}) {  // 0: never run, 1: run then stopped, 2: run by a thread then stopped
        CAPTURE(with_timer);
        CAPTURE(strand);
        CAPTURE(mode);
        Outstanding o;
        int completed_before = 0;
        {
          auto io = std::make_unique<asio::io_context>();
          make_outstanding(o, strand ? asio::any_io_executor(asio::make_strand(*io)) : asio::any_io_executor(io->get_executor()),
                           with_timer);
          if (mode == 1) {
            // Runs until the fetch is parked (first fetch done when with_timer), then stops.
            const int want = with_timer ? 2 : 1;
            if (with_timer) {
              io->run_one();  // at least the first fetch start
            }
            for (int i = 0; i < 1000 && o.stash->calls.load() < want; ++i) {
              if (with_timer && o.stash->calls.load() == 1) {
                if (auto token = o.cred->cached_token()) o.cred->invalidate(token);
              }
              if (io->run_one() == 0) break;
            }
            io->stop();
          } else if (mode == 2) {
            auto guard = asio::make_work_guard(*io);
            std::thread t([&] { io->run(); });
            std::promise<void> fetched;
            // Wait (bounded) until the first fetch is parked or succeeded, then stop.
            asio::post(o.cred->get_executor(), [&] { fetched.set_value(); });
            (void)fetched.get_future().wait_for(kWatchdog);
            guard.reset();
            io->stop();
            t.join();
            // The first fetch may have completed before the stop: a fresh token would answer
            // the waiter below at once. Invalidated, the waiter parks on a fetch that never runs.
            if (with_timer) {
              if (auto token = o.cred->cached_token()) o.cred->invalidate(token);
            }
          }
          start_blocking_waiter(o);
          completed_before = o.async_completions->load();
          io.reset();  // the io_context goes first
        }
        check_closed_after_context(o);
        CHECK(o.async_completions->load() == completed_before);  // pending handlers were destroyed, not run
        o.subs.clear();
        o.stash->release();  // completions and contexts dropped after the context died
        o.cred.reset();
        ++cases;
      }
    }
  }
  MESSAGE("(b) io_context-first cases checked: " << cases);
}

TEST_CASE("hostile executors (b): thread_pool destroyed before the credential") {
  Outstanding o;
  {
    auto pool = std::make_unique<asio::thread_pool>(2);
    make_outstanding(o, asio::make_strand(*pool), false);
    start_blocking_waiter(o);
    pool.reset();
  }
  check_closed_after_context(o);
  o.subs.clear();
  o.stash->release();
  o.cred.reset();
}

TEST_CASE("hostile executors (b): the reverse order (credential first) and the default runner") {
  {
    asio::io_context io;
    Outstanding o;
    make_outstanding(o, io.get_executor(), false);
    io.run_one();
    start_blocking_waiter(o);
    o.cred->close();
    REQUIRE(o.blocking_waiter.wait_for(kWatchdog) == std::future_status::ready);
    CHECK(*o.blocking_waiter.get() == make_error_code(errc::credential_closed));
    o.cred.reset();
    o.subs.clear();
    o.stash->release();
    io.restart();
    for (int i = 0; i < 10000 && o.async_completions->load() < 3; ++i) {
      if (io.run_one_for(kWatchdog) == 0) break;  // the closed credential's completions run out
    }
    CHECK(o.async_completions->load() == 3);
  }
  {
    Outstanding o;
    credkit::TokenCredentialOptions options;
    options.fetcher = stashing_fetcher(o.stash);
    o.cred = credkit::TokenCredential::create(std::move(options));  // the default runner
    o.subs.push_back(o.cred->on_token_refreshed([](auto&, const auto&) {}));
    o.cred->async_get_token([c = o.async_completions](std::exception_ptr, credkit::TokenHandle) { ++*c; });
    start_blocking_waiter(o);
    o.cred->close();  // the waiter's thread holds a reference too
    o.cred.reset();
    REQUIRE(o.blocking_waiter.wait_for(kWatchdog) == std::future_status::ready);
    CHECK(*o.blocking_waiter.get() == make_error_code(errc::credential_closed));
    o.subs.clear();
    o.stash->release();
  }
}

// ---------------------------------------------------------------------------------------------
// (c) hung blocking fetchers do not starve other credentials

namespace {

struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  int entered = 0;
  int exited = 0;
  void wait_open() {
    std::unique_lock lock(mutex);
    ++entered;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
    ++exited;
    cv.notify_all();
  }
  bool wait_entered(int n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, kWatchdog, [&] { return entered >= n; });
  }
  void release_and_wait_exits() {
    std::unique_lock lock(mutex);
    open = true;
    cv.notify_all();
    (void)cv.wait_for(lock, kWatchdog, [&] { return exited >= entered; });
  }
};

}  // namespace

TEST_CASE("hostile executors (c): K hung blocking fetchers do not stall a healthy credential's fetch") {
  for (int k : {1, 2, 3, 8}) {
    CAPTURE(k);
    auto gate = std::make_shared<Gate>();
    std::vector<std::shared_ptr<credkit::TokenCredential>> hung;
    for (int i = 0; i < k; ++i) {
      credkit::TokenCredentialOptions options;
      options.fetcher = credkit::Fetcher::blocking([gate](const credkit::FetchContext&) {
        gate->wait_open();
        return good_token();
      });
      hung.push_back(credkit::TokenCredential::create(std::move(options)));
    }
    REQUIRE_MESSAGE(gate->wait_entered(k), "the hung fetchers did not all start");
    credkit::TokenCredentialOptions options;
    options.fetcher = credkit::Fetcher::blocking([](const credkit::FetchContext&) { return good_token("healthy"); });
    auto healthy = credkit::TokenCredential::create(std::move(options));
    std::exception_ptr error;
    try {
      CHECK(static_cast<bool>(healthy->get_token(kWatchdog)));
    } catch (...) {
      error = std::current_exception();
    }
    CHECK_MESSAGE(!error, "K=" << k << ": the healthy credential got: " << credkit::message_of(error));
    healthy.reset();
    for (auto& c : hung) c->close();
    gate->release_and_wait_exits();
    hung.clear();
  }
}

TEST_CASE("hostile executors (c): credentials sharing one blocking Fetcher all fetch at once; only abandoned calls are bounded") {
  // A fleet holds one credential per user with one shared Fetcher: live calls are not limited
  // (before, a fifth concurrent live call failed with "still running (hung?)").
  for (int n : {1, 4, 5, 12}) {
    CAPTURE(n);
    auto gate = std::make_shared<Gate>();
    const auto shared = credkit::Fetcher::blocking([gate](const credkit::FetchContext&) {
      gate->wait_open();
      return good_token();
    });
    std::vector<std::shared_ptr<credkit::TokenCredential>> fleet;
    std::vector<std::future<credkit::TokenHandle>> tokens;
    for (int i = 0; i < n; ++i) {
      credkit::TokenCredentialOptions options;
      options.fetcher = shared;
      fleet.push_back(credkit::TokenCredential::create(std::move(options)));
    }
    REQUIRE_MESSAGE(gate->wait_entered(n), "not every credential's call started");
    for (auto& c : fleet) tokens.push_back(std::async(std::launch::async, [c] { return c->get_token(kWatchdog); }));
    gate->release_and_wait_exits();
    for (auto& t : tokens) CHECK(static_cast<bool>(t.get()));
    for (auto& c : fleet) CHECK(c->health().consecutive_failures == 0);
  }
}

TEST_CASE("hostile executors (c): one credential's abandoned blocking fetches are bounded") {
  auto gate = std::make_shared<Gate>();
  credkit::TokenCredentialOptions options;
  options.policy.fetch_timeout = 20ms;
  options.policy.retry_initial = 1ms;
  options.policy.retry_max = 5ms;
  options.policy.min_refresh_interval = 1ms;
  options.fetcher = credkit::Fetcher::blocking([gate](const credkit::FetchContext&) {
    gate->wait_open();
    return good_token();
  });
  auto failures = std::make_shared<std::promise<std::string>>();
  auto once = std::make_shared<std::once_flag>();
  auto cred = credkit::TokenCredential::create(std::move(options));
  auto sub = cred->on_refresh_failed([failures, once](credkit::TokenCredential&, const credkit::TokenEvent& e) {
    const auto msg = credkit::message_of(e.error);
    if (msg.find("still running") != std::string::npos) std::call_once(*once, [&] { failures->set_value(msg); });
  });
  auto f = failures->get_future();
  REQUIRE_MESSAGE(f.wait_for(kWatchdog) == std::future_status::ready, "no bounded-abandonment failure was reported");
  {
    std::lock_guard lock(gate->mutex);
    CHECK(gate->entered <= 4);  // the current call plus at most 3 abandoned ones
  }
  cred->close();
  gate->release_and_wait_exits();
}

// ---------------------------------------------------------------------------------------------
// (d) Completion hand-off: work is released where it is run, whatever thread completed

namespace {

using credkit::test::AuditedExecutor;
using credkit::test::WorkAudit;

enum class FetchThread { elastic_pool, own_thread, user_pool };
enum class CredShape { audited, strand_over_audited };
enum class HandlerShape { credential_executor, other_context };
enum class Call { wait_for_fetch, fresh_token, cancel_while_waiting };

const char* name_of(FetchThread f) {
  switch (f) {
    case FetchThread::elastic_pool: return "blocking fetcher (elastic pool)";
    case FetchThread::own_thread: return "async fetcher completing on its own thread";
    case FetchThread::user_pool: return "async fetcher completing on the app's thread_pool";
  }
  return "?";
}

// Two audited io_contexts run by this thread: the credential's and, for bound handlers, another.
struct AuditedContexts {
  asio::io_context io;
  asio::io_context other;
  WorkAudit audit{io};
  WorkAudit other_audit{other};
  asio::thread_pool user_pool{1};
  // Fetchers' own threads, joined before the audit is read. Started from any thread (a cache
  // lane runs the upstream fetch): under the mutex, which join_threads() takes too, so that a
  // thread is never joined while the one starting it is still inside emplace_back.
  std::mutex threads_mutex;
  std::vector<std::thread> threads;

  template <typename F>
  void spawn(F f) {
    std::lock_guard lock(threads_mutex);
    threads.emplace_back(std::move(f));
  }
  void join_threads() {
    std::vector<std::thread> started;
    {
      std::lock_guard lock(threads_mutex);
      started.swap(threads);
    }
    for (auto& t : started) t.join();
  }

  ~AuditedContexts() {
    join_threads();
    user_pool.join();
  }

  // Runs both contexts on this thread until `done`; with `drain`, then until every tracked
  // copy is gone (a late release by another thread is then already counted; a credential's
  // pending timer holds work, as Asio's timers do, so drain after close()). Bounded by the
  // watchdog.
  void run_until(const bool& done, bool drain) {
    const auto until = std::chrono::steady_clock::now() + kWatchdog;
    while (!done && std::chrono::steady_clock::now() < until) {
      io.restart();
      io.run_one_for(1ms);
      other.restart();
      other.poll();
    }
    REQUIRE_MESSAGE(done, "the handler did not run within the watchdog");
    join_threads();
    while (drain && (audit.held > 0 || other_audit.held > 0) && std::chrono::steady_clock::now() < until) {
      io.restart();
      io.poll();
      other.restart();
      other.poll();
      std::this_thread::sleep_for(100us);  // a foreign thread releasing late (real time: threads)
    }
  }

  credkit::Fetcher fetcher(FetchThread where, bool fail) {
    auto finish = [fail](credkit::FetchCompletion done) {
      if (fail) {
        done.fail(errc::fetch_failed, "planned failure");
      } else {
        done.succeed(good_token());
      }
    };
    switch (where) {
      case FetchThread::elastic_pool:
        return credkit::Fetcher::blocking([fail](const credkit::FetchContext&) {
          if (fail) throw std::runtime_error("planned failure");
          return good_token();
        });
      case FetchThread::own_thread:
        return credkit::Fetcher::async([this, finish](credkit::FetchContext, credkit::FetchCompletion done) {
          spawn([finish, done = std::move(done)]() mutable { finish(std::move(done)); });
        });
      case FetchThread::user_pool:
        return credkit::Fetcher::async([this, finish](credkit::FetchContext, credkit::FetchCompletion done) {
          asio::post(user_pool, [finish, done = std::move(done)]() mutable { finish(std::move(done)); });
        });
    }
    return {};
  }
};

}  // namespace

TEST_CASE("hostile executors (d): work on the app's executor is released only on its threads (credential)") {
  int variants = 0;
  for (const auto where : {FetchThread::elastic_pool, FetchThread::own_thread, FetchThread::user_pool}) {
    for (const auto shape : {CredShape::audited, CredShape::strand_over_audited}) {
      for (const auto handler : {HandlerShape::credential_executor, HandlerShape::other_context}) {
        for (const auto call : {Call::wait_for_fetch, Call::fresh_token, Call::cancel_while_waiting}) {
          for (const bool fail : {false, true}) {
            if (call != Call::wait_for_fetch && fail) continue;
            // A fresh token or a cancelled wait never reaches the fetcher: one fetcher is enough.
            if (call != Call::wait_for_fetch && where != FetchThread::elastic_pool) continue;
            AuditedContexts h;
            const auto variant = [&] {
              std::ostringstream os;
              os << name_of(where) << (shape == CredShape::audited ? ", audited executor" : ", strand over it")
                 << (handler == HandlerShape::credential_executor ? ", handler on it" : ", handler bound elsewhere")
                 << (call == Call::wait_for_fetch ? ", waits for a fetch" : call == Call::fresh_token ? ", fresh token" : ", cancelled")
                 << (fail ? ", fetch fails" : "");
              return os.str();
            }();
            INFO(variant);
            asio::any_io_executor ex = AuditedExecutor<false>(h.audit);
            if (shape == CredShape::strand_over_audited) ex = asio::make_strand(ex);
            credkit::TokenCredentialOptions options;
            options.mode = credkit::RefreshMode::on_demand;
            if (call == Call::cancel_while_waiting) {
              options.fetcher = stashing_fetcher(std::make_shared<Stash>());  // never completes
            } else {
              options.fetcher = h.fetcher(where, fail);
            }
            if (call == Call::fresh_token) options.initial_token = good_token();
            auto cred = credkit::TokenCredential::create(ex, std::move(options));
            bool done = false;
            std::exception_ptr error;
            asio::cancellation_signal cancel;
            auto on_done = [&](std::exception_ptr e, credkit::TokenHandle) {
              error = e;
              done = true;
            };
            auto with_slot = asio::bind_cancellation_slot(cancel.slot(), on_done);
            if (handler == HandlerShape::other_context) {
              cred->async_get_token(asio::bind_executor(asio::any_io_executor(AuditedExecutor<false>(h.other_audit)), with_slot));
            } else {
              cred->async_get_token(with_slot);
            }
            if (call == Call::cancel_while_waiting) {
              asio::post(ex, [&] { cancel.emit(asio::cancellation_type::all); });
            }
            h.run_until(done, false);
            if (call == Call::cancel_while_waiting || fail) {
              CHECK(error);
            } else {
              CHECK_FALSE(error);
            }
            cred->close();
            h.run_until(done, true);  // close() may hand work off too
            CHECK(h.audit.acquired > 0);
            CHECK(h.audit.released_off_context == 0);
            CHECK(h.other_audit.released_off_context == 0);
            CHECK(h.audit.held == 0);
            CHECK(h.other_audit.held == 0);
            ++variants;
          }
        }
      }
    }
  }
  MESSAGE("credential hand-off: " << variants << " variants, no work released off its context");
}

TEST_CASE("hostile executors (d): work on the app's executor is released only on its threads (caches)") {
  credkit::test::TempDir dir;
  int variants = 0;
  for (int kind = 0; kind < 2; ++kind) {
    for (const auto where : {FetchThread::own_thread, FetchThread::user_pool}) {
      AuditedContexts h;
      const asio::any_io_executor ex = AuditedExecutor<false>(h.audit);
      std::shared_ptr<credkit::TokenCache> cache;
      if (kind == 0) {
        cache = credkit::MemoryTokenCache::create(ex);
      } else {
        credkit::EncryptedFileTokenCacheOptions o;
        o.path = dir.path / ("tokens-" + std::to_string(variants) + ".bin");
        o.keys = {credkit::CacheEncryptionKey::generate()};
        cache = credkit::EncryptedFileTokenCache::create(ex, o);
      }
      INFO((kind == 0 ? "memory cache, " : "encrypted-file cache, ") << name_of(where));
      const credkit::TokenCacheKey key("alice", {"chat"});
      bool done = false;
      std::exception_ptr error;
      cache->async_put(key, good_token(), [&](std::exception_ptr e) { error = e, done = true; });
      h.run_until(done, true);
      CHECK_FALSE(error);
      done = false;
      cache->async_get(key, [&](std::exception_ptr e, std::optional<credkit::AccessToken>) { error = e, done = true; });
      h.run_until(done, true);
      CHECK_FALSE(error);
      done = false;
      const credkit::TokenCacheKey other("bob", {"chat"});
      auto upstream = h.fetcher(where, false);
      cache->async_get_or_fetch(other, 0ms,
                                [&h, where](credkit::TokenCache::FetchDone fetched) {
                                  auto deliver = [fetched] { fetched(nullptr, good_token()); };
                                  if (where == FetchThread::own_thread) {
                                    h.spawn(deliver);
                                  } else {
                                    asio::post(h.user_pool, deliver);
                                  }
                                },
                                [&](std::exception_ptr e, credkit::AccessToken) { error = e, done = true; });
      h.run_until(done, true);
      CHECK_FALSE(error);
      // The fetched token is written back after the handler ran: read it once it landed.
      bool found = false;
      for (int i = 0; i < 1000 && !found; ++i) {
        done = false;
        cache->async_get(other, [&](std::exception_ptr e, std::optional<credkit::AccessToken> t) {
          error = e, found = t.has_value(), done = true;
        });
        h.run_until(done, true);
        if (!found) std::this_thread::sleep_for(1ms);
      }
      CHECK(found);
      CHECK(h.audit.acquired > 0);
      CHECK(h.audit.released_off_context == 0);
      CHECK(h.audit.held == 0);
      ++variants;
    }
  }
  MESSAGE("cache hand-off: " << variants << " variants, no work released off its context");
}

TEST_CASE("hostile executors (e): a credential's busy strand delays no other credential's refresh") {
  // The credentials of one io_context share one timer. Credential A, created first, runs on a
  // strand of its own making (a strand over the io_context); a handler on it blocks. B's
  // refresh falls due meanwhile: its wake must not wait behind A's strand. Real time (the
  // shared timer is the system clock's), a few hundred milliseconds.
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  const auto strand_a = asio::make_strand(io);
  credkit::TokenCredentialOptions oa;
  oa.initial_token = good_token("user-a");
  oa.fetcher = credkit::Fetcher::async([](credkit::FetchContext, credkit::FetchCompletion done) { done.succeed(good_token("user-a")); });
  auto a = credkit::TokenCredential::create(strand_a, std::move(oa));

  std::promise<void> b_fetched;
  auto b_fetched_future = b_fetched.get_future().share();
  std::once_flag once;
  credkit::TokenCredentialOptions ob;
  const auto exp = std::chrono::system_clock::now() + 10min + 300ms;  // refresh due in ~300 ms
  ob.initial_token = credkit::AccessToken{credkit::test::make_jwt(exp, "user-b"), exp};
  ob.policy.refresh_before_expiry = 10min;
  ob.fetcher = credkit::Fetcher::async([&](credkit::FetchContext, credkit::FetchCompletion done) {
    std::call_once(once, [&] { b_fetched.set_value(); });
    done.succeed(good_token("user-b"));
  });
  auto b = credkit::TokenCredential::create(io.get_executor(), std::move(ob));

  // A's strand blocks until B has fetched (or the watchdog).
  std::atomic<bool> b_fetched_while_a_blocked{false};
  asio::post(strand_a, [&] {
    b_fetched_while_a_blocked = b_fetched_future.wait_for(kWatchdog) == std::future_status::ready;
  });
  std::thread t1([&] { io.run(); });
  std::thread t2([&] { io.run(); });
  const bool fetched = b_fetched_future.wait_for(kWatchdog + 5s) == std::future_status::ready;
  a->close();
  b->close();
  guard.reset();
  io.stop();
  t1.join();
  t2.join();
  CHECK(fetched);
  CHECK(b_fetched_while_a_blocked);
}
