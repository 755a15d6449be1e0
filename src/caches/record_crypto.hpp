// credkit detail — AES-256-GCM records shared by the encrypted file and Redis caches.
//
// Record (version 1):  ver(1)=0x01 | key_id(8) | nonce(12) | ciphertext | tag(16)
// Plaintext:           expires_on (int64 big-endian, ms since the Unix epoch) | token bytes
// AAD:                 "credkit-token-record" 0x00 | ver | key_id | cache key string
// Keys: base = raw key, or PBKDF2-HMAC-SHA256(passphrase, salt, iterations, 32);
//       enc = HMAC-SHA256(base, "credkit/v1/enc"), mac = HMAC-SHA256(base, "credkit/v1/lookup"),
//       key_id = HMAC-SHA256(base, "credkit/v1/key-id")[0..8).
#pragma once

#include <credkit/caches/cache_encryption_key.hpp>
#include <credkit/core/access_token.hpp>

#include "core/crypto.hpp"

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace credkit::detail {

using KeyId = std::array<unsigned char, 8>;
using Lookup = std::array<unsigned char, 16>;

/// One key, ready for use. Wiped on destruction.
struct DerivedKey {
  KeyId id{};
  std::array<unsigned char, 32> enc{};
  std::array<unsigned char, 32> mac{};
  DerivedKey() = default;
  DerivedKey(const DerivedKey&) = default;
  DerivedKey& operator=(const DerivedKey&) = default;
  ~DerivedKey();
};

/// The keys of one cache for one salt: the first encrypts, all decrypt.
class Keyring {
 public:
  static constexpr std::size_t record_overhead = 1 + 8 + 12 + 8 + 16;

  /// Derives every key (PBKDF2 for passphrase keys: slow by design). Throws
  /// `Error(invalid_argument)` for an empty list, `Error(crypto_error)` if OpenSSL fails.
  Keyring(const std::vector<CacheEncryptionKey>& keys, std::span<const unsigned char> salt);

  /// Encrypts `token` for `cache_key` with the first key and a fresh random nonce.
  std::string encrypt(std::string_view cache_key, const AccessToken& token) const;
  /// Decrypts a record stored under `cache_key`. Throws `Error`: `cache_corrupt` (truncated,
  /// damaged, unknown version, or bound to another cache key), `cache_wrong_key` (no key
  /// has the record's key id), `crypto_error`.
  AccessToken decrypt(std::string_view cache_key, std::string_view record) const;

  /// The keyed lookup id of `cache_key` under `key` (hides user ids on disk).
  static Lookup lookup(const DerivedKey& key, std::string_view cache_key);
  /// The key that encrypts.
  const DerivedKey& primary() const noexcept { return keys_.front(); }
  /// The key with `id`, or null.
  const DerivedKey* find(const KeyId& id) const noexcept;
  /// All keys, primary first.
  const std::vector<DerivedKey>& keys() const noexcept { return keys_; }

 private:
  std::vector<DerivedKey> keys_;
};

/// Lowercase hex of bytes.
std::string to_hex(std::span<const unsigned char> bytes);

}  // namespace credkit::detail
