#include "core/refresh_machine.hpp"

#include "core/saturating_time.hpp"

#include <algorithm>
#include <mutex>

namespace credkit::detail {

namespace {
using ms = std::chrono::milliseconds;

void earliest(std::optional<RefreshMachine::time_point>& into, RefreshMachine::time_point t) {
  // time_point::max() is "never" (a saturated `duration::max()` timeout): no timer for it.
  if (t == RefreshMachine::time_point::max()) return;
  if (!into || t < *into) into = t;
}
}  // namespace

RefreshMachine::RefreshMachine(Config config) : RefreshMachine(std::make_shared<const Config>(config), config.seed) {}

RefreshMachine::RefreshMachine(std::shared_ptr<const Config> config, std::uint64_t seed)
    : config_(std::move(config)), rng_(seed ? seed : 0x9E3779B97F4A7C15ull) {}

double RefreshMachine::next_random() noexcept {
  // splitmix64: tiny, seedable, good enough to spread timers.
  std::uint64_t z = (rng_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

RefreshMachine::time_point RefreshMachine::fresh_until() const noexcept {
  if (closed() || !token_ || token_->invalidated) return time_point::min();
  if (!can_refresh()) return time_point::max();  // static: handed out as is, even expired
  return token_->fresh_until;
}

RefreshMachine::RefreshState RefreshMachine::refresh_state() const noexcept {
  if (std::holds_alternative<Deferred>(state_)) return RefreshState::deferred;
  if (std::holds_alternative<Fetching>(state_)) return RefreshState::fetching;
  if (std::holds_alternative<AwaitingUpdate>(state_)) return RefreshState::awaiting_update;
  return RefreshState::idle;  // Idle, Closed
}

const RefreshMachine::InFlight* RefreshMachine::in_flight() const noexcept {
  if (const auto* f = std::get_if<Fetching>(&state_)) return f;
  if (const auto* u = std::get_if<AwaitingUpdate>(&state_)) return u;
  return nullptr;
}

std::optional<RefreshMachine::time_point> RefreshMachine::scheduled_retry() const noexcept {
  if (const auto* i = std::get_if<Idle>(&state_)) return i->retry_at;
  if (const auto* d = std::get_if<Deferred>(&state_)) return d->retry_at;
  return std::nullopt;
}

std::optional<RefreshMachine::time_point> RefreshMachine::next_deadline() const noexcept {
  std::optional<time_point> d;
  if (closed()) return d;
  if (const auto* deferred = std::get_if<Deferred>(&state_)) earliest(d, deferred->until);
  if (const InFlight* f = in_flight()) earliest(d, add_sat(f->started, config_->policy.fetch_timeout));
  if (config_->mode == RefreshMode::proactive) {
    if (token_) {
      if (!token_->will_expire_fired) earliest(d, token_->will_expire_at);
      if (!token_->expired_fired) earliest(d, token_->expires_on());
    }
    if (const auto* idle = std::get_if<Idle>(&state_); idle && idle->retry_at) earliest(d, *idle->retry_at);
  }
  return d;
}

RefreshMachine::Actions RefreshMachine::finish(Actions a) const {
  a.next_deadline = next_deadline();
  return a;
}

FetchReason RefreshMachine::reason_for(time_point now) const noexcept {
  if (!token_) return FetchReason::initial;
  if (token_->invalidated) return FetchReason::invalidated;
  if (now >= token_->expires_on()) return FetchReason::expired;
  return config_->mode == RefreshMode::proactive ? FetchReason::proactive : FetchReason::on_demand;
}

bool RefreshMachine::in_failure_window(time_point now) const noexcept {
  if (!failures_) return false;
  const auto retry_at = scheduled_retry();
  return now < failures_->not_before || (retry_at && now < *retry_at);
}

void RefreshMachine::begin_refresh(time_point now, Actions& a) {
  const auto* idle = std::get_if<Idle>(&state_);
  if (!can_refresh() || !idle) return;  // refreshing or closed
  // R7: whoever asks (timer, caller, invalidate, retry), starts are min_refresh_interval apart.
  if (last_start_) {
    const time_point allowed = add_sat(*last_start_, config_->policy.min_refresh_interval);
    if (now < allowed) {
      state_ = Deferred{allowed, idle->retry_at};
      return;
    }
  }
  launch(now, a);
}

void RefreshMachine::launch(time_point now, Actions& a) {
  last_start_ = now;
  const FetchReason reason = reason_for(now);
  a.reason = reason;
  a.attempt = failures() + 1;
  if (config_->has_fetcher) {
    state_ = Fetching{{now, reason}};
    a.start_fetch = true;
  } else {
    // No fetcher: the will-expire listeners are the fetcher; they answer with update_token.
    state_ = AwaitingUpdate{{now, reason}};
    a.fire_will_expire = true;
  }
}

void RefreshMachine::install(RefreshPolicy::TokenTimes times, Actions& a) {
  Token t;
  t.generation = next_generation_++;
  t.times = times;
  t.fresh_until = config_->policy.fresh_until(times);
  t.will_expire_at = config_->policy.will_expire_point(times, last_start_.value_or(time_point::min()), next_random());
  token_ = t;
  // A fetch still in flight carries on (its result replaces this one); a deferred or
  // listener-driven refresh is answered by this token, and a scheduled retry is dropped.
  if (!std::holds_alternative<Fetching>(state_)) state_ = Idle{};
  failures_.reset();
  a.publish = true;
  a.fire_refreshed = true;
  a.complete = Completion::success;
}

void RefreshMachine::fail(time_point now, FetchReason reason, bool retryable, std::optional<ms> retry_after,
                          Actions& a) {
  const int count = failures() + 1;
  const auto floor = std::max(config_->policy.min_refresh_interval, retry_after.value_or(ms::zero()));
  failures_ = FailureStreak{count, add_sat(now, floor)};
  std::optional<time_point> retry_at;
  if (config_->mode == RefreshMode::proactive && retryable) {
    retry_at = add_sat(now, std::max(config_->policy.retry_delay(count, next_random()), floor));
  }
  state_ = Idle{retry_at};
  a.complete = Completion::failure;
  a.fire_refresh_failed = true;
  a.reason = reason;
  a.attempt = count;
  a.next_retry = retry_at;
}

RefreshMachine::Actions RefreshMachine::start(time_point now, std::optional<time_point> initial_expiry,
                                              std::optional<time_point> issued_at) {
  Actions a;
  observe(now);
  if (initial_expiry) {
    Token t;
    t.generation = next_generation_++;
    t.times = RefreshPolicy::TokenTimes{now, *initial_expiry, issued_at, /*delivered=*/false};
    t.fresh_until = config_->policy.fresh_until(t.times);
    t.will_expire_at = config_->policy.will_expire_point(t.times, time_point::min(), next_random());
    token_ = t;
    a.publish = true;
  }
  if (config_->mode == RefreshMode::proactive) {
    if (token_ && now >= token_->expires_on()) {
      token_->expired_fired = true;
      token_->will_expire_fired = true;
      a.fire_expired = true;
      begin_refresh(now, a);
    } else if (!token_) {
      begin_refresh(now, a);
    }
  }
  return finish(a);
}

RefreshMachine::DemandResult RefreshMachine::on_demand(time_point now) {
  Actions a;
  observe(now);
  Demand d = Demand::wait;
  if (closed()) {
    d = Demand::fail_closed;
  } else if (token_ && now < fresh_until()) {
    d = Demand::use_cached;
  } else if (!can_refresh()) {
    d = token_ ? Demand::use_cached : Demand::fail_no_token;
  } else {
    if (token_ && !token_->expired_fired && now >= token_->expires_on()) {
      token_->expired_fired = true;
      a.fire_expired = true;
    }
    if (!refreshing()) {
      // While a retry is scheduled, callers get the last error instead of a new fetch: the
      // next_retry announced in refresh_failed stays true, and a failing service is not hammered.
      if (in_failure_window(now)) {
        d = Demand::fail_last_error;
      } else {
        begin_refresh(now, a);
      }
    }
  }
  return {d, finish(a)};
}

RefreshMachine::Actions RefreshMachine::on_timer(time_point now) {
  Actions a;
  if (closed()) return a;
  observe(now);
  if (const InFlight* f = in_flight(); f && now >= add_sat(f->started, config_->policy.fetch_timeout)) {
    a.cancel_fetch = std::holds_alternative<Fetching>(state_);
    a.fetch_timed_out = true;
    fail(now, f->reason, /*retryable=*/true, std::nullopt, a);
  }
  if (const auto* deferred = std::get_if<Deferred>(&state_); deferred && now >= deferred->until) {
    if (can_refresh()) {
      launch(now, a);
    } else {
      state_ = Idle{deferred->retry_at};  // the last will_expire listener left meanwhile
    }
  }
  if (token_) {
    if (!token_->expired_fired && now >= token_->expires_on()) {
      token_->expired_fired = true;
      a.fire_expired = true;
    }
    if (config_->mode == RefreshMode::proactive && !token_->will_expire_fired && now >= token_->will_expire_at) {
      token_->will_expire_fired = true;
      a.fire_will_expire = true;
      begin_refresh(now, a);
    }
  }
  if (const auto* idle = std::get_if<Idle>(&state_);
      config_->mode == RefreshMode::proactive && idle && idle->retry_at && now >= *idle->retry_at) {
    begin_refresh(now, a);
  }
  return finish(a);
}

RefreshMachine::Actions RefreshMachine::on_fetch_succeeded(time_point now, time_point expires_on,
                                                           std::optional<time_point> issued_at) {
  Actions a;
  observe(now);
  const auto* fetching = std::get_if<Fetching>(&state_);
  if (!fetching) return finish(a);  // closed, or a fetch the machine no longer waits for
  const FetchReason reason = fetching->reason;
  if (expired_on_arrival(now, expires_on)) {
    a.expired_on_arrival = true;
    fail(now, reason, /*retryable=*/true, std::nullopt, a);
    return finish(a);
  }
  state_ = Idle{};
  a.reason = reason;
  install(RefreshPolicy::TokenTimes{now, expires_on, issued_at, /*delivered=*/true}, a);
  return finish(a);
}

RefreshMachine::Actions RefreshMachine::on_fetch_failed(time_point now, bool retryable, std::optional<ms> retry_after) {
  Actions a;
  observe(now);
  const auto* fetching = std::get_if<Fetching>(&state_);
  if (!fetching) return finish(a);
  fail(now, fetching->reason, retryable, retry_after, a);
  return finish(a);
}

RefreshMachine::Actions RefreshMachine::on_update(time_point now, time_point expires_on,
                                                  std::optional<time_point> issued_at) {
  Actions a;
  if (expired_on_arrival(now, expires_on)) {
    a.expired_on_arrival = true;  // refused before it is seen: not even its time is observed
    return finish(a);
  }
  observe(now);
  if (closed()) return finish(a);
  const auto* awaited = std::get_if<AwaitingUpdate>(&state_);
  a.reason = awaited ? awaited->reason : reason_for(now);
  install(RefreshPolicy::TokenTimes{now, expires_on, issued_at, /*delivered=*/true}, a);
  return finish(a);
}

RefreshMachine::Actions RefreshMachine::on_invalidate(time_point now, std::uint64_t generation) {
  Actions a;
  observe(now);
  if (closed() || !token_ || token_->generation != generation || token_->invalidated) return finish(a);
  token_->invalidated = true;
  a.accepted = true;
  a.publish = true;
  if (!in_failure_window(now)) begin_refresh(now, a);
  return finish(a);
}

RefreshMachine::Actions RefreshMachine::on_listeners_changed(time_point now, bool has_will_expire_listener) {
  Actions a;
  observe(now);
  if (closed() || has_will_listener_ == has_will_expire_listener) return finish(a);
  has_will_listener_ = has_will_expire_listener;
  a.publish = true;
  if (config_->mode == RefreshMode::proactive && !token_ && !config_->has_fetcher) begin_refresh(now, a);
  return finish(a);
}

void RefreshMachine::observe(time_point now) noexcept {
  // A wall clock stepped backwards would otherwise stretch every wait measured from an earlier
  // "now" (spacing, failure window, retry) by the size of the step: hours or days.
  if (latest_now_ && now < *latest_now_) on_clock_shift(sub_sat(now, *latest_now_));
  latest_now_ = now;
}

void RefreshMachine::on_clock_shift(std::chrono::nanoseconds delta) noexcept {
  auto shift = [delta](time_point& t) {
    if (t != time_point::min() && t != time_point::max()) t = add_sat(t, delta);
  };
  auto shift_optional = [&shift](std::optional<time_point>& t) {
    if (t) shift(*t);
  };
  shift_optional(latest_now_);
  shift_optional(last_start_);
  if (failures_) shift(failures_->not_before);
  if (auto* idle = std::get_if<Idle>(&state_)) {
    shift_optional(idle->retry_at);
  } else if (auto* deferred = std::get_if<Deferred>(&state_)) {
    shift(deferred->until);
    shift_optional(deferred->retry_at);
  } else if (auto* fetching = std::get_if<Fetching>(&state_)) {
    shift(fetching->started);
  } else if (auto* awaiting = std::get_if<AwaitingUpdate>(&state_)) {
    shift(awaiting->started);
  }
  if (token_) {
    // The token's receipt moves with the frame; what derives from it follows (its expiry and
    // issue time are the service's own and stay).
    shift(token_->times.received);
    token_->fresh_until = config_->policy.fresh_until(token_->times);
    if (!token_->will_expire_fired) {
      token_->will_expire_at =
          config_->policy.will_expire_point(token_->times, last_start_.value_or(time_point::min()), next_random());
    }
  }
}

RefreshMachine::Actions RefreshMachine::on_close() {
  Actions a;
  if (closed()) return a;
  a.cancel_fetch = std::holds_alternative<Fetching>(state_);
  state_ = Closed{};
  a.complete = Completion::closed;
  a.publish = true;
  return a;
}

namespace {

bool same_policy(const RefreshPolicy& a, const RefreshPolicy& b) noexcept {
  static_assert(sizeof(RefreshPolicy) == 96, "a RefreshPolicy field was added or removed: compare it below");
  return a.schedule == b.schedule && a.refresh_before_expiry == b.refresh_before_expiry &&
         a.lifetime_fraction == b.lifetime_fraction && a.min_refresh_interval == b.min_refresh_interval &&
         a.jitter == b.jitter && a.min_validity == b.min_validity && a.retry_initial == b.retry_initial &&
         a.retry_max == b.retry_max && a.wake_check_interval == b.wake_check_interval &&
         a.fetch_timeout == b.fetch_timeout && a.clock_skew_tolerance == b.clock_skew_tolerance &&
         a.max_clock_skew == b.max_clock_skew;
}

}  // namespace

std::shared_ptr<const RefreshMachine::Config> shared_refresh_config(const RefreshMachine::Config& config) {
  static std::mutex mutex;
  // Held weakly (gone with its last credential); leaked, so credentials may still be made
  // during static destruction.
  static auto* last = new std::weak_ptr<const RefreshMachine::Config>;
  std::lock_guard lock(mutex);
  if (auto shared = last->lock()) {
    if (shared->mode == config.mode && shared->has_fetcher == config.has_fetcher &&
        same_policy(shared->policy, config.policy)) {
      return shared;
    }
  }
  auto made = std::make_shared<const RefreshMachine::Config>(config);
  *last = made;
  return made;
}

}  // namespace credkit::detail
