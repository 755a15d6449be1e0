// credkit — the coarse wall clock, shared by SystemClock and the credential's hot path.
#pragma once

#include <chrono>
#include <ctime>

namespace credkit::detail {

/// Wall-clock now from CLOCK_REALTIME_COARSE: a few ns (no TSC read), a tick (~4 ms) stale at
/// worst, which is irrelevant beside minimum validities of minutes. Inline so that the hot path
/// reads it without a virtual call when the credential runs on the system clock.
inline std::chrono::system_clock::time_point coarse_system_now() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

}  // namespace credkit::detail
