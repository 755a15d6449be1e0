// credkit detail — the one way credentials and caches call a MetricsObserver hook: outside
// every credkit lock, with an exception from the hook caught and logged, never propagated.
#pragma once

#include <credkit/core/metrics_observer.hpp>

#include "core/callback_scope.hpp"

#include <exception>
#include <memory>

namespace credkit::detail {

/// Logs (scrubbed, at warning level) that a metrics hook threw `failure`.
void log_metrics_hook_failure(const std::exception_ptr& failure) noexcept;

/// Calls `hook(*observer)` when there is an observer. Call it with no credkit lock held. The
/// hook runs as a callback (a blocking `get_token()` in it fails with `would_deadlock`); what
/// it throws is logged and dropped, so the event it reports goes on unaffected.
template <class Hook>
void notify_metrics(const std::shared_ptr<MetricsObserver>& observer, Hook&& hook) noexcept {
  if (!observer) return;
  try {
    CallbackScope scope;
    hook(*observer);
  } catch (...) {
    log_metrics_hook_failure(std::current_exception());
  }
}

}  // namespace credkit::detail
