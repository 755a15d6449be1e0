// credkit bench — the reference design every peer SDK uses, to compare credkit against.
//
// azure-sdk-for-cpp (BearerTokenAuthenticationPolicy: a std::mutex; identity's TokenCache:
// a shared mutex) and the ACS SDKs all hold the token in a struct behind a lock and hand
// it out by value: every read takes the lock, reads the precise wall clock to check the
// expiry, and copies the token string. This file reproduces that design faithfully, with
// a working refresh path, so the benchmarks compare like with like.
#pragma once

#include <credkit/core/access_token.hpp>

#include <chrono>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <type_traits>
#include <utility>

namespace credkit::bench {

/// A token cache in the style of the peers. `Mutex` is `std::mutex` (exclusive lock on
/// every read) or `std::shared_mutex` (shared lock on reads, exclusive to refresh).
template <typename Mutex>
class BaselineTokenCache {
 public:
  using Fetch = std::function<AccessToken()>;

  /// `min_validity`: a token with less than this left is refreshed before it is returned.
  BaselineTokenCache(AccessToken initial, Fetch fetch, std::chrono::milliseconds min_validity)
      : token_(std::move(initial)), fetch_(std::move(fetch)), min_validity_(min_validity) {}

  /// Returns a copy of the cached token, refreshing it first when it is about to expire.
  AccessToken get_token() {
    if constexpr (std::is_same_v<Mutex, std::shared_mutex>) {
      {
        std::shared_lock lock(mutex_);
        if (fresh_locked()) return token_;
      }
      std::unique_lock lock(mutex_);
      if (!fresh_locked()) token_ = fetch_();
      return token_;
    } else {
      std::lock_guard lock(mutex_);
      if (!fresh_locked()) token_ = fetch_();
      return token_;
    }
  }

 private:
  bool fresh_locked() const { return std::chrono::system_clock::now() + min_validity_ < token_.expires_on; }

  Mutex mutex_;
  AccessToken token_;
  Fetch fetch_;
  std::chrono::milliseconds min_validity_;
};

/// Exclusive lock per read (azure-core's BearerTokenAuthenticationPolicy, the ACS SDKs).
using MutexTokenCache = BaselineTokenCache<std::mutex>;
/// Shared lock per read (azure-identity's TokenCache).
using SharedMutexTokenCache = BaselineTokenCache<std::shared_mutex>;

}  // namespace credkit::bench
