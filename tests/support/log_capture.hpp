// Test helper: the one capture of credkit's log lines, for every test that checks what was logged.
#pragma once

#include <credkit/core/log.hpp>

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace credkit::test {

/// Captures credkit's log lines (every level, debug and up) for the lifetime of the object;
/// the previous handler and level come back on destruction.
class LogCapture {
 public:
  LogCapture() {
    previous_level_ = log_level();
    set_log_level(LogLevel::debug);
    previous_ = set_log_handler([this](LogLevel level, std::string_view line) {
      std::lock_guard lock(mutex_);
      lines_.emplace_back(level, std::string(line));
    });
  }
  ~LogCapture() {
    set_log_handler(previous_);
    set_log_level(previous_level_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  /// Every line captured so far, with its level.
  std::vector<std::pair<LogLevel, std::string>> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  /// How many lines were logged at exactly `level`.
  std::size_t count(LogLevel level) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& [at, line] : lines_) n += at == level;
    return n;
  }
  /// How many lines at `at_least` or above contain `needle`.
  int count(std::string_view needle, LogLevel at_least = LogLevel::warning) const {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (const auto& [at, line] : lines_) n += at >= at_least && line.find(needle) != std::string::npos;
    return n;
  }
  /// Every line captured so far, each ended by a newline.
  std::string all() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [at, line] : lines_) out += line + "\n";
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<LogLevel, std::string>> lines_;
  LogHandler previous_;
  LogLevel previous_level_;
};

}  // namespace credkit::test
