// Process-wide test settings, applied before any test runs.
#include <credkit/core/log.hpp>

#include <cstdlib>
#include <string_view>

namespace {

// CREDKIT_TEST_LOG=debug|info|warning|error|off sets credkit's log threshold for a test run
// (default: warning, as for users).
const bool configured = [] {
  const char* level = std::getenv("CREDKIT_TEST_LOG");
  if (!level) return false;
  const std::string_view v(level);
  using credkit::LogLevel;
  credkit::set_log_level(v == "debug" ? LogLevel::debug
                         : v == "info" ? LogLevel::info
                         : v == "error" ? LogLevel::error
                         : v == "off" ? LogLevel::off
                                      : LogLevel::warning);
  return true;
}();

}  // namespace
