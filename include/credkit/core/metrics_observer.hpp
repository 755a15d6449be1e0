// credkit — what credentials and caches report for metrics, with no metrics library in core.
#pragma once

#include <credkit/core/fetcher.hpp>

#include <chrono>
#include <memory>
#include <string_view>
#include <system_error>

namespace credkit {

class TokenCredential;

/// What a cache lookup found.
enum class CacheLookup {
  hit,    ///< a usable token was in the cache
  miss,   ///< no usable token: the caller fetches (or waits for another instance's fetch)
  error,  ///< the cache failed; the caller fetched without it
};

/// The lookup outcome's name, e.g. "hit".
std::string_view to_string(CacheLookup lookup) noexcept;

/// Receives what credentials and caches do, to turn it into metrics (counters, histograms,
/// gauges). Give one to `TokenCredentialOptions::metrics` and to the caches' options; one
/// observer may serve any number of them. Every hook has an empty default, so an observer
/// overrides only what it records. `credkit::prometheus::Exporter` (the optional
/// `credkit::prometheus` component) is one implementation.
///
/// @par Thread safety
/// Hooks are called from whichever thread the event happens on (a fetcher's completion, a
/// timer, a caller's thread), concurrently, never under a credkit lock. They must be
/// thread-safe and quick. An exception a hook throws is caught and logged (scrubbed); the
/// event it reported is not affected.
///
/// @par Names
/// `name` is the label given in the credential's or cache's options (`metrics_name`).
class MetricsObserver {
 public:
  virtual ~MetricsObserver() = default;

  /// A credential with this observer was created. The observer may keep the pointer and read
  /// `health()` and `tokens_served()` when it is scraped (gauges such as seconds until expiry).
  virtual void credential_created(std::string_view name, std::weak_ptr<TokenCredential> credential);
  /// A fetch finished: `result` is empty on success, else the error's code. `latency` runs
  /// from the fetcher's start to its completion (or to the fetch timeout).
  virtual void fetch_finished(std::string_view name, FetchReason reason, std::error_code result,
                              std::chrono::nanoseconds latency);
  /// A refresh failed (a fetch failure, a fetch timeout, or a token refused on arrival):
  /// the `refresh_failed` event.
  virtual void refresh_failed(std::string_view name, std::error_code code);
  /// A client's report that the current token was rejected was accepted (`invalidate`).
  virtual void invalidated(std::string_view name);
  /// A caller that could not be answered from the cached token waited this long for its
  /// token or error (`get_token`, `async_get_token`); `result` is empty on success.
  virtual void caller_waited(std::string_view name, std::chrono::nanoseconds waited, std::error_code result);

  /// A cache lookup (`TokenCache` get) ended.
  virtual void cache_lookup(std::string_view cache, CacheLookup outcome);
  /// A Redis cache followed a cluster redirect (MOVED or ASK).
  virtual void redis_redirect(std::string_view cache);
  /// A Redis cache fetched directly, without the shared single-flight, because Redis failed.
  virtual void redis_fallback(std::string_view cache);
};

}  // namespace credkit
