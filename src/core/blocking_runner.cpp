#include "core/blocking_runner.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace credkit::detail {

namespace {

class ElasticPool {
 public:
  void submit(std::function<void()> task) {
    std::unique_lock lock(mutex_);
    queue_.push_back(std::move(task));
    // Every queued task needs a thread of its own that is waiting now; otherwise start one.
    if (idle_ >= queue_.size()) {
      cv_.notify_one();
      return;
    }
    try {
      std::thread([this] { work(); }).detach();
      ++threads_;
    } catch (...) {
      queue_.pop_back();
      throw;
    }
  }

  std::size_t threads() const noexcept {
    std::lock_guard lock(mutex_);
    return threads_;
  }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      while (!queue_.empty()) {
        auto task = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        try {
          task();
        } catch (...) {
          // A task reports its own failures; nothing escapes a pool thread.
        }
        task = nullptr;  // released outside the lock
        lock.lock();
      }
      ++idle_;
      const bool woke = cv_.wait_for(lock, kBlockingIdleRetire, [&] { return !queue_.empty(); });
      --idle_;
      if (!woke) {
        --threads_;
        return;
      }
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::size_t idle_ = 0;
  std::size_t threads_ = 0;
};

ElasticPool& pool() {
  static auto* p = new ElasticPool();  // never destroyed: detached threads may still use it at exit
  return *p;
}

}  // namespace

void run_blocking(std::function<void()> task) { pool().submit(std::move(task)); }

std::size_t blocking_threads() noexcept { return pool().threads(); }

}  // namespace credkit::detail
