#include "caches/redis_flight.hpp"

#include "caches/cache_time.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace credkit::detail {

using Kind = RedisFlight::Action::Kind;

RedisFlight::RedisFlight(Config config) : config_(config), rng_(config.seed ? config.seed : 0x9E3779B97F4A7C15ull) {}

void RedisFlight::expect(State s) const {
  // The driver answers each action once, with its own kind of event; anything else is a bug.
  if (state_ != s)
    throw std::logic_error("RedisFlight: event in state " + std::to_string(static_cast<int>(state_)) +
                           ", expected " + std::to_string(static_cast<int>(s)));
}

bool RedisFlight::fresh(time_point now, std::optional<time_point> expires_on) const noexcept {
  return expires_on && has_validity_left(*expires_on, now, config_.min_validity);
}

std::chrono::milliseconds RedisFlight::jittered_interval() noexcept {
  // ±25 %, clamped (scale_sat); splitmix64 keeps the machine seedable for tests.
  std::uint64_t z = (rng_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const auto low = scale_sat(config_.poll_interval, 0.75).count();
  const auto high = scale_sat(config_.poll_interval, 1.25).count();
  const auto span = static_cast<std::uint64_t>(high - low) + 1;  // high - low <= max: no overflow
  return std::chrono::milliseconds(low + static_cast<long long>(z % span));
}

RedisFlight::Action RedisFlight::start(Now now) {
  expect(State::idle);
  give_up_ = add_sat(now.steady, config_.wait_timeout);  // milliseconds::max(): never
  state_ = State::reading;
  return {Kind::read_token};
}

RedisFlight::Action RedisFlight::on_read(Now now, std::optional<time_point> expires_on) {
  if (state_ == State::confirming) {
    if (fresh(now.wall, expires_on)) {
      leader_ = false;
      state_ = State::done;
      return {Kind::release_then_complete_read};
    }
    return fetch_under_lock();
  }
  expect(State::reading);
  if (fresh(now.wall, expires_on)) {
    state_ = State::done;
    return {Kind::complete_read};
  }
  // Missing or stale: whoever wins the lock fetches. After a poll, this also takes over from a
  // holder that released (failed fetch) or died (its lock expired after lock_ttl).
  state_ = State::locking;
  return {Kind::try_lock};
}

RedisFlight::Action RedisFlight::on_lock(Now now, bool acquired) {
  expect(State::locking);
  if (!acquired) return follow(now);
  leader_ = true;
  state_ = State::confirming;  // the token may have landed between our GET and the lock
  return {Kind::read_token};
}

RedisFlight::Action RedisFlight::on_failed(Now) {
  if (state_ == State::confirming) {
    leader_ = false;
    state_ = State::direct;
    ++fetches_;
    return {Kind::release_then_fetch_direct, {}, DirectReason::redis_failed};
  }
  if (state_ != State::reading && state_ != State::locking) expect(State::reading);
  return go_direct(DirectReason::redis_failed);
}

RedisFlight::Action RedisFlight::on_fetched(Now, bool succeeded) {
  if (state_ == State::fetching) {
    // A failed fetch stores nothing; it releases the lock and fails this caller only.
    state_ = State::storing;
    return {succeeded ? Kind::store_and_release : Kind::release_lock};
  }
  expect(State::direct);
  state_ = State::done;
  return {Kind::complete_fetched};
}

RedisFlight::Action RedisFlight::on_stored(Now) {
  expect(State::storing);
  leader_ = false;
  state_ = State::done;
  return {Kind::complete_fetched};
}

RedisFlight::Action RedisFlight::on_timer(Now) {
  expect(State::waiting);
  state_ = State::reading;
  return {Kind::read_token};
}

RedisFlight::Action RedisFlight::follow(Now now) {
  if (now.steady >= give_up_) return go_direct(DirectReason::wait_timeout);
  // Never past give_up, so a huge poll_interval is one wait until wait_timeout.
  state_ = State::waiting;
  return {Kind::wait, std::min(add_sat(now.steady, jittered_interval()), give_up_)};
}

RedisFlight::Action RedisFlight::go_direct(DirectReason why) {
  state_ = State::direct;
  ++fetches_;
  return {Kind::fetch_direct, {}, why};
}

RedisFlight::Action RedisFlight::fetch_under_lock() {
  state_ = State::fetching;
  ++fetches_;
  return {Kind::fetch_upstream};
}

}  // namespace credkit::detail
