// credkit — an in-process token cache: bounded LRU, TTL from expiry, sharded locks.
#pragma once

#include <credkit/caches/token_cache.hpp>
#include <credkit/core/clock.hpp>
#include <credkit/core/metrics_observer.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

namespace credkit {

/// Options of a `MemoryTokenCache`. `MemoryTokenCache::create` calls `validate()`.
struct MemoryTokenCacheOptions {
  /// Most entries kept, at least 1; beyond it the least recently used entry of the shard is
  /// evicted. The bound is split evenly over the shards (each holds at least one entry).
  std::size_t max_entries = 10000;
  /// Lock shards, 1 to 256. Keys hash to a shard; a hit locks only its shard, so readers of
  /// different keys rarely contend. Rounded up to a power of two, and down to at most
  /// `max_entries`.
  std::size_t shards = 16;
  /// An entry expires this long before its token does: 0 or more. `milliseconds::max()`
  /// (or any margin at least a token's lifetime) stores nothing.
  std::chrono::milliseconds expiry_margin = std::chrono::seconds(30);
  /// Share one fetch among concurrent `async_get_or_fetch` calls for a key.
  bool coalesce_in_process = true;
  /// Time source for TTLs; null: `Clock::system()`.
  std::shared_ptr<Clock> clock;
  /// Receives the outcome of every lookup (`MetricsObserver::cache_lookup`); null: none.
  std::shared_ptr<MetricsObserver> metrics;
  /// The cache's label in metrics: 1 to 64 characters from `A-Z a-z 0-9 _ . : / -`.
  std::string metrics_name = "memory";

  /// Throws `Error(errc::invalid_argument)` naming the first out-of-range field
  /// (`MemoryTokenCacheOptions::<field> must be ...`) with its allowed range.
  void validate() const;
};

/// A process-local `TokenCache`: bounded LRU by entries, entry TTL = token expiry − margin.
///
/// Thread-safe with no global lock: keys are spread over shards, each with its own mutex
/// and LRU list. Operations do no I/O; the handler is still posted (never inline).
/// Errors: only `invalid_argument` (a negative TTL). Expiries anywhere in `system_clock`'s
/// range are handled without overflow: a token expiring at `time_point::max()` is kept, one
/// at or near `time_point::min()` is never stored.
class MemoryTokenCache final : public TokenCache {
 public:
  /// Creates a cache whose handlers run on `executor` by default.
  /// Throws `Error(errc::invalid_argument)` for an out-of-range option (`options.validate()`).
  static std::shared_ptr<MemoryTokenCache> create(executor_type executor, MemoryTokenCacheOptions options = {});

  /// Synchronous lookup (no posting): the token, or `nullopt` on a miss (reported to the
  /// metrics observer like `async_get`). Thread-safe.
  std::optional<AccessToken> get(const TokenCacheKey& key) const;
  /// Synchronous store (see `async_put`; `ttl` >= 0, `milliseconds::max()`: no explicit
  /// limit). Thread-safe.
  void put(const TokenCacheKey& key, AccessToken value, std::optional<std::chrono::milliseconds> ttl = std::nullopt);
  /// Synchronous removal. Thread-safe.
  void erase(const TokenCacheKey& key);
  /// Entries held now (including expired ones not yet evicted).
  std::size_t size() const;

  ~MemoryTokenCache() override;

 protected:
  void do_get(std::string key, GetDone done) override;
  void do_put(std::string key, AccessToken value, std::optional<std::chrono::milliseconds> ttl,
              WriteDone done) override;
  void do_erase(std::string key, WriteDone done) override;

 private:
  struct Impl;
  MemoryTokenCache(executor_type executor, MemoryTokenCacheOptions options);
  std::unique_ptr<Impl> impl_;
};

}  // namespace credkit
