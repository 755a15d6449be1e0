// credkit detail — CredentialState's health (states, snapshots, transitions) and its reports
// to a metrics observer: what operators read, kept apart from the refresh mechanics in
// credential_state.cpp (same class, same locking discipline).
#include "core/credential_state.hpp"

#include <credkit/core/log.hpp>

#include "core/metrics_notify.hpp"
#include "core/saturating_time.hpp"

#include <algorithm>

namespace credkit::detail {

using std::chrono::nanoseconds;

// ---------------------------------------------------------------------------------------
// Health

HealthState CredentialState::health_state_locked(time_point now) const noexcept {
  if (machine_.closed()) return HealthState::closed;
  const auto& t = machine_.token();
  if (!t || t->invalidated || now >= t->expires_on()) return HealthState::expired;
  if (now >= t->fresh_until) return HealthState::below_min_validity;
  if (machine_.failures() > 0) return HealthState::retrying;
  if (machine_.refreshing()) return HealthState::refreshing;
  return HealthState::fresh;
}

CredentialHealth CredentialState::health_locked(time_point now) const {
  CredentialHealth h;
  h.state = health_state_locked(now);
  h.clock_offset = clock_offset();
  h.consecutive_failures = machine_.failures();
  if (h.consecutive_failures > 0 && last_error_) {
    h.last_error_code = error_code_of(last_error_);
    h.last_error = message_of(last_error_);  // an Error's message, scrubbed when it was made
  }
  if (attachments_) h.last_fetch_latency = attachments_->last_fetch_latency;
  if (const auto& t = machine_.token()) {
    h.expires_on = t->expires_on();
    h.time_left = std::max(sub_sat(t->expires_on(), now), nanoseconds::zero());
  }
  if (machine_.config().mode == RefreshMode::proactive && !machine_.closed()) {
    const auto& state = machine_.fetch_state();
    if (const auto* idle = std::get_if<RefreshMachine::Idle>(&state)) {
      if (idle->retry_at) {
        h.next_refresh = to_local(*idle->retry_at);
        h.next_is_retry = true;
      } else if (const auto& t = machine_.token(); t && !t->will_expire_fired && !t->invalidated) {
        h.next_refresh = to_local(t->will_expire_at);
      }
    } else if (const auto* deferred = std::get_if<RefreshMachine::Deferred>(&state)) {
      h.next_refresh = to_local(deferred->until);
      h.next_is_retry = deferred->retry_at.has_value();
    }
  }
  return h;
}

CredentialHealth CredentialState::health() const {
  std::lock_guard lock(mutex_);
  return health_locked(service_now());
}

std::optional<CredentialState::time_point> CredentialState::health_deadline_locked(time_point now) const noexcept {
  const auto& t = machine_.token();
  if (!t || t->invalidated) return std::nullopt;
  if (now < t->fresh_until) return t->fresh_until;
  if (now < t->expires_on()) return t->expires_on();
  return std::nullopt;
}

void CredentialState::note_health_locked(Effects& fx) {
  const time_point now = service_now();  // one reading: the state and its snapshot agree
  const HealthState now_state = health_state_locked(now);
  if (now_state == health_state_) return;
  health_state_ = now_state;
  if (!attachments_ || attachments_->health_listeners.empty()) return;
  PendingHealth pending;
  pending.event = health_locked(now);
  pending.listeners = attachments_->health_listeners;
  fx.health = std::move(pending);  // the latest transition of this step wins
}

Subscription CredentialState::subscribe_health(HealthHandler handler) {
  if (!handler) throw Error(errc::invalid_argument, "on_health_changed: the handler is empty");
  auto listener = std::make_shared<HealthListener>();
  listener->handler = std::move(handler);
  Effects fx;
  {
    std::lock_guard lock(mutex_);
    if (machine_.closed()) return Subscription{};
    attachments_locked().health_listeners.push_back(listener);
    // Re-arm so that transitions time alone causes are noticed from now on.
    timer_armed_ = false;
    RefreshMachine::Actions rearm;
    rearm.next_deadline = machine_.next_deadline();
    apply_locked(rearm, fx);
  }
  run_effects(fx);
  return Subscription([w = weak_from_this(), listener] {
    listener->active.store(false, std::memory_order_release);
    if (auto s = w.lock()) {
      std::lock_guard lock(s->mutex_);
      if (s->attachments_) std::erase(s->attachments_->health_listeners, listener);
    }
  });
}

// ---------------------------------------------------------------------------------------
// Metrics

void CredentialState::report_metrics(const MetricsNotes& notes) const noexcept {
  const std::string& name = metrics_->name;
  if (notes.fetch_finished) {
    notify_metrics(metrics_->observer, [&](MetricsObserver& o) {
      o.fetch_finished(name, notes.fetch_reason, notes.fetch_result, notes.fetch_latency);
    });
  }
  if (notes.refresh_failed) {
    notify_metrics(metrics_->observer, [&](MetricsObserver& o) { o.refresh_failed(name, notes.refresh_failed_code); });
  }
  if (notes.invalidated) notify_metrics(metrics_->observer, [&](MetricsObserver& o) { o.invalidated(name); });
}

void CredentialState::report_wait(nanoseconds since, const std::exception_ptr& error) const noexcept {
  const nanoseconds waited = std::max(sub_sat(clock_->elapsed(), since), nanoseconds::zero());
  const std::error_code result = error_code_of(error);
  notify_metrics(metrics_->observer,
                 [&](MetricsObserver& o) { o.caller_waited(metrics_->name, waited, result); });
}

}  // namespace credkit::detail
