// Test helpers: JWT-shaped tokens with a chosen expiry, and a scripted fetcher that records calls.
#pragma once

#include <credkit/credkit.hpp>
#include <doctest/doctest.h>
#include <credkit/testing/manual_clock.hpp>

#include "core/base64.hpp"
#include "support/log_capture.hpp"

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace credkit::test {

using namespace std::chrono_literals;
using time_point = std::chrono::system_clock::time_point;

/// A JWS with the given `exp` (seconds, may be fractional) and a fake signature.
inline std::string make_jwt_exp(const std::string& exp_json, const std::string& sub = "user-1", bool pad = false) {
  auto seg = [pad](const std::string& s) {
    auto out = detail::base64url_encode(s);
    if (pad) {
      while (out.size() % 4) out += '=';
    }
    return out;
  };
  return seg(R"({"alg":"HS256","typ":"JWT"})") + "." + seg(R"({"sub":")" + sub + R"(","exp":)" + exp_json + "}") +
         "." + seg("signature-bytes-" + sub);
}

inline std::string make_jwt(time_point exp, const std::string& sub = "user-1") {
  return make_jwt_exp(std::to_string(std::chrono::duration_cast<std::chrono::seconds>(exp.time_since_epoch()).count()),
                      sub);
}

/// Virtual time plus the io_context the credential runs on.
struct VirtualEnv {
  std::shared_ptr<testing::ManualClock> clock = std::make_shared<testing::ManualClock>();
  boost::asio::io_context io;

  void run_for(std::chrono::nanoseconds d) { clock->run_for(io, d); }
  void drain() { testing::ManualClock::drain(io); }
  time_point now() const { return clock->now(); }
  std::chrono::nanoseconds elapsed() const { return clock->elapsed(); }
};

/// Calls `cred.async_get_token` and runs `env` until it completes, which it must: without
/// moving time, or, given a `step`, moving virtual time by `step` at most `max_steps` times.
/// Returns the error (null on success).
inline std::exception_ptr get_error_now(TokenCredential& cred, VirtualEnv& env, TokenHandle* token = nullptr,
                                        std::chrono::nanoseconds step = {}, int max_steps = 0) {
  std::exception_ptr error;
  bool done = false;
  cred.async_get_token([&](std::exception_ptr e, TokenHandle t) {
    error = e;
    if (token) *token = std::move(t);
    done = true;
  });
  env.drain();
  for (int i = 0; i < max_steps && !done; ++i) env.run_for(step);
  REQUIRE(done);
  return error;
}

/// As `get_error_now`, returning the token or rethrowing the error.
inline TokenHandle get_now(TokenCredential& cred, VirtualEnv& env) {
  TokenHandle token;
  if (auto e = get_error_now(cred, env, &token)) std::rethrow_exception(e);
  return token;
}

/// A fetcher whose behaviour a test scripts: each call either mints a token valid for
/// `lifetime` (relative to the clock), fails, or is held until the test releases it.
class ScriptedFetcher {
 public:
  enum class Step { succeed, fail, hold };

  struct Call {
    std::chrono::nanoseconds elapsed;
    FetchReason reason;
    int attempt;
  };

  explicit ScriptedFetcher(std::shared_ptr<testing::ManualClock> clock, std::chrono::seconds lifetime = 60min)
      : s_(std::make_shared<Shared>()) {
    s_->clock = std::move(clock);
    s_->lifetime = lifetime;
  }

  /// Steps to play in order; when they run out, every call succeeds.
  void script(std::vector<Step> steps) {
    std::lock_guard l(s_->m);
    s_->steps.assign(steps.begin(), steps.end());
  }
  void set_lifetime(std::chrono::seconds d) {
    std::lock_guard l(s_->m);
    s_->lifetime = d;
  }
  /// Every token expires at this fixed time (overrides lifetime).
  void set_fixed_expiry(std::optional<time_point> t) {
    std::lock_guard l(s_->m);
    s_->fixed_expiry = t;
  }

  int calls() const { return s_->calls.load(); }
  std::vector<Call> history() const {
    std::lock_guard l(s_->m);
    return s_->history;
  }
  std::size_t held() const {
    std::lock_guard l(s_->m);
    return s_->held.size();
  }
  /// Completes every held call successfully.
  void release_all() {
    std::vector<FetchCompletion> held;
    {
      std::lock_guard l(s_->m);
      held = std::move(s_->held);
      s_->held.clear();
    }
    for (auto& c : held) c.succeed(token_now());
  }
  void fail_all(const std::string& why) {
    std::vector<FetchCompletion> held;
    {
      std::lock_guard l(s_->m);
      held = std::move(s_->held);
      s_->held.clear();
    }
    for (auto& c : held) c.fail(std::make_exception_ptr(std::runtime_error(why)));
  }

  AccessToken token_now() const {
    std::lock_guard l(s_->m);
    const auto exp = s_->fixed_expiry.value_or(s_->clock->now() + s_->lifetime);
    const int n = s_->minted++;
    return AccessToken{make_jwt(exp, "user-" + std::to_string(n)), exp};
  }

  Fetcher fetcher() const {
    auto self = *this;
    return Fetcher::async([self](FetchContext ctx, FetchCompletion done) mutable {
      Step step = Step::succeed;
      {
        std::lock_guard l(self.s_->m);
        self.s_->history.push_back({self.s_->clock->elapsed(), ctx.reason(), ctx.attempt()});
        if (!self.s_->steps.empty()) {
          step = self.s_->steps.front();
          self.s_->steps.pop_front();
        }
      }
      self.s_->calls.fetch_add(1);
      switch (step) {
        case Step::succeed: done.succeed(self.token_now()); break;
        case Step::fail: done.fail(std::make_exception_ptr(std::runtime_error("token service unavailable"))); break;
        case Step::hold: {
          std::lock_guard l(self.s_->m);
          self.s_->held.push_back(std::move(done));
          break;
        }
      }
    });
  }

 private:
  struct Shared {
    mutable std::mutex m;
    std::shared_ptr<testing::ManualClock> clock;
    std::chrono::seconds lifetime{};
    std::optional<time_point> fixed_expiry;
    std::deque<Step> steps;
    std::vector<Call> history;
    std::vector<FetchCompletion> held;
    std::atomic<int> calls{0};
    mutable int minted = 0;
  };
  std::shared_ptr<Shared> s_;
};

}  // namespace credkit::test
