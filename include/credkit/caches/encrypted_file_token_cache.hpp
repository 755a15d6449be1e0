// credkit — a token cache in one AES-256-GCM encrypted file, shared by processes on a host.
#pragma once

#include <credkit/caches/cache_encryption_key.hpp>
#include <credkit/caches/token_cache.hpp>
#include <credkit/core/clock.hpp>
#include <credkit/core/metrics_observer.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace credkit {

/// Options of an `EncryptedFileTokenCache`. `EncryptedFileTokenCache::create` calls `validate()`.
struct EncryptedFileTokenCacheOptions {
  /// The cache file, not empty. Its directory must exist; the file is created (mode 0600) on
  /// the first write. A lock file `<path>.lock` (0600) sits next to it.
  ///
  /// Hostile files (docs/caches.md, "Limits"): the cache file, its lock file and the temp
  /// files of atomic writes are opened without following a symbolic link in the final path
  /// component (a link, dangling or not, is refused and nothing is created through it), without
  /// blocking, and must be regular files (a FIFO, socket, directory or device fails the call
  /// with `cache_io_error`). A cache file larger than `max_file_bytes` is refused before any
  /// byte is read (`cache_corrupt`; a write replaces it).
  std::filesystem::path path;
  /// The largest cache file credkit reads or writes: 16 MiB. A write that would exceed it
  /// drops the soonest-expiring entries (like `max_entries`).
  static constexpr std::size_t max_file_bytes = std::size_t{16} << 20;
  /// Encryption keys: the first encrypts, all decrypt (rotation). At least one.
  std::vector<CacheEncryptionKey> keys;
  /// An entry expires this long before its token does: 0 or more. `milliseconds::max()`
  /// (or any margin at least a token's lifetime) stores nothing.
  std::chrono::milliseconds expiry_margin = std::chrono::seconds(30);
  /// Most entries kept, at least 1; a write drops expired entries, then the soonest-expiring
  /// ones.
  std::size_t max_entries = 10000;
  /// How long a writer waits for the file lock before failing with `cache_io_error`: 0 or
  /// more (0: one attempt, no wait). `milliseconds::max()`: no limit (waits as long as
  /// another writer holds the lock).
  std::chrono::milliseconds lock_timeout = std::chrono::seconds(10);
  /// Share one fetch among concurrent `async_get_or_fetch` calls for a key.
  bool coalesce_in_process = true;
  /// Time source for TTLs; null: `Clock::system()`.
  std::shared_ptr<Clock> clock;
  /// Receives the outcome of every lookup (`MetricsObserver::cache_lookup`); null: none.
  std::shared_ptr<MetricsObserver> metrics;
  /// The cache's label in metrics: 1 to 64 characters from `A-Z a-z 0-9 _ . : / -`.
  std::string metrics_name = "file";

  /// Throws `Error(errc::invalid_argument)` naming the first out-of-range field
  /// (`EncryptedFileTokenCacheOptions::<field> must be ...`) with its allowed range.
  void validate() const;
};

/// A `TokenCache` in one encrypted file; one file per process or shared by processes.
///
/// Format: a header (magic `CKTC`, version, a random 16-byte salt for passphrase keys, the
/// entry count) and entries (a keyed lookup id, never the user id in clear; the entry's
/// stale time; an AES-256-GCM record with its key id and a random 96-bit nonce, whose AAD
/// binds it to the key id and the cache key). See docs/caches.md.
///
/// Writes are atomic (temp file, fsync, rename, fsync of the directory) under an exclusive
/// `flock` on `<path>.lock`, so concurrent writers (threads and processes) never lose each
/// other's entries. Readers need no lock and see a whole file. File I/O runs on credkit's
/// cache I/O threads, never on the caller's executor.
///
/// Errors: `async_get` fails with `cache_corrupt` (truncated or damaged file),
/// `cache_wrong_key` (the file holds entries but none under a key this cache has),
/// `cache_io_error` (unreadable file, lock timeout), `crypto_error`. A damaged entry never
/// yields a wrong token. `async_put` replaces a damaged file (with a warning) rather than fail.
///
/// Expiries are stored in whole milliseconds (see docs/caches.md); any expiry in
/// `system_clock`'s range is stored and read back without overflow (one at or near
/// `time_point::min()` is never stored; a record holding an expiry outside that range is
/// rejected as `cache_corrupt`).
class EncryptedFileTokenCache final : public TokenCache {
 public:
  /// Creates the cache (no I/O yet). Throws `Error(errc::invalid_argument)` for an
  /// out-of-range option (`options.validate()`).
  static std::shared_ptr<EncryptedFileTokenCache> create(executor_type executor,
                                                         EncryptedFileTokenCacheOptions options);
  ~EncryptedFileTokenCache() override;

 protected:
  void do_get(std::string key, GetDone done) override;
  void do_put(std::string key, AccessToken value, std::optional<std::chrono::milliseconds> ttl,
              WriteDone done) override;
  void do_erase(std::string key, WriteDone done) override;

 private:
  struct Impl;
  EncryptedFileTokenCache(executor_type executor, EncryptedFileTokenCacheOptions options);
  std::shared_ptr<Impl> impl_;
};

}  // namespace credkit
