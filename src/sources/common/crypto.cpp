#include "sources/common/crypto.hpp"

#include <credkit/core/error.hpp>

#include "core/base64.hpp"

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace credkit::detail {

std::string sha256(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr) != 1) {
    throw_error(errc::crypto_error, "SHA-256 failed (OpenSSL EVP_Digest)");
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string hmac_sha256(std::string_view key, std::string_view message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // OpenSSL rejects a null key pointer even for an empty key.
  static const unsigned char empty = 0;
  const void* key_ptr = key.empty() ? static_cast<const void*>(&empty) : key.data();
  if (HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
           message.size(), out, &len) == nullptr) {
    throw_error(errc::crypto_error, "HMAC-SHA256 failed (OpenSSL HMAC)");
  }
  std::string result(reinterpret_cast<const char*>(out), len);
  OPENSSL_cleanse(out, sizeof out);
  return result;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void wipe(std::string& secret) noexcept {
  if (secret.capacity() > 0) OPENSSL_cleanse(secret.data(), secret.capacity());
  secret.clear();
}

std::string hs256_jwt(const nlohmann::json& payload, std::string_view key) {
  static const std::string header = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  std::string signing_input = header + "." + base64url_encode(payload.dump());
  std::string mac = hmac_sha256(key, signing_input);
  signing_input += ".";
  signing_input += base64url_encode(mac);
  return signing_input;
}

}  // namespace credkit::detail
