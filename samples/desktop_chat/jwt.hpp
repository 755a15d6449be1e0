// desktop_chat — minting and checking short-lived HS256 JWTs in-process.
//
// A real app gets its tokens from its own token service (which in turn asks ACS, Agora or
// Entra). The demo plays both sides with one shared HMAC key so it runs with no network.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace desktop_chat {

/// Base64url without padding (RFC 7515 section 2).
std::string base64url(std::string_view bytes);

/// Signs and verifies HS256 JWTs with a random key that is wiped on destruction.
class JwtMinter {
 public:
  /// A minter with a random key.
  JwtMinter();
  /// A minter with the given HMAC key (a service whose key outlives one run).
  explicit JwtMinter(std::vector<unsigned char> key);
  ~JwtMinter();
  JwtMinter(const JwtMinter&) = delete;
  JwtMinter& operator=(const JwtMinter&) = delete;

  /// A JWT for `subject` issued now, valid for `lifetime`:
  /// header {"alg":"HS256","typ":"JWT"}, payload {"sub":…,"iat":…,"exp":…,"jti":…}.
  std::string mint(std::string_view subject, std::chrono::seconds lifetime, std::uint64_t serial) const;

  /// True when the signature of `jwt` was made with this key.
  bool signature_ok(std::string_view jwt) const;

 private:
  std::string sign(std::string_view signing_input) const;
  std::vector<unsigned char> key_;
};

}  // namespace desktop_chat
