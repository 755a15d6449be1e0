// credkit — the asynchronous token cache interface every backend implements.
#pragma once

#include <credkit/caches/token_cache_key.hpp>
#include <credkit/core/access_token.hpp>
#include <credkit/core/clock.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace credkit {

namespace detail {
struct FlightTable;
}

/// Stores access tokens by `TokenCacheKey`, asynchronously, on Boost.Asio.
///
/// Backends: `MemoryTokenCache` (one process), `EncryptedFileTokenCache` (processes on a
/// host), `RedisTokenCache` (many hosts). Create one through its `create` function; share it
/// through `std::shared_ptr`. On-demand credentials read it through `make_cached_fetcher`.
///
/// Every `async_*` function below follows the same rules:
/// - @par Executor: the handler runs on its associated executor, by default the cache's
///   (`get_executor()`). It is always completed by posting: never inline from the call,
///   never under an internal lock.
/// - @par Cancellation: not supported (operations are short and bounded by the backend's
///   timeouts; `async_get_or_fetch` is bounded by the fetch it runs).
/// - @par Errors: delivered as an `std::exception_ptr` holding an `Error` with code
///   `cache_unavailable`, `cache_io_error`, `cache_corrupt`, `cache_wrong_key`,
///   `crypto_error` or `tls_error` (see each backend for which it raises).
/// - @par Thread safety: may be called from any thread, concurrently.
/// Any completion token works: callbacks, `use_future`, `use_awaitable`, `deferred`.
class TokenCache : public std::enable_shared_from_this<TokenCache> {
 public:
  /// The executor handlers run on by default.
  using executor_type = boost::asio::any_io_executor;
  /// Handler of `async_get`: the token, or `nullopt` on a miss (absent or past its TTL).
  using GetSignature = void(std::exception_ptr, std::optional<AccessToken>);
  /// Handler of `async_put` and `async_erase`.
  using PutSignature = void(std::exception_ptr);
  /// Handler of `async_erase`.
  using EraseSignature = void(std::exception_ptr);
  /// Handler of `async_get_or_fetch`: the token (from the cache or freshly fetched).
  using FetchSignature = void(std::exception_ptr, AccessToken);
  /// How an upstream fetch reports its outcome (from any thread, exactly once).
  using FetchDone = std::function<void(std::exception_ptr, AccessToken)>;
  /// Starts one fetch from the token service and reports through the `FetchDone` it is given.
  using UpstreamFetch = std::function<void(FetchDone)>;

  virtual ~TokenCache();
  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  /// The cache's default executor for handlers.
  executor_type get_executor() const noexcept { return executor_; }

  /// Looks `key` up. A token past its TTL is a miss.
  /// Handler: `void(std::exception_ptr error, std::optional<AccessToken> token)`.
  template <typename CompletionToken>
  auto async_get(const TokenCacheKey& key, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, GetSignature>(
        [](auto handler, std::shared_ptr<TokenCache> self, std::string k) {
          start_get(std::move(self), std::move(k),
                    boost::asio::any_completion_handler<GetSignature>(std::move(handler)));
        },
        token, shared_from_this(), key.str());
  }

  /// Stores `value` under `key` until its expiry minus the backend's margin.
  /// A token already inside the margin is not stored (success, nothing written); expiry −
  /// margin clamps at `time_point::min()` (an ancient expiry never wraps into the future).
  /// Handler: `void(std::exception_ptr error)`.
  template <typename CompletionToken>
  auto async_put(const TokenCacheKey& key, AccessToken value, CompletionToken&& token) {
    return async_put_impl(key, std::move(value), std::nullopt, std::forward<CompletionToken>(token));
  }

  /// As above with an explicit time to live: the entry lives for `min(ttl, expiry − margin)`.
  /// `ttl` must be >= 0 (else `invalid_argument`); `milliseconds::max()`: no explicit limit.
  template <typename CompletionToken>
  auto async_put(const TokenCacheKey& key, AccessToken value, std::chrono::milliseconds ttl, CompletionToken&& token) {
    return async_put_impl(key, std::move(value), ttl, std::forward<CompletionToken>(token));
  }

  /// Removes `key` (no error if absent). Handler: `void(std::exception_ptr error)`.
  template <typename CompletionToken>
  auto async_erase(const TokenCacheKey& key, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, EraseSignature>(
        [](auto handler, std::shared_ptr<TokenCache> self, std::string k) {
          start_erase(std::move(self), std::move(k),
                      boost::asio::any_completion_handler<EraseSignature>(std::move(handler)));
        },
        token, shared_from_this(), key.str());
  }

  /// Cache-aside read: returns the cached token when it has more than `min_validity` left,
  /// else runs `fetch` once and stores its result. Concurrent calls for the same key on this
  /// cache object share one fetch (unless the backend's `coalesce_in_process` is off);
  /// `RedisTokenCache` also shares it across processes and hosts (distributed single-flight).
  /// A cache failure never fails the call: it falls back to fetching (with a warning).
  /// `min_validity` must be >= 0 (else `invalid_argument`); `milliseconds::max()` never uses
  /// a cached token. Expiries and `min_validity` are compared without overflow at any value.
  /// Handler: `void(std::exception_ptr error, AccessToken token)`; `error` is the fetch's.
  template <typename CompletionToken>
  auto async_get_or_fetch(const TokenCacheKey& key, std::chrono::milliseconds min_validity, UpstreamFetch fetch,
                          CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, FetchSignature>(
        [](auto handler, std::shared_ptr<TokenCache> self, std::string k, std::chrono::milliseconds mv,
           UpstreamFetch f) {
          start_get_or_fetch(std::move(self), std::move(k), mv, std::move(f),
                             boost::asio::any_completion_handler<FetchSignature>(std::move(handler)));
        },
        token, shared_from_this(), key.str(), min_validity, std::move(fetch));
  }

 protected:
  /// Backends call this from their constructor. `clock` null: `Clock::system()`.
  TokenCache(executor_type executor, std::shared_ptr<Clock> clock, bool coalesce_in_process);

  /// Backend hooks. Keys are `TokenCacheKey::str()`. `done` may be called from any thread,
  /// exactly once; the base class posts the user's handler.
  virtual void do_get(std::string key, std::function<void(std::exception_ptr, std::optional<AccessToken>)> done) = 0;
  /// `ttl`: the caller's explicit TTL, if any; the backend applies its expiry margin.
  virtual void do_put(std::string key, AccessToken value, std::optional<std::chrono::milliseconds> ttl,
                      std::function<void(std::exception_ptr)> done) = 0;
  virtual void do_erase(std::string key, std::function<void(std::exception_ptr)> done) = 0;
  /// The cache-aside algorithm. Default: `do_get`; fresh enough → done; else `fetch`, then
  /// `do_put` (a put failure is logged, not reported). Redis overrides it with its
  /// distributed single-flight.
  virtual void do_get_or_fetch(std::string key, std::chrono::milliseconds min_validity, UpstreamFetch fetch,
                               FetchDone done);

  /// The clock TTLs are judged by.
  const Clock& clock() const noexcept { return *clock_; }
  /// True when `token` has more than `min_validity` left at `clock().now()` (saturating: an
  /// expiry at `time_point::min()` is never fresh, `milliseconds::max()` is never met).
  bool fresh_enough(const AccessToken& token, std::chrono::milliseconds min_validity) const noexcept;

 private:
  template <typename CompletionToken>
  auto async_put_impl(const TokenCacheKey& key, AccessToken value, std::optional<std::chrono::milliseconds> ttl,
                      CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, PutSignature>(
        [](auto handler, std::shared_ptr<TokenCache> self, std::string k, AccessToken v,
           std::optional<std::chrono::milliseconds> t) {
          start_put(std::move(self), std::move(k), std::move(v), t,
                    boost::asio::any_completion_handler<PutSignature>(std::move(handler)));
        },
        token, shared_from_this(), key.str(), std::move(value), ttl);
  }

  static void start_get(std::shared_ptr<TokenCache> self, std::string key,
                        boost::asio::any_completion_handler<GetSignature> handler);
  static void start_put(std::shared_ptr<TokenCache> self, std::string key, AccessToken value,
                        std::optional<std::chrono::milliseconds> ttl,
                        boost::asio::any_completion_handler<PutSignature> handler);
  static void start_erase(std::shared_ptr<TokenCache> self, std::string key,
                          boost::asio::any_completion_handler<EraseSignature> handler);
  static void start_get_or_fetch(std::shared_ptr<TokenCache> self, std::string key,
                                 std::chrono::milliseconds min_validity, UpstreamFetch fetch,
                                 boost::asio::any_completion_handler<FetchSignature> handler);

  executor_type executor_;
  std::shared_ptr<Clock> clock_;
  std::shared_ptr<detail::FlightTable> flights_;  // null when coalescing is off
};

}  // namespace credkit
