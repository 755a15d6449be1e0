#include <credkit/core/error.hpp>
#include <credkit/core/log.hpp>

#include "core/metrics_notify.hpp"

#include <string>

namespace credkit::detail {

void log_metrics_hook_failure(const std::exception_ptr& failure) noexcept {
  try {
    log(LogLevel::warning, "a metrics observer hook threw (" + message_of(failure) + "); the event is not recorded");
  } catch (...) {
    // Out of memory while logging: the metric is lost, the credential or cache goes on.
  }
}

}  // namespace credkit::detail
