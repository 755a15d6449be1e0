#include <doctest/doctest.h>

#include <credkit/core/error.hpp>
#include <credkit/core/refresh_policy.hpp>

using namespace credkit;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {
const system_clock::time_point T0 = system_clock::time_point(seconds(1'800'000'000));
}

TEST_CASE("before_expiry: tokens with more than 10 min left refresh 10 min before expiry") {
  RefreshPolicy p;
  CHECK(p.will_expire_point(T0, T0 + 60min, {}) == T0 + 50min);
  CHECK(p.will_expire_point(T0, T0 + 20min, {}) == T0 + 10min);
  CHECK(p.will_expire_point(T0, T0 + 24h, {}) == T0 + 24h - 10min);
}

TEST_CASE("before_expiry: short tokens refresh at half their remaining life, never within 1 s of the last attempt") {
  RefreshPolicy p;
  CHECK(p.will_expire_point(T0, T0 + 10min, {}) == T0 + 5min);
  CHECK(p.will_expire_point(T0, T0 + 8min, {}) == T0 + 4min);
  CHECK(p.will_expire_point(T0, T0 + 1s, {}) == T0 + 500ms);
  CHECK(p.will_expire_point(T0, T0 + 1s, T0) == T0 + 1s);  // floor
  CHECK(p.will_expire_point(T0, T0 - 5s, T0) == T0 + 1s);  // already expired: floor
}

TEST_CASE("lifetime_fraction: Agora's 80 %") {
  RefreshPolicy p;
  p.schedule = RefreshSchedule::lifetime_fraction;
  CHECK(p.will_expire_point(T0, T0 + 100min, {}) == T0 + 80min);
  CHECK(p.will_expire_point(T0, T0 + 24h, {}) == T0 + 1152min);
}

TEST_CASE("jitter moves the point earlier by at most the fraction of the window") {
  RefreshPolicy p;
  p.jitter = 0.5;
  CHECK(p.will_expire_point(T0, T0 + 60min, {}, 0.0) == T0 + 50min);
  CHECK(p.will_expire_point(T0, T0 + 60min, {}, 0.999999) > T0 + 45min - 1ms);
  CHECK(p.will_expire_point(T0, T0 + 60min, {}, 0.5) == T0 + 50min - 150s);
}

TEST_CASE("minimum validity: 2 min, or half the lifetime of shorter-lived tokens") {
  RefreshPolicy p;
  CHECK(p.min_validity_for(60min) == 2min);
  CHECK(p.min_validity_for(2min) == 2min);
  CHECK(p.min_validity_for(90s) == 45s);
  CHECK(p.min_validity_for(10s) == 5s);
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
