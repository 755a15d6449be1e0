// credkit detail — the threads that run the caches' blocking work (file I/O, Redis calls).
#pragma once

#include "core/completion.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

namespace credkit::detail {

/// A process-wide pool of `cache_io_threads` threads dedicated to cache I/O, created on first
/// use and never destroyed (so a cache released on one of its threads never has to join it).
/// Blocking cache work runs here, never on a credential's or the user's executor.
inline constexpr std::size_t cache_io_threads = 4;
boost::asio::any_io_executor cache_io_executor();

/// One cache's share of the cache I/O threads: its blocking jobs run in order on the pool, at
/// most `max_threads` of them at once (each job is posted to the pool only when the lane has a
/// free slot; a runner re-posts itself per job, so lanes interleave fairly). A cache whose I/O
/// wedges or crawls (a hung NFS mount, a Redis dripping bytes) holds at most `max_threads`
/// pool threads; the others stay free for healthy caches. `max_threads` is clamped to
/// [1, cache_io_threads - 1] so a single lane can never take the whole pool.
class IoLane : public std::enable_shared_from_this<IoLane> {
 public:
  struct Job {
    virtual ~Job() = default;
    virtual void run() = 0;
  };
  static std::shared_ptr<IoLane> create(std::size_t max_threads);
  /// Queues `job`; it runs on a cache I/O thread once the lane has a free slot.
  void post(std::unique_ptr<Job> job);
  std::size_t max_threads() const noexcept { return max_threads_; }

 private:
  explicit IoLane(std::size_t max_threads);
  void run_one();
  std::mutex mutex_;
  std::deque<std::unique_ptr<Job>> queue_;
  std::size_t running_ = 0;
  std::size_t max_threads_;
};

namespace io_pool_detail {
template <class F>
struct FnJob final : IoLane::Job {
  explicit FnJob(F f) : fn(std::move(f)) {}
  void run() override { fn(); }
  F fn;
};
}  // namespace io_pool_detail

/// Queues the callable `f` on `lane`.
template <class F>
void post_on(IoLane& lane, F f) {
  lane.post(std::make_unique<io_pool_detail::FnJob<F>>(std::move(f)));
}

/// The one way a cache runs a blocking call: `fn()` runs on `lane` (its share of the cache I/O
/// threads), then completes there with `done(error)` (when `fn` returns void) or
/// `done(error, result)` (a default-constructed result on failure).
template <class Fn, class Done>
void run_blocking(IoLane& lane, Fn fn, Done done) {
  post_on(lane, [fn = std::move(fn), done = std::move(done)]() mutable {
    using Result = std::invoke_result_t<Fn&>;
    if constexpr (std::is_void_v<Result>) {
      done(exception_from(fn));
    } else {
      Result result{};
      auto failure = exception_from([&] { result = fn(); });
      done(std::move(failure), std::move(result));
    }
  });
}

}  // namespace credkit::detail
