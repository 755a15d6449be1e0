#include <credkit/core/clock.hpp>

#include <boost/asio/steady_timer.hpp>

#include "core/coarse_clock.hpp"

namespace credkit {
namespace {

class SteadyTimer final : public Timer {
 public:
  explicit SteadyTimer(const boost::asio::any_io_executor& ex) : timer_(ex) {}
  void async_wait_for(std::chrono::nanoseconds d, std::function<void(bool)> handler) override {
    timer_.expires_after(d);  // cancels a pending wait: its handler sees operation_aborted
    timer_.async_wait([h = std::move(handler)](const boost::system::error_code& ec) { h(ec.failed()); });
  }
  void cancel() noexcept override { timer_.cancel(); }

 private:
  boost::asio::steady_timer timer_;
};

class SystemClock final : public Clock {
 public:
  time_point now() const noexcept override { return std::chrono::system_clock::now(); }
  time_point coarse_now() const noexcept override { return detail::coarse_system_now(); }
  std::unique_ptr<Timer> make_timer(const boost::asio::any_io_executor& ex) override {
    return std::make_unique<SteadyTimer>(ex);
  }
};

}  // namespace

std::chrono::nanoseconds Clock::elapsed() const {
  return std::chrono::steady_clock::now().time_since_epoch();  // what steady_timer measures
}

std::shared_ptr<Clock> Clock::system() {
  static const std::shared_ptr<Clock> instance = std::make_shared<SystemClock>();
  return instance;
}

}  // namespace credkit
