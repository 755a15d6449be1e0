// credkit detail — constant-time comparison, key material and HS256 JWTs shared by the sources
// (hashing, HMAC and wiping: core/crypto.hpp).
#pragma once

#include "core/crypto.hpp"

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>

namespace credkit::detail {

/// Compares two byte strings in time independent of where they differ (CRYPTO_memcmp).
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

/// A string holding key material: wiped when destroyed or reassigned.
class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string value) noexcept : value_(std::move(value)) {}
  SecretString(const SecretString& other) : value_(other.value_) {}
  SecretString(SecretString&& other) noexcept : value_(std::move(other.value_)) { wipe(other.value_); }
  SecretString& operator=(const SecretString& other) {
    if (this != &other) {
      wipe(value_);
      value_ = other.value_;
    }
    return *this;
  }
  SecretString& operator=(SecretString&& other) noexcept {
    if (this != &other) {
      wipe(value_);
      value_ = std::move(other.value_);
      wipe(other.value_);
    }
    return *this;
  }
  ~SecretString() { wipe(value_); }

  const std::string& get() const noexcept { return value_; }
  bool empty() const noexcept { return value_.empty(); }

 private:
  std::string value_;
};

/// A compact JWS signed with HS256: base64url(header).base64url(payload).base64url(HMAC).
/// The header is {"alg":"HS256","typ":"JWT"}.
std::string hs256_jwt(const nlohmann::json& payload, std::string_view key);

}  // namespace credkit::detail
