// credkit — cache-aside on-demand credentials: read the shared cache first, fetch on a miss.
#pragma once

#include <credkit/caches/token_cache.hpp>
#include <credkit/caches/token_cache_key.hpp>
#include <credkit/core/fetcher.hpp>
#include <credkit/core/parse_token.hpp>
#include <credkit/core/refresh_policy.hpp>
#include <credkit/core/token_credential.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <memory>

namespace credkit {

/// Options of `make_cached_fetcher` / `make_cached_credential`. `make_cached_fetcher` calls
/// `validate()`.
struct CachedFetcherOptions {
  /// A cached token with this much validity left or less is not used; the inner fetcher runs
  /// instead. Keep it equal to the credential's `RefreshPolicy::min_validity` (the credential
  /// would otherwise reject what the cache hands it and ask again). 0 or more;
  /// `milliseconds::max()`: a cached token is never used (every fetch runs the inner one).
  std::chrono::milliseconds min_validity = std::chrono::minutes(2);
  /// How token strings delivered by the inner fetcher are parsed.
  ParseOptions parse;

  /// Throws `Error(errc::invalid_argument)` naming the first out-of-range field
  /// (`CachedFetcherOptions::<field> must be ...`) with its allowed range.
  void validate() const;
};

/// Wraps `inner` so that each fetch first reads `cache` under `key` and only runs `inner`
/// on a miss or when the cached token has `min_validity` or less left, then writes the new
/// token back (cache-aside). Concurrent fetches of the same key share one inner fetch
/// (in-process, and across processes with `RedisTokenCache`). A fetch with reason
/// `FetchReason::invalidated` first erases the cached token (a service rejected it).
///
/// Give the result to a `TokenCredential` in `RefreshMode::on_demand`; the credential keeps
/// the token in memory, so the cache is read only when that copy is below minimum validity.
/// A cache failure (Redis down, corrupt file) falls back to `inner`, with a warning.
///
/// The inner fetcher runs on the credential's executor as usual; its cancellation follows
/// the fetch that started it. Throws `Error(errc::invalid_argument)` if `cache` is null,
/// `inner` is none, or an option is out of range (`options.validate()`).
Fetcher make_cached_fetcher(std::shared_ptr<TokenCache> cache, TokenCacheKey key, Fetcher inner,
                            CachedFetcherOptions options = {});

/// An on-demand credential for one key over `cache`: `make_cached_fetcher` plus a
/// `TokenCredential` in `RefreshMode::on_demand` (no timers) with `policy`, whose
/// `min_validity` is also the cache's. Cheap: a bot can hold one per user.
std::shared_ptr<TokenCredential> make_cached_credential(boost::asio::any_io_executor executor,
                                                        std::shared_ptr<TokenCache> cache, TokenCacheKey key,
                                                        Fetcher inner, RefreshPolicy policy = {});

}  // namespace credkit
