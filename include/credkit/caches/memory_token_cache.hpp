// credkit — an in-process token cache: bounded LRU, TTL from expiry, sharded locks.
#pragma once

#include <credkit/caches/token_cache.hpp>
#include <credkit/core/clock.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>

namespace credkit {

/// Options of a `MemoryTokenCache`.
struct MemoryTokenCacheOptions {
  /// Most entries kept; beyond it the least recently used entry of the shard is evicted.
  /// The bound is split evenly over the shards (each holds at least one entry).
  std::size_t max_entries = 10000;
  /// Lock shards. Keys hash to a shard; a hit locks only its shard, so readers of
  /// different keys rarely contend. Rounded up to a power of two, 1..256.
  std::size_t shards = 16;
  /// An entry expires this long before its token does.
  std::chrono::milliseconds expiry_margin = std::chrono::seconds(30);
  /// Share one fetch among concurrent `async_get_or_fetch` calls for a key.
  bool coalesce_in_process = true;
  /// Time source for TTLs; null: `Clock::system()`.
  std::shared_ptr<Clock> clock;
};

/// A process-local `TokenCache`: bounded LRU by entries, entry TTL = token expiry − margin.
///
/// Thread-safe with no global lock: keys are spread over shards, each with its own mutex
/// and LRU list. Operations do no I/O; the handler is still posted (never inline).
/// Errors: only `invalid_argument` (a negative TTL).
class MemoryTokenCache final : public TokenCache {
 public:
  /// Creates a cache whose handlers run on `executor` by default.
  /// Throws `Error(errc::invalid_argument)` when `max_entries` is 0.
  static std::shared_ptr<MemoryTokenCache> create(executor_type executor, MemoryTokenCacheOptions options = {});

  /// Synchronous lookup (no posting): the token, or `nullopt` on a miss. Thread-safe.
  std::optional<AccessToken> get(const TokenCacheKey& key) const;
  /// Synchronous store (see `async_put`). Thread-safe.
  void put(const TokenCacheKey& key, AccessToken value, std::optional<std::chrono::milliseconds> ttl = std::nullopt);
  /// Synchronous removal. Thread-safe.
  void erase(const TokenCacheKey& key);
  /// Entries held now (including expired ones not yet evicted).
  std::size_t size() const;

  ~MemoryTokenCache() override;

 protected:
  void do_get(std::string key, std::function<void(std::exception_ptr, std::optional<AccessToken>)> done) override;
  void do_put(std::string key, AccessToken value, std::optional<std::chrono::milliseconds> ttl,
              std::function<void(std::exception_ptr)> done) override;
  void do_erase(std::string key, std::function<void(std::exception_ptr)> done) override;

 private:
  struct Impl;
  MemoryTokenCache(executor_type executor, MemoryTokenCacheOptions options);
  std::unique_ptr<Impl> impl_;
};

}  // namespace credkit
