#include "caches/io_pool.hpp"

#include "core/blocking_runner.hpp"

#include <boost/asio/thread_pool.hpp>

#include <algorithm>

namespace credkit::detail {

boost::asio::any_io_executor cache_io_executor() {
  // Intentionally leaked: joining at static destruction would race with caches released late.
  // Only timers and short hand-offs run here; blocking jobs run in lanes on the elastic pool.
  static auto* pool = new boost::asio::thread_pool(1);
  return pool->get_executor();
}

std::shared_ptr<IoLane> IoLane::create(std::size_t max_threads) {
  return std::shared_ptr<IoLane>(new IoLane(max_threads));
}

IoLane::IoLane(std::size_t max_threads) : max_threads_(std::clamp<std::size_t>(max_threads, 1, cache_io_threads - 1)) {}

void IoLane::post(std::unique_ptr<Job> job) {
  const Job* queued = job.get();
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(job));
    if (running_ >= max_threads_) return;  // a running slot picks it up
    ++running_;
  }
  try {
    // The elastic pool gives each slot a thread of its own (an idle one, or a new one), so
    // lanes wedged in I/O never leave a healthy lane waiting, however many there are.
    run_blocking([self = shared_from_this()] { self->run_slot(); });
  } catch (...) {
    std::lock_guard lock(mutex_);
    --running_;
    if (running_ > 0) return;  // a running slot will take the job
    // No slot runs and no thread could be made: take the job back (if no slot took it
    // meanwhile) and let the caller fail.
    auto it = std::find_if(queue_.begin(), queue_.end(), [&](const auto& j) { return j.get() == queued; });
    if (it != queue_.end()) queue_.erase(it);
    throw;
  }
}

void IoLane::run_slot() {
  for (;;) {
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
  }
}

}  // namespace credkit::detail
