// credkit — the application key that encrypts cached tokens at rest (file, Redis).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace credkit {

/// A key for AES-256-GCM encryption of cached tokens: 32 raw bytes, or a passphrase that is
/// stretched with PBKDF2-HMAC-SHA256 (at least 600 000 iterations) and a salt the cache
/// keeps (the encrypted file's header; a Redis cache's `kdf_salt`).
///
/// Caches take a list of keys: the first encrypts, every key decrypts, so a key can be
/// rotated by putting the new one first and keeping the old one until its records expire.
/// Each record names its key by a key id (8 bytes of HMAC-SHA256 of the key: it reveals
/// nothing about the key).
///
/// The material is wiped (`OPENSSL_cleanse`) when the object is destroyed or assigned over.
/// Streaming prints only the kind (and iteration count), never the material.
class CacheEncryptionKey {
 public:
  /// Smallest PBKDF2 iteration count accepted (OWASP 2023 for PBKDF2-HMAC-SHA256).
  static constexpr std::uint32_t min_pbkdf2_iterations = 600000;

  /// A raw 256-bit key. Throws `Error(errc::invalid_argument)` unless `key` is 32 bytes.
  static CacheEncryptionKey from_raw(std::span<const unsigned char> key);
  /// A raw key given as 64 hex digits. Throws `Error(errc::invalid_argument)` otherwise.
  static CacheEncryptionKey from_hex(std::string_view hex);
  /// A passphrase-derived key. Throws `Error(errc::invalid_argument)` for an empty
  /// passphrase or fewer than `min_pbkdf2_iterations` iterations.
  static CacheEncryptionKey from_passphrase(std::string_view passphrase,
                                            std::uint32_t iterations = min_pbkdf2_iterations);
  /// A fresh random raw key (from the OpenSSL CSPRNG).
  static CacheEncryptionKey generate();

  CacheEncryptionKey(const CacheEncryptionKey& other);
  CacheEncryptionKey& operator=(const CacheEncryptionKey& other);
  CacheEncryptionKey(CacheEncryptionKey&& other) noexcept;
  CacheEncryptionKey& operator=(CacheEncryptionKey&& other) noexcept;
  ~CacheEncryptionKey();

  /// True for a passphrase key (its AES key depends on the salt it is used with).
  bool is_passphrase() const noexcept { return iterations_ != 0; }
  /// PBKDF2 iterations of a passphrase key; 0 for a raw key.
  std::uint32_t iterations() const noexcept { return iterations_; }
  /// The raw key bytes or the passphrase bytes. Handle with care: this is the secret.
  std::span<const unsigned char> material() const noexcept { return material_; }

 private:
  CacheEncryptionKey(std::vector<unsigned char> material, std::uint32_t iterations) noexcept;
  void wipe() noexcept;
  std::vector<unsigned char> material_;
  std::uint32_t iterations_ = 0;
};

/// Writes `CacheEncryptionKey{raw}` or `CacheEncryptionKey{passphrase, 600000 iterations}`.
std::ostream& operator<<(std::ostream& os, const CacheEncryptionKey& key);

}  // namespace credkit
