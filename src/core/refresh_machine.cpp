#include "core/refresh_machine.hpp"

#include <algorithm>

namespace credkit::detail {

namespace {
using ms = std::chrono::milliseconds;

void earliest(std::optional<RefreshMachine::time_point>& into, RefreshMachine::time_point t) {
  if (!into || t < *into) into = t;
}
}  // namespace

RefreshMachine::RefreshMachine(Config config) : config_(config), rng_(config.seed ? config.seed : 0x9E3779B97F4A7C15ull) {}

double RefreshMachine::next_random() noexcept {
  // splitmix64: tiny, seedable, good enough to spread timers.
  std::uint64_t z = (rng_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

RefreshMachine::time_point RefreshMachine::fresh_until() const noexcept {
  if (closed_ || !token_ || token_->invalidated) return time_point::min();
  if (!can_refresh()) return time_point::max();  // static: handed out as is, even expired
  const auto lifetime = token_->expires_on - token_->received;
  return token_->expires_on - config_.policy.min_validity_for(lifetime);
}

std::optional<RefreshMachine::time_point> RefreshMachine::next_deadline() const noexcept {
  std::optional<time_point> d;
  if (closed_) return d;
  if (refreshing()) earliest(d, refresh_started_ + config_.policy.fetch_timeout);
  if (config_.mode == RefreshMode::proactive) {
    if (token_) {
      if (!token_->will_expire_fired) earliest(d, token_->will_expire_at);
      if (!token_->expired_fired) earliest(d, token_->expires_on);
    }
    if (retry_at_ && !refreshing()) earliest(d, *retry_at_);
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
  if (now >= token_->expires_on) return FetchReason::expired;
  return config_.mode == RefreshMode::proactive ? FetchReason::proactive : FetchReason::on_demand;
}

bool RefreshMachine::begin_refresh(time_point now, FetchReason reason, Actions& a) {
  if (!can_refresh() || refreshing() || closed_) return false;
  last_attempt_ = now;
  refresh_started_ = now;
  reason_ = reason;
  retry_at_.reset();
  a.reason = reason;
  a.attempt = failures_ + 1;
  if (config_.has_fetcher) {
    in_flight_ = true;
    a.start_fetch = true;
  } else {
    // No fetcher: the will-expire listeners are the fetcher; they answer with update_token.
    awaiting_update_ = true;
    a.fire_will_expire = true;
  }
  return true;
}

void RefreshMachine::install(time_point now, time_point expires_on, Actions& a) {
  Token t;
  t.generation = next_generation_++;
  t.received = now;
  t.expires_on = expires_on;
  t.will_expire_at = config_.policy.will_expire_point(now, expires_on, last_attempt_, next_random());
  token_ = t;
  awaiting_update_ = false;
  failures_ = 0;
  last_failed_ = false;
  retry_at_.reset();
  a.publish = true;
  a.fire_refreshed = true;
  a.complete = Completion::success;
}

void RefreshMachine::fail(time_point now, bool retryable, std::optional<ms> retry_after, Actions& a) {
  in_flight_ = false;
  awaiting_update_ = false;
  ++failures_;
  last_failed_ = true;
  const auto floor = std::max(config_.policy.min_refresh_interval, retry_after.value_or(ms::zero()));
  not_before_ = now + floor;
  if (config_.mode == RefreshMode::proactive && retryable) {
    retry_at_ = now + std::max(config_.policy.retry_delay(failures_, next_random()), floor);
  } else {
    retry_at_.reset();
  }
  a.complete = Completion::failure;
  a.fire_refresh_failed = true;
  a.reason = reason_;
  a.attempt = failures_;
  a.next_retry = retry_at_;
}

RefreshMachine::Actions RefreshMachine::start(time_point now, std::optional<time_point> initial_expiry) {
  Actions a;
  if (initial_expiry) {
    Token t;
    t.generation = next_generation_++;
    t.received = now;
    t.expires_on = *initial_expiry;
    t.will_expire_at = config_.policy.will_expire_point(now, *initial_expiry, last_attempt_, next_random());
    token_ = t;
    a.publish = true;
  }
  if (config_.mode == RefreshMode::proactive) {
    if (token_ && now >= token_->expires_on) {
      token_->expired_fired = true;
      token_->will_expire_fired = true;
      a.fire_expired = true;
      begin_refresh(now, FetchReason::expired, a);
    } else if (!token_) {
      begin_refresh(now, FetchReason::initial, a);
    }
  }
  return finish(a);
}

RefreshMachine::Demand RefreshMachine::on_demand(time_point now, Actions& a) {
  a = Actions{};
  Demand d = Demand::wait;
  if (closed_) {
    d = Demand::fail_closed;
  } else if (token_ && now < fresh_until()) {
    d = Demand::use_cached;
  } else if (!can_refresh()) {
    d = token_ ? Demand::use_cached : Demand::fail_no_token;
  } else {
    if (token_ && !token_->expired_fired && now >= token_->expires_on) {
      token_->expired_fired = true;
      a.fire_expired = true;
    }
    if (!refreshing()) {
      // While a retry is scheduled, callers get the last error instead of a new fetch: the
      // next_retry announced in refresh_failed stays true, and a failing service is not hammered.
      if (last_failed_ && (now < not_before_ || (retry_at_ && now < *retry_at_))) {
        d = Demand::fail_last_error;
      } else {
        begin_refresh(now, reason_for(now), a);
      }
    }
  }
  a = finish(a);
  return d;
}

RefreshMachine::Actions RefreshMachine::on_timer(time_point now) {
  Actions a;
  if (closed_) return a;
  if (refreshing() && now >= refresh_started_ + config_.policy.fetch_timeout) {
    a.cancel_fetch = in_flight_;
    a.fetch_timed_out = true;
    fail(now, /*retryable=*/true, std::nullopt, a);
  }
  if (token_) {
    if (!token_->expired_fired && now >= token_->expires_on) {
      token_->expired_fired = true;
      a.fire_expired = true;
    }
    if (config_.mode == RefreshMode::proactive && !token_->will_expire_fired && now >= token_->will_expire_at) {
      token_->will_expire_fired = true;
      a.fire_will_expire = true;
      begin_refresh(now, reason_for(now), a);
    }
  }
  if (config_.mode == RefreshMode::proactive && retry_at_ && now >= *retry_at_ && !refreshing()) {
    begin_refresh(now, reason_for(now), a);
  }
  return finish(a);
}

RefreshMachine::Actions RefreshMachine::on_fetch_succeeded(time_point now, time_point expires_on) {
  Actions a;
  if (closed_ || !in_flight_) return finish(a);
  if (expires_on <= now) {
    fail(now, /*retryable=*/true, std::nullopt, a);
    return finish(a);
  }
  in_flight_ = false;
  a.reason = reason_;
  install(now, expires_on, a);
  return finish(a);
}

RefreshMachine::Actions RefreshMachine::on_fetch_failed(time_point now, bool retryable, std::optional<ms> retry_after) {
  Actions a;
  if (closed_ || !in_flight_) return finish(a);
  fail(now, retryable, retry_after, a);
  return finish(a);
}

RefreshMachine::Actions RefreshMachine::on_update(time_point now, time_point expires_on) {
  Actions a;
  if (closed_ || expires_on <= now) return finish(a);
  a.reason = awaiting_update_ ? reason_ : reason_for(now);
  install(now, expires_on, a);  // a fetch still in flight carries on; its result replaces this one
  return finish(a);
}

RefreshMachine::Actions RefreshMachine::on_invalidate(time_point now, std::uint64_t generation) {
  Actions a;
  if (closed_ || !token_ || token_->generation != generation || token_->invalidated) return finish(a);
  token_->invalidated = true;
  a.accepted = true;
  a.publish = true;
  if (!(last_failed_ && now < not_before_)) begin_refresh(now, FetchReason::invalidated, a);
  return finish(a);
}

RefreshMachine::Actions RefreshMachine::on_listeners_changed(time_point now, bool has_will_expire_listener) {
  Actions a;
  if (closed_ || has_will_listener_ == has_will_expire_listener) return finish(a);
  has_will_listener_ = has_will_expire_listener;
  a.publish = true;
  if (config_.mode == RefreshMode::proactive && !token_ && !config_.has_fetcher) {
    begin_refresh(now, FetchReason::initial, a);
  }
  return finish(a);
}

RefreshMachine::Actions RefreshMachine::on_close() {
  Actions a;
  if (closed_) return a;
  closed_ = true;
  a.cancel_fetch = in_flight_;
  in_flight_ = false;
  awaiting_update_ = false;
  retry_at_.reset();
  a.complete = Completion::closed;
  a.publish = true;
  return a;
}

}  // namespace credkit::detail
