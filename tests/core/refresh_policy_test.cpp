#include <doctest/doctest.h>

#include <credkit/core/error.hpp>
#include <credkit/core/refresh_policy.hpp>

using namespace credkit;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {
const system_clock::time_point T0 = system_clock::time_point(seconds(1'800'000'000));
using Times = RefreshPolicy::TokenTimes;

// A token received at `received` and expiring at `expires_on` (lifetime: what it had left).
Times token(system_clock::time_point received, system_clock::time_point expires_on) {
  return Times{received, expires_on, std::nullopt, true};
}
}

TEST_CASE("before_expiry: tokens with more than 10 min left refresh 10 min before expiry") {
  RefreshPolicy p;
  CHECK(p.will_expire_point(token(T0, T0 + 60min), system_clock::time_point::min()) == T0 + 50min);
  CHECK(p.will_expire_point(token(T0, T0 + 20min), system_clock::time_point::min()) == T0 + 10min);
  CHECK(p.will_expire_point(token(T0, T0 + 24h), system_clock::time_point::min()) == T0 + 24h - 10min);
}

TEST_CASE("before_expiry: short tokens refresh at half their remaining life, never within 1 s of the last attempt") {
  RefreshPolicy p;
  CHECK(p.will_expire_point(token(T0, T0 + 10min), system_clock::time_point::min()) == T0 + 5min);
  CHECK(p.will_expire_point(token(T0, T0 + 8min), system_clock::time_point::min()) == T0 + 4min);
  // 1 s token: half of what is left (500 ms) would be the moment it stops being fresh; the
  // refresh lead (half its 500 ms fresh period) moves the point to 250 ms.
  CHECK(p.will_expire_point(token(T0, T0 + 1s), system_clock::time_point::min()) == T0 + 250ms);
  CHECK(p.will_expire_point(token(T0, T0 + 1s), T0) == T0 + 1s);  // floor
  CHECK(p.will_expire_point(token(T0, T0 - 5s), T0) == T0 + 1s);  // already expired: floor
}

TEST_CASE("the will-expire point keeps a refresh lead before the token stops being fresh (R6)") {
  RefreshPolicy p;
  // 4 min: fresh until T0 + 2 min; lead min(fetch_timeout 30 s, 1 min) = 30 s.
  CHECK(p.will_expire_point(token(T0, T0 + 4min), system_clock::time_point::min()) == T0 + 90s);
  // 5 min: the ACS point (2.5 min) is already 30 s before fresh_until (3 min).
  CHECK(p.will_expire_point(token(T0, T0 + 5min), system_clock::time_point::min()) == T0 + 150s);
  p.schedule = RefreshSchedule::lifetime_fraction;
  // Agora 80 % of 5 min = 4 min, after fresh_until (3 min): moved to 2.5 min.
  CHECK(p.will_expire_point(token(T0, T0 + 5min), system_clock::time_point::min()) == T0 + 150s);
  p.fetch_timeout = milliseconds::max();  // no limit: the lead is half the fresh period
  CHECK(p.will_expire_point(token(T0, T0 + 5min), system_clock::time_point::min()) == T0 + 90s);
}

TEST_CASE("lifetime: exp - iat when the token says, else what is left; delivered tokens count from arrival (R1)") {
  using P = RefreshPolicy;
  CHECK(P::lifetime(Times{T0, T0 + 119s, std::nullopt, false}) == 119s);
  CHECK(P::lifetime(Times{T0, T0 + 119s, T0 - 24h + 119s, false}) == 24h);  // an initial 24 h token near its end
  CHECK(P::lifetime(Times{T0, T0 + 119s, T0 - 24h + 119s, true}) == 119s);  // delivered: what it had left
  CHECK(P::lifetime(Times{T0, T0 + 60s, T0 + 10s, true}) == 50s);            // issued after receipt (skew)
  CHECK(P::lifetime(Times{T0, T0 + 60s, T0 + 70s, false}) == 60s);           // iat after exp: ignored
  CHECK(P::lifetime(Times{T0, T0 - 5s, std::nullopt, false}) == 0s);         // expired: never negative
  CHECK(P::lifetime(Times{T0, system_clock::time_point::min(), std::nullopt, false}) == 0s);
  CHECK(P::lifetime(Times{system_clock::time_point::min(), system_clock::time_point::max(), std::nullopt, false}) ==
        system_clock::duration::max());
  RefreshPolicy p;
  // The cut-off cases: an initial 24 h token with 121 s left is fresh, with 119 s not.
  CHECK(T0 < p.fresh_until(Times{T0, T0 + 121s, T0 + 121s - 24h, false}));
  CHECK_FALSE(T0 < p.fresh_until(Times{T0, T0 + 119s, T0 + 119s - 24h, false}));
  // Without an issue time the lifetime is what is left, so the cut-off is continuous.
  CHECK(p.fresh_until(Times{T0, T0 + 120s, std::nullopt, false}) == T0 + 60s);
  CHECK(p.fresh_until(Times{T0, T0 + 119s, std::nullopt, false}) == T0 + 59500ms);
}

TEST_CASE("lifetime_fraction: Agora's 80 %") {
  RefreshPolicy p;
  p.schedule = RefreshSchedule::lifetime_fraction;
  CHECK(p.will_expire_point(token(T0, T0 + 100min), system_clock::time_point::min()) == T0 + 80min);
  CHECK(p.will_expire_point(token(T0, T0 + 24h), system_clock::time_point::min()) == T0 + 1152min);
}

TEST_CASE("jitter moves the point earlier by at most the fraction of the window") {
  RefreshPolicy p;
  p.jitter = 0.5;
  CHECK(p.will_expire_point(token(T0, T0 + 60min), system_clock::time_point::min(), 0.0) == T0 + 50min);
  CHECK(p.will_expire_point(token(T0, T0 + 60min), system_clock::time_point::min(), 0.999999) > T0 + 45min - 1ms);
  CHECK(p.will_expire_point(token(T0, T0 + 60min), system_clock::time_point::min(), 0.5) == T0 + 50min - 150s);
}

TEST_CASE("minimum validity: min(2 min, half the lifetime), continuous in the lifetime (R2)") {
  RefreshPolicy p;
  CHECK(p.min_validity_for(60min) == 2min);
  CHECK(p.min_validity_for(4min) == 2min);
  CHECK(p.min_validity_for(4min - 2ns) == 2min - 1ns);
  CHECK(p.min_validity_for(2min) == 1min);
  CHECK(p.min_validity_for(121s) == 60500ms);
  CHECK(p.min_validity_for(119s) == 59500ms);
  CHECK(p.min_validity_for(90s) == 45s);
  CHECK(p.min_validity_for(10s) == 5s);
  CHECK(p.min_validity_for(-5s) == 0s);
}

TEST_CASE("retry delay: full jitter over 1 s doubling to 60 s, never below the 1 s floor") {
  RefreshPolicy p;
  CHECK(p.retry_delay(1, 0.999) <= 1s);
  CHECK(p.retry_delay(1, 0.0) == 1s);
  CHECK(p.retry_delay(3, 0.999) > 3900ms);
  CHECK(p.retry_delay(3, 0.999) <= 4s);
  CHECK(p.retry_delay(3, 0.5) == 2s);
  CHECK(p.retry_delay(10, 0.999) <= 60s);
  CHECK(p.retry_delay(10, 0.999) > 59s);
  CHECK(p.retry_delay(1000, 0.999) <= 60s);  // no overflow
}

TEST_CASE("validate names the offending field") {
  RefreshPolicy p;
  p.validate();
  p.jitter = 2;
  try {
    p.validate();
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == make_error_code(errc::invalid_argument));
    CHECK(std::string(e.what()).find("jitter") != std::string::npos);
  }
}
