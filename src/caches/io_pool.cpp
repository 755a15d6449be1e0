#include "caches/io_pool.hpp"

#include <boost/asio/thread_pool.hpp>

#include <algorithm>

namespace credkit::detail {

boost::asio::any_io_executor cache_io_executor() {
  // Intentionally leaked: joining at static destruction would race with caches released late.
  static auto* pool = new boost::asio::thread_pool(cache_io_threads);
  return pool->get_executor();
}

std::shared_ptr<IoLane> IoLane::create(std::size_t max_threads) {
  return std::shared_ptr<IoLane>(new IoLane(max_threads));
}

IoLane::IoLane(std::size_t max_threads) : max_threads_(std::clamp<std::size_t>(max_threads, 1, cache_io_threads - 1)) {}

void IoLane::post(std::unique_ptr<Job> job) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(job));
    if (running_ >= max_threads_) return;  // a running slot picks it up
    ++running_;
  }
  boost::asio::post(cache_io_executor(), [self = shared_from_this()] { self->run_one(); });
}

void IoLane::run_one() {
  std::unique_ptr<Job> job;
  {
    std::lock_guard lock(mutex_);
    if (queue_.empty()) {
      --running_;
      return;
    }
    job = std::move(queue_.front());
    queue_.pop_front();
  }
  job->run();  // lane jobs never throw: run_blocking sends failures to `done`, the Redis flight catches its own
  job.reset();
  // Keep this slot, but go to the back of the pool's queue so other lanes' jobs interleave.
  boost::asio::post(cache_io_executor(), [self = shared_from_this()] { self->run_one(); });
}

}  // namespace credkit::detail
