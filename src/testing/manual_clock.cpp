#include <credkit/testing/manual_clock.hpp>

#include <boost/asio/post.hpp>

namespace credkit::testing {

namespace asio = boost::asio;

struct ManualClock::Pending {
  std::chrono::nanoseconds deadline{};
  asio::any_io_executor executor;
  std::function<void(bool)> handler;
};

class ManualClock::ManualTimer final : public Timer {
 public:
  ManualTimer(std::weak_ptr<ManualClock> clock, asio::any_io_executor ex)
      : clock_(std::move(clock)), executor_(std::move(ex)) {}
  ~ManualTimer() override { remove(/*notify=*/false); }

  void async_wait_for(std::chrono::nanoseconds d, std::function<void(bool)> handler) override {
    auto clock = clock_.lock();
    if (!clock) return;
    std::lock_guard lock(clock->mutex_);
    remove_locked(*clock, true);
    auto p = std::make_shared<Pending>();
    p->deadline = clock->elapsed_ + std::max(d, std::chrono::nanoseconds::zero());
    p->executor = executor_;
    p->handler = std::move(handler);
    clock->pending_.emplace(p->deadline, p);
    current_ = p;
  }

  void cancel() noexcept override { remove(true); }

 private:
  void remove(bool notify) noexcept {
    auto clock = clock_.lock();
    if (!clock) return;
    std::lock_guard lock(clock->mutex_);
    remove_locked(*clock, notify);
  }

  void remove_locked(ManualClock& clock, bool notify) noexcept {
    auto p = std::move(current_);
    current_.reset();
    if (!p) return;
    auto [first, last] = clock.pending_.equal_range(p->deadline);
    for (auto it = first; it != last; ++it) {
      if (it->second == p) {
        clock.pending_.erase(it);
        if (notify) asio::post(p->executor, [h = std::move(p->handler)] { h(true); });
        return;
      }
    }
  }

  std::weak_ptr<ManualClock> clock_;
  asio::any_io_executor executor_;
  std::shared_ptr<Pending> current_;  // guarded by the clock's mutex
};

ManualClock::ManualClock(time_point start) : wall_(start.time_since_epoch().count()) {}

ManualClock::time_point ManualClock::default_start() noexcept {
  return time_point(std::chrono::seconds(1767225600));  // 2026-01-01T00:00:00Z
}

ManualClock::time_point ManualClock::now() const noexcept {
  return time_point(time_point::duration(wall_.load(std::memory_order_acquire)));
}

std::unique_ptr<Timer> ManualClock::make_timer(const asio::any_io_executor& executor) {
  return std::make_unique<ManualTimer>(weak_from_this(), executor);
}

void ManualClock::fire_due_locked(std::unique_lock<std::mutex>&) {
  while (!pending_.empty() && pending_.begin()->first <= elapsed_) {
    auto p = pending_.begin()->second;
    pending_.erase(pending_.begin());
    asio::post(p->executor, [h = std::move(p->handler)] { h(false); });
  }
}

void ManualClock::advance(std::chrono::nanoseconds d) {
  if (d < std::chrono::nanoseconds::zero()) d = std::chrono::nanoseconds::zero();
  std::unique_lock lock(mutex_);
  elapsed_ += d;
  wall_.fetch_add(std::chrono::duration_cast<time_point::duration>(d).count(), std::memory_order_acq_rel);
  fire_due_locked(lock);
}

void ManualClock::jump(std::chrono::nanoseconds d) {
  wall_.fetch_add(std::chrono::duration_cast<time_point::duration>(d).count(), std::memory_order_acq_rel);
}

void ManualClock::drain(asio::io_context& io) {
  for (;;) {
    io.restart();
    if (io.poll() == 0) break;
  }
}

void ManualClock::run_for(asio::io_context& io, std::chrono::nanoseconds d) {
  const auto target = elapsed() + d;
  drain(io);
  for (;;) {
    auto next = next_deadline();
    if (!next || *next > target) break;
    advance(*next - elapsed());
    drain(io);
  }
  advance(target - elapsed());
  drain(io);
}

std::optional<std::chrono::nanoseconds> ManualClock::next_deadline() const {
  std::lock_guard lock(mutex_);
  if (pending_.empty()) return std::nullopt;
  return pending_.begin()->first;
}

std::size_t ManualClock::pending_timers() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

std::chrono::nanoseconds ManualClock::elapsed() const {
  std::lock_guard lock(mutex_);
  return elapsed_;
}

}  // namespace credkit::testing
