// credkit — the asynchronous token cache interface every backend implements.
#pragma once

#include <credkit/caches/token_cache_key.hpp>
#include <credkit/core/access_token.hpp>
#include <credkit/core/clock.hpp>
#include <credkit/core/metrics_observer.hpp>

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
struct CacheMetrics;
}

/// Stores access tokens by `TokenCacheKey`, asynchronously, on Boost.Asio.
///
/// Backends: `MemoryTokenCache` (one process), `EncryptedFileTokenCache` (processes on a
/// host), `RedisTokenCache` (many hosts). Create one through its `create` function; share it
/// through `std::shared_ptr`. On-demand credentials read it through `make_cached_fetcher`.
///
/// Each `async_*` function documents its handler signature, executor, cancellation, errors,
/// thread safety, lifetimes and preconditions in the sections of `TokenCredential`'s. Any
/// completion token works: callbacks, `use_future`, `use_awaitable` (throws the `Error`),
/// `deferred`.
///
/// Backends derive from this class and implement the protected hooks (`do_get`, `do_put`,
/// `do_erase`, optionally `do_get_or_fetch`); their contract is documented there.
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
  /// How `do_get` reports (see the backend hooks).
  using GetDone = std::function<void(std::exception_ptr, std::optional<AccessToken>)>;
  /// How `do_put` and `do_erase` report (see the backend hooks).
  using WriteDone = std::function<void(std::exception_ptr)>;

  virtual ~TokenCache();
  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  /// The cache's default executor for handlers.
  executor_type get_executor() const noexcept { return executor_; }

  /// Looks `key` up. A token past its TTL is a miss.
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error, std::optional<AccessToken> token)`: `error` null and
  /// `token` empty on a miss; on failure `error` holds an `Error` and `token` is empty.
  ///
  /// @par Executor
  /// The handler runs on its associated executor, by default the cache's (`get_executor()`).
  /// It is always completed by posting: never inline from this call, never under an internal
  /// lock. Blocking work (file I/O, waiting for Redis) runs on credkit's cache I/O threads.
  ///
  /// @par Cancellation
  /// Not supported: the operation is bounded by the backend's timeouts.
  ///
  /// @par Errors
  /// `cache_unavailable`, `cache_io_error`, `cache_corrupt`, `cache_wrong_key`, `crypto_error`,
  /// `tls_error` (each backend lists the ones it raises); `invalid_token` for a record
  /// whose token fails the token gate.
  ///
  /// @par Thread safety
  /// May be called from any thread, concurrently.
  ///
  /// @par Lifetimes
  /// `key` is copied before this returns. The cache may be released while the operation
  /// runs; it still completes.
  template <typename CompletionToken>
  auto async_get(const TokenCacheKey& key, CompletionToken&& token) {
    return initiate<GetSignature>(std::forward<CompletionToken>(token), &start_get, key.str());
  }

  /// Stores `value` under `key` until its expiry minus the backend's margin.
  /// A token already inside the margin is not stored (success, nothing written); expiry −
  /// margin clamps at `time_point::min()` (an ancient expiry never wraps into the future).
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error)`.
  ///
  /// @par Executor
  /// As `async_get`.
  ///
  /// @par Cancellation
  /// Not supported: the operation is bounded by the backend's timeouts.
  ///
  /// @par Errors
  /// As `async_get` (without `cache_corrupt` for the value written), and `invalid_token`
  /// for a token that fails the token gate.
  ///
  /// @par Thread safety
  /// May be called from any thread, concurrently; concurrent puts of one key leave one of them.
  ///
  /// @par Lifetimes
  /// `key` and `value` are copied or moved before this returns. The operation keeps the cache
  /// alive until it completes.
  ///
  /// @par Preconditions
  /// `value.token` passes the token gate (else the handler gets `invalid_token`).
  template <typename CompletionToken>
  auto async_put(const TokenCacheKey& key, AccessToken value, CompletionToken&& token) {
    return async_put_impl(key, std::move(value), std::nullopt, std::forward<CompletionToken>(token));
  }

  /// As above with an explicit time to live: the entry lives for `min(ttl, expiry − margin)`.
  ///
  /// @par Preconditions
  /// `ttl` >= 0 (else the handler gets `invalid_argument`); `milliseconds::max()`: no explicit
  /// limit. The other sections are the overload's above.
  template <typename CompletionToken>
  auto async_put(const TokenCacheKey& key, AccessToken value, std::chrono::milliseconds ttl, CompletionToken&& token) {
    return async_put_impl(key, std::move(value), ttl, std::forward<CompletionToken>(token));
  }

  /// Removes `key` (no error if absent).
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error)`.
  ///
  /// @par Executor
  /// As `async_get`.
  ///
  /// @par Cancellation
  /// Not supported: the operation is bounded by the backend's timeouts.
  ///
  /// @par Errors
  /// `cache_unavailable`, `cache_io_error`, `tls_error` (each backend lists the ones it raises).
  ///
  /// @par Thread safety
  /// May be called from any thread, concurrently.
  ///
  /// @par Lifetimes
  /// `key` is copied before this returns. The cache may be released while the operation
  /// runs; it still completes.
  template <typename CompletionToken>
  auto async_erase(const TokenCacheKey& key, CompletionToken&& token) {
    return initiate<EraseSignature>(std::forward<CompletionToken>(token), &start_erase, key.str());
  }

  /// Cache-aside read: returns the cached token when it has more than `min_validity` left,
  /// else runs `fetch` once and stores its result. Concurrent calls for the same key on this
  /// cache object share one fetch (unless the backend's `coalesce_in_process` is off);
  /// `RedisTokenCache` also shares it across processes and hosts (distributed single-flight).
  /// Expiries and `min_validity` are compared without overflow at any value.
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error, AccessToken token)`: the token (cached or fetched), or the
  /// fetch's error with an empty token.
  ///
  /// @par Executor
  /// As `async_get`. `fetch` is called from the calling thread or a cache I/O thread and may
  /// report from any thread.
  ///
  /// @par Cancellation
  /// Not supported: the operation is bounded by the fetch it runs (and, for Redis, by
  /// `wait_timeout` before it fetches).
  ///
  /// @par Errors
  /// The fetch's own error, or `invalid_token` for a fetched token that fails the token
  /// gate. A cache failure never fails the call: it falls back to fetching (with a warning).
  ///
  /// @par Thread safety
  /// May be called from any thread, concurrently.
  ///
  /// @par Lifetimes
  /// `key` is copied and `fetch` moved before this returns; `fetch` (and what it captures)
  /// lives until it has reported. The cache may be released while the operation runs; it
  /// still completes.
  ///
  /// @par Preconditions
  /// `fetch` is not empty and reports exactly once (a second report is ignored);
  /// `min_validity` >= 0 (else the handler gets `invalid_argument`); `milliseconds::max()`
  /// never uses a cached token.
  template <typename CompletionToken>
  auto async_get_or_fetch(const TokenCacheKey& key, std::chrono::milliseconds min_validity, UpstreamFetch fetch,
                          CompletionToken&& token) {
    return initiate<FetchSignature>(std::forward<CompletionToken>(token), &start_get_or_fetch, key.str(), min_validity,
                                    std::move(fetch));
  }

 protected:
  /// Backends call this from their constructor. `clock` null: `Clock::system()`. `metrics`
  /// (null: none) receives the outcome of every lookup, labelled `metrics_name`: 1 to 64
  /// characters from `A-Z a-z 0-9 _ . : / -`, else `Error(errc::invalid_argument)` is thrown.
  TokenCache(executor_type executor, std::shared_ptr<Clock> clock, bool coalesce_in_process,
             std::shared_ptr<MetricsObserver> metrics = nullptr, std::string metrics_name = "cache");

  /// Reports one lookup's outcome to the metrics observer, if any (`MetricsObserver::
  /// cache_lookup`; an exception from it is logged). The base class reports `async_get` and
  /// the default `do_get_or_fetch` (one outcome per read of the backend: a hit, a miss or
  /// stale token, or an error). A backend that overrides `do_get_or_fetch`, or reads outside
  /// `do_get`, reports those lookups itself. Call it with none of the backend's locks held.
  void report_lookup(CacheLookup outcome) const noexcept;

  /// Backend hooks, the contract a backend implements (the three caches here, or yours):
  /// - Thread: called on the thread that called the `async_*` function, before it returns.
  ///   They must not block it: blocking work belongs on the backend's own threads.
  /// - Completion: call `done` exactly once, from any thread, inline or later; the base class
  ///   posts the user's handler to its executor (never inline, never under a lock), so a hook
  ///   may call `done` while holding its own locks only if `done` cannot re-enter it (it does
  ///   not: it only posts, after reporting a lookup to the metrics observer, if any, which
  ///   must not call into the cache).
  /// - Errors: pass an `Error` to `done`, or throw it from the hook before calling `done` (the
  ///   base class then completes with it). Never both.
  /// - Lifetimes: `key` (a `TokenCacheKey::str()`) and `value` are the hook's own. The base
  ///   class does not keep the cache alive while the hook's work runs: capture
  ///   `shared_from_this()` (or your state's `shared_ptr`) in that work.
  virtual void do_get(std::string key, GetDone done) = 0;
  /// `ttl`: the caller's explicit TTL, if any; the backend applies its expiry margin.
  virtual void do_put(std::string key, AccessToken value, std::optional<std::chrono::milliseconds> ttl,
                      WriteDone done) = 0;
  virtual void do_erase(std::string key, WriteDone done) = 0;
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
    return initiate<PutSignature>(std::forward<CompletionToken>(token), &start_put, key.str(), std::move(value), ttl);
  }

  /// The one initiation of every `async_*` function: `start(self, args..., handler)` runs
  /// with the handler type-erased, so the operation's code is compiled once, not per token.
  template <typename Signature, typename CompletionToken, typename Start, typename... Args>
  auto initiate(CompletionToken&& token, Start start, Args&&... args) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [start](auto handler, std::shared_ptr<TokenCache> self, auto... arguments) {
          start(std::move(self), std::move(arguments)...,
                boost::asio::any_completion_handler<Signature>(std::move(handler)));
        },
        token, shared_from_this(), std::forward<Args>(args)...);
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
  std::shared_ptr<const detail::CacheMetrics> metrics_;  // null without an observer
};

}  // namespace credkit
