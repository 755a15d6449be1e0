#include <credkit/caches/cache_encryption_key.hpp>
#include <credkit/core/error.hpp>

#include "core/crypto.hpp"
#include "core/secret_scrubber.hpp"

#include <openssl/crypto.h>

#include <ostream>

namespace credkit {

CacheEncryptionKey::CacheEncryptionKey(std::vector<unsigned char> material, std::uint32_t iterations) noexcept
    : material_(std::move(material)), iterations_(iterations) {
  try {  // the key (and so its base64 and hex forms) never shows in a diagnostic
    detail::remember_secret(std::string_view(reinterpret_cast<const char*>(material_.data()), material_.size()));
  } catch (...) {
  }
}

CacheEncryptionKey CacheEncryptionKey::from_raw(std::span<const unsigned char> key) {
  if (key.size() != 32)
    throw_error(errc::invalid_argument,
                "CacheEncryptionKey::from_raw: an AES-256 key is 32 bytes, got " + std::to_string(key.size()));
  return CacheEncryptionKey(std::vector<unsigned char>(key.begin(), key.end()), 0);
}

CacheEncryptionKey CacheEncryptionKey::from_hex(std::string_view hex) {
  if (hex.size() != 64) throw_error(errc::invalid_argument, "CacheEncryptionKey::from_hex: expected 64 hex digits");
  std::vector<unsigned char> bytes(32);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      OPENSSL_cleanse(bytes.data(), bytes.size());
      throw_error(errc::invalid_argument, "CacheEncryptionKey::from_hex: not a hex digit");
    }
    bytes[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return CacheEncryptionKey(std::move(bytes), 0);
}

CacheEncryptionKey CacheEncryptionKey::from_passphrase(std::string_view passphrase, std::uint32_t iterations) {
  if (passphrase.empty()) throw_error(errc::invalid_argument, "CacheEncryptionKey::from_passphrase: empty passphrase");
  if (iterations < min_pbkdf2_iterations)
    throw_error(errc::invalid_argument, "CacheEncryptionKey::from_passphrase: PBKDF2 needs at least " +
                                            std::to_string(min_pbkdf2_iterations) + " iterations");
  return CacheEncryptionKey(std::vector<unsigned char>(passphrase.begin(), passphrase.end()), iterations);
}

CacheEncryptionKey CacheEncryptionKey::generate() {
  std::vector<unsigned char> bytes(32);
  detail::random_bytes(bytes);
  return CacheEncryptionKey(std::move(bytes), 0);
}

CacheEncryptionKey::CacheEncryptionKey(const CacheEncryptionKey& other)
    : material_(other.material_), iterations_(other.iterations_) {}

CacheEncryptionKey& CacheEncryptionKey::operator=(const CacheEncryptionKey& other) {
  if (this != &other) {
    wipe();
    material_ = other.material_;
    iterations_ = other.iterations_;
  }
  return *this;
}

CacheEncryptionKey::CacheEncryptionKey(CacheEncryptionKey&& other) noexcept
    : material_(std::move(other.material_)), iterations_(other.iterations_) {
  other.material_.clear();
}

CacheEncryptionKey& CacheEncryptionKey::operator=(CacheEncryptionKey&& other) noexcept {
  if (this != &other) {
    wipe();
    material_ = std::move(other.material_);
    other.material_.clear();
    iterations_ = other.iterations_;
  }
  return *this;
}

CacheEncryptionKey::~CacheEncryptionKey() { wipe(); }

void CacheEncryptionKey::wipe() noexcept {
  if (!material_.empty()) OPENSSL_cleanse(material_.data(), material_.size());
  material_.clear();
}

std::ostream& operator<<(std::ostream& os, const CacheEncryptionKey& key) {
  if (key.is_passphrase()) return os << "CacheEncryptionKey{passphrase, " << key.iterations() << " iterations}";
  return os << "CacheEncryptionKey{raw}";
}

}  // namespace credkit
