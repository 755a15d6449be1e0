// credkit — a token cache in one AES-256-GCM encrypted file, shared by processes on a host.
#pragma once

#include <credkit/caches/cache_encryption_key.hpp>
#include <credkit/caches/token_cache.hpp>
#include <credkit/core/clock.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <vector>

namespace credkit {

/// Options of an `EncryptedFileTokenCache`.
struct EncryptedFileTokenCacheOptions {
  /// The cache file. Its directory must exist; the file is created (mode 0600) on the first
  /// write. A lock file `<path>.lock` (0600) sits next to it.
  std::filesystem::path path;
  /// Encryption keys: the first encrypts, all decrypt (rotation). At least one.
  std::vector<CacheEncryptionKey> keys;
  /// An entry expires this long before its token does.
  std::chrono::milliseconds expiry_margin = std::chrono::seconds(30);
  /// Most entries kept; a write drops expired entries, then the soonest-expiring ones.
  std::size_t max_entries = 10000;
  /// How long a writer waits for the file lock before failing with `cache_io_error`.
  std::chrono::milliseconds lock_timeout = std::chrono::seconds(10);
  /// Share one fetch among concurrent `async_get_or_fetch` calls for a key.
  bool coalesce_in_process = true;
  /// Time source for TTLs; null: `Clock::system()`.
  std::shared_ptr<Clock> clock;
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
class EncryptedFileTokenCache final : public TokenCache {
 public:
  /// Creates the cache (no I/O yet). Throws `Error(errc::invalid_argument)` for an empty
  /// path or key list.
  static std::shared_ptr<EncryptedFileTokenCache> create(executor_type executor,
                                                         EncryptedFileTokenCacheOptions options);
  ~EncryptedFileTokenCache() override;

 protected:
  void do_get(std::string key, std::function<void(std::exception_ptr, std::optional<AccessToken>)> done) override;
  void do_put(std::string key, AccessToken value, std::optional<std::chrono::milliseconds> ttl,
              std::function<void(std::exception_ptr)> done) override;
  void do_erase(std::string key, std::function<void(std::exception_ptr)> done) override;

 private:
  struct Impl;
  EncryptedFileTokenCache(executor_type executor, EncryptedFileTokenCacheOptions options);
  std::shared_ptr<Impl> impl_;
};

}  // namespace credkit
