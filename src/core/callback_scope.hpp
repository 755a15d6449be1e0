// credkit detail — marks the current thread as running a credkit callback (a listener or a
// fetcher start), so a blocking get_token() there fails with would_deadlock instead of hanging.
#pragma once

namespace credkit::detail {

class CallbackScope {
 public:
  CallbackScope() noexcept { ++depth(); }
  ~CallbackScope() { --depth(); }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;
  static bool active() noexcept { return depth() > 0; }

 private:
  static int& depth() noexcept {
    thread_local int d = 0;
    return d;
  }
};

}  // namespace credkit::detail
