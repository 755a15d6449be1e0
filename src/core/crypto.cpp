#include "core/crypto.hpp"

#include <credkit/core/error.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <climits>

namespace credkit::detail {

void wipe(std::string& secret) noexcept {
  if (secret.capacity() > 0) OPENSSL_cleanse(secret.data(), secret.capacity());
  secret.clear();
}

std::string sha256(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr) != 1) {
    throw_error(errc::crypto_error, "SHA-256 failed (OpenSSL EVP_Digest)");
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

void hmac_sha256(std::span<const unsigned char> key, std::string_view message, std::span<unsigned char, 32> out) {
  // OpenSSL rejects a null key pointer even for an empty key.
  static const unsigned char empty = 0;
  const unsigned char* key_ptr = key.empty() ? &empty : key.data();
  const auto* data = message.empty() ? &empty : reinterpret_cast<const unsigned char*>(message.data());
  std::size_t len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key_ptr, key.size(), data, message.size(), out.data(),
                out.size(), &len) == nullptr ||
      len != out.size()) {
    throw_error(errc::crypto_error, "HMAC-SHA256 failed (OpenSSL EVP_Q_mac)");
  }
}

std::string hmac_sha256(std::string_view key, std::string_view message) {
  std::array<unsigned char, 32> out{};
  hmac_sha256(std::span(reinterpret_cast<const unsigned char*>(key.data()), key.size()), message, out);
  std::string result(reinterpret_cast<const char*>(out.data()), out.size());
  OPENSSL_cleanse(out.data(), out.size());  // the MAC is often a derived key
  return result;
}

void random_bytes(std::span<unsigned char> out) {
  while (!out.empty()) {
    const auto chunk = std::min<std::size_t>(out.size(), INT_MAX);
    if (RAND_bytes(out.data(), static_cast<int>(chunk)) != 1) {
      throw_error(errc::crypto_error, "RAND_bytes failed (the OpenSSL CSPRNG is not available)");
    }
    out = out.subspan(chunk);
  }
}

}  // namespace credkit::detail
