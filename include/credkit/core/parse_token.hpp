// credkit — reading a token's expiry from the token itself.
#pragma once

#include <credkit/core/access_token.hpp>

#include <chrono>
#include <optional>
#include <string_view>
#include <system_error>

namespace credkit {

/// How `parse_token` treats tokens whose expiry it cannot read.
struct ParseOptions {
  /// Lifetime given to a plausible token whose expiry cannot be decoded (a JWE, an opaque
  /// string). One warning is logged when it is used.
  std::chrono::seconds fallback_lifetime{std::chrono::minutes(10)};
  /// "Now" for the fallback lifetime; unset: the system clock.
  std::optional<std::chrono::system_clock::time_point> now;
};

/// Reads a token's expiry.
///
/// - A JWS (three base64url segments, padded or not): the payload's `exp` claim, an integer
///   or fractional count of seconds since the Unix epoch.
/// - An Agora AccessToken2 ("007…"): issue time plus its expiry.
/// - A JWE (five segments with a decodable header), a JWS without `exp`, or another opaque
///   but plausible token (16+ characters of the HTTP token68 alphabet): now plus
///   `fallback_lifetime`, with one warning log.
/// - Anything else (empty, too short, stray characters, undecodable segments, a negative,
///   non-numeric or out-of-range `exp`): throws `Error` with `errc::invalid_token` and a
///   message that says what is wrong (never the token itself).
AccessToken parse_token(std::string_view token, const ParseOptions& options = {});

/// As above, but reports failure through `ec` (and returns an empty token) instead of throwing.
AccessToken parse_token(std::string_view token, std::error_code& ec, const ParseOptions& options = {}) noexcept;

}  // namespace credkit
