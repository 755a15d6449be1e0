#include <credkit/core/clock.hpp>

#include <boost/asio/steady_timer.hpp>

#include <ctime>

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
  time_point coarse_now() const noexcept override {
    // CLOCK_REALTIME_COARSE costs a few ns (no TSC read); its resolution (a tick, ~4 ms) is
    // irrelevant beside minimum validities of minutes.
    timespec ts{};
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return time_point(std::chrono::duration_cast<time_point::duration>(std::chrono::seconds(ts.tv_sec) +
                                                                       std::chrono::nanoseconds(ts.tv_nsec)));
  }
  std::unique_ptr<Timer> make_timer(const boost::asio::any_io_executor& ex) override {
    return std::make_unique<SteadyTimer>(ex);
  }
};

}  // namespace

std::shared_ptr<Clock> Clock::system() {
  static const std::shared_ptr<Clock> instance = std::make_shared<SystemClock>();
  return instance;
}

}  // namespace credkit
