// fetcher_styles — the same token service reached through the three fetcher styles credkit
// accepts, one proactive credential each, all on one io_context:
//   1. blocking:        a plain function that may block; credkit runs it off the executor;
//   2. async callback:  starts work and completes a FetchCompletion later, from any thread;
//   3. coroutine:       a C++20 coroutine returning asio::awaitable<AccessToken>.
// Tokens live 3 s, so each credential refreshes a few times in the 6 s run.

#include <credkit/credkit.hpp>
#include <credkit/core/coroutine_fetcher.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

const auto g_start = std::chrono::steady_clock::now();
std::mutex g_print_mutex;

template <typename... Args>
void say(const Args&... args) {
  std::ostringstream line;
  char stamp[16];
  std::snprintf(stamp, sizeof stamp, "[%5.2fs] ",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count());
  line << stamp;
  (line << ... << args);
  std::lock_guard lock(g_print_mutex);
  std::cout << line.str() << std::endl;
}

constexpr auto kLifetime = 3s;

// What the "token service" hands out: an opaque token with an explicit expiry.
credkit::AccessToken issue(const std::string& who, int n) {
  return {"opaque-" + who + "-token-" + std::to_string(n) + "-0123456789abcdef",
          std::chrono::system_clock::now() + kLifetime};
}

// 1. Blocking: may sleep or do a synchronous HTTP call.
credkit::Fetcher blocking_style(std::atomic<int>& count) {
  return credkit::Fetcher::blocking([&count](const credkit::FetchContext& ctx) {
    std::this_thread::sleep_for(50ms);  // a synchronous round trip
    if (ctx.cancelled()) throw credkit::Error(credkit::errc::cancelled, "not needed any more");
    return issue("blocking", ++count);
  });
}

// 2. Async callback: an "HTTP client" with its own thread answers later; the completion is
// called from that thread.
credkit::Fetcher async_style(std::atomic<int>& count, asio::thread_pool& http_client) {
  return credkit::Fetcher::async([&count, &http_client](credkit::FetchContext, credkit::FetchCompletion done) {
    asio::post(http_client, [&count, done = std::move(done)]() mutable {
      std::this_thread::sleep_for(50ms);
      done.succeed(issue("async", ++count));
    });
  });
}

// 3. Coroutine: awaits an Asio operation; credkit binds the fetch's cancellation to it.
asio::awaitable<credkit::AccessToken> fetch_with_coroutine(std::atomic<int>* count) {
  asio::steady_timer round_trip(co_await asio::this_coro::executor, 50ms);
  co_await round_trip.async_wait(asio::use_awaitable);
  co_return issue("coroutine", ++*count);
}
credkit::Fetcher coroutine_style(std::atomic<int>& count) {
  return credkit::coroutine_fetcher([&count](credkit::FetchContext) { return fetch_with_coroutine(&count); });
}

std::shared_ptr<credkit::TokenCredential> make(asio::io_context& io, credkit::Fetcher fetcher) {
  credkit::TokenCredentialOptions options;
  options.fetcher = std::move(fetcher);
  options.policy.refresh_before_expiry = 1s;  // the ACS 10 min, scaled to 3 s tokens
  options.policy.min_validity = 500ms;
  return credkit::TokenCredential::create(io.get_executor(), std::move(options));
}

}  // namespace

int main() {
  asio::io_context io;
  asio::thread_pool http_client(1);
  std::atomic<int> blocking_count{0}, async_count{0}, coroutine_count{0};

  struct Entry {
    const char* style;
    std::shared_ptr<credkit::TokenCredential> credential;
    std::atomic<int>* count;
    credkit::Subscription sub;
  } entries[] = {
      {"blocking", make(io, blocking_style(blocking_count)), &blocking_count, {}},
      {"async", make(io, async_style(async_count, http_client)), &async_count, {}},
      {"coroutine", make(io, coroutine_style(coroutine_count)), &coroutine_count, {}},
  };
  for (auto& e : entries) {
    e.sub = e.credential->on_token_refreshed([style = e.style](credkit::TokenCredential&, const credkit::TokenEvent& ev) {
      say(style, " fetcher: refreshed (", credkit::to_string(ev.reason), ") ", ev.token);
    });
  }

  std::thread runner([&] { io.run_for(6s); });

  // Getting tokens, in three completion styles, from this (non-executor) thread.
  auto f = entries[0].credential->async_get_token(asio::use_future);  // a future
  say("main: future gave ", f.get());
  entries[1].credential->async_get_token([](std::exception_ptr e, credkit::TokenHandle t) {  // a callback
    if (!e) say("main: callback gave ", t);
  });
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {  // a coroutine
    auto t = co_await entries[2].credential->async_get_token(asio::use_awaitable);
    say("main: coroutine gave ", t);
  }, asio::detached);

  runner.join();
  for (auto& e : entries) {
    e.sub.reset();
    e.credential->close();
  }
  http_client.join();

  std::cout << "\nfetches: blocking " << blocking_count << ", async " << async_count << ", coroutine "
            << coroutine_count << " (each 3 s token is refreshed 1 s before expiry)\n";
  const bool all_refreshed = blocking_count >= 2 && async_count >= 2 && coroutine_count >= 2;
  return all_refreshed ? 0 : 1;
}
