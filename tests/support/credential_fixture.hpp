// Test helper: the set-up every credential test in virtual time shares.
#pragma once

#include "support/test_tokens.hpp"

#include <cstdint>
#include <memory>

namespace credkit::test {

/// Virtual time (an io_context and its ManualClock), a ScriptedFetcher on that clock (60 min
/// tokens unless a test sets another lifetime) and credentials wired to both. Use it as a
/// doctest fixture, or as an object where one test case needs several fresh set-ups. A test
/// file fixes the random seed once: jittered schedules depend on it.
class CredentialFixture {
 public:
  explicit CredentialFixture(std::uint64_t random_seed = 0) : random_seed_(random_seed) {}

  VirtualEnv env;
  ScriptedFetcher fetcher{env.clock};

  /// Options on the virtual clock, with no fetcher.
  TokenCredentialOptions options_without_fetcher(RefreshMode mode = RefreshMode::proactive) const {
    TokenCredentialOptions o;
    o.mode = mode;
    o.clock = env.clock;
    o.random_seed = random_seed_;
    return o;
  }
  /// Options on the virtual clock, fetching from `fetcher`.
  TokenCredentialOptions options(RefreshMode mode = RefreshMode::proactive) const {
    auto o = options_without_fetcher(mode);
    o.fetcher = fetcher.fetcher();
    return o;
  }
  /// A credential on the virtual io_context.
  std::shared_ptr<TokenCredential> create(const TokenCredentialOptions& o) {
    return TokenCredential::create(env.io.get_executor(), o);
  }
  /// A credential fetching from `fetcher`.
  std::shared_ptr<TokenCredential> create(RefreshMode mode = RefreshMode::proactive) { return create(options(mode)); }

 private:
  std::uint64_t random_seed_;
};

/// A CredentialFixture with the random seed fixed at compile time, for TEST_CASE_FIXTURE.
template <std::uint64_t Seed>
struct SeededCredentialFixture : CredentialFixture {
  SeededCredentialFixture() : CredentialFixture(Seed) {}
};

}  // namespace credkit::test
