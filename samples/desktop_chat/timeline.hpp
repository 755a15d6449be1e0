// desktop_chat — a thread-safe timeline printer and the counters the summary is computed from.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>

namespace desktop_chat {

/// Prints "[ 12.34s] who  what" lines; safe from any thread.
class Timeline {
 public:
  Timeline() : start_(std::chrono::steady_clock::now()) {}

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

  /// Streams the arguments (so tokens print through their redacting operator<<).
  template <typename... Args>
  void print(const char* who, const Args&... args) {
    std::ostringstream line;
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "[%6.2fs] %-8s ", elapsed(), who);
    line << stamp;
    (line << ... << args);
    std::lock_guard lock(mutex_);
    std::cout << line.str() << std::endl;
  }

 private:
  std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
};

/// What happened during the run; the summary is computed from these, never hard-coded.
struct Stats {
  std::atomic<int> requests_sent{0};
  std::atomic<int> requests_ok{0};
  std::atomic<int> requests_failed{0};
  std::atomic<int> rejected_401{0};
  std::atomic<int> expired_tokens_sent{0};
  std::atomic<int> fetches{0};
  std::atomic<int> refreshes{0};          // refreshed events after the first token
  std::atomic<int> failures_retried{0};   // refresh_failed events with a scheduled retry
  std::atomic<int> invalidations_accepted{0};
  std::atomic<int> invalidations_ignored{0};
  std::atomic<int> will_expire_events{0};
  std::atomic<int> expired_events{0};

  /// Numbers tokens in minting order so the timeline can say "token #3" without showing it.
  int remember(const std::string& token) {
    std::lock_guard lock(mutex_);
    return serials_.emplace(token, static_cast<int>(serials_.size()) + 1).first->second;
  }
  int serial_of(const std::string& token) const {
    std::lock_guard lock(mutex_);
    auto it = serials_.find(token);
    return it == serials_.end() ? 0 : it->second;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, int> serials_;
};

}  // namespace desktop_chat
