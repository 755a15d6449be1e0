#include "sources/common/crypto.hpp"

#include <credkit/core/error.hpp>

#include "core/base64.hpp"

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

namespace credkit::detail {

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
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
