// credkit detail — the threads that run the caches' blocking work (file I/O, Redis calls).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include <exception>
#include <type_traits>
#include <utility>

namespace credkit::detail {

/// A process-wide pool of 4 threads dedicated to cache I/O, created on first use and never
/// destroyed (so a cache released on one of its threads never has to join it). Blocking
/// cache work runs here, never on a credential's or the user's executor.
boost::asio::any_io_executor cache_io_executor();

/// Runs `fn()` on the cache I/O threads, then completes there with `done(error)` (when `fn`
/// returns void) or `done(error, result)` (a default-constructed result on failure).
template <class Fn, class Done>
void run_blocking(Fn fn, Done done) {
  boost::asio::post(cache_io_executor(), [fn = std::move(fn), done = std::move(done)]() mutable {
    using Result = std::invoke_result_t<Fn&>;
    std::exception_ptr failure;
    // Completed outside the catch blocks: `done` may hand the result to another thread at once.
    if constexpr (std::is_void_v<Result>) {
      try {
        fn();
      } catch (...) {
        failure = std::current_exception();
      }
      done(std::move(failure));
    } else {
      Result result{};
      try {
        result = fn();
      } catch (...) {
        failure = std::current_exception();
      }
      done(std::move(failure), std::move(result));
    }
  });
}

}  // namespace credkit::detail
