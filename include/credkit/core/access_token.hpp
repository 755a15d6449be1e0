// credkit — the token value type.
#pragma once

#include <chrono>
#include <iosfwd>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace credkit {

/// A bearer token and the wall-clock time it stops being valid.
///
/// Streaming (`operator<<`) and `to_string` print a redacted form (a short prefix, the
/// length and the expiry), never the secret itself.
struct AccessToken {
  /// The token as it goes on the wire (a JWT, an Agora "007" token, an opaque string).
  std::string token;
  /// When the token expires, in the issuer's wall-clock time (the issuer judges validity by
  /// its own clock; the credential compares it with service time, see `TokenCredential::clock_offset`).
  std::chrono::system_clock::time_point expires_on{};
  /// When the token was issued, if known (`parse_token` reads a JWT's `iat` and an Agora
  /// token's issue timestamp). With it, a token's lifetime is `expires_on - issued_at`
  /// rather than what it had left when the credential received it (docs/refresh-semantics.md, R1).
  std::optional<std::chrono::system_clock::time_point> issued_at{};

  /// Equal when both the token string and the expiry are equal.
  friend bool operator==(const AccessToken&, const AccessToken&) = default;
};

/// A redacted description: `AccessToken{eyJhbG…, 1024 chars, expires 2026-11-23T10:00:00Z}`.
std::string to_string(const AccessToken& token);

/// Writes `to_string(token)`: never the secret.
std::ostream& operator<<(std::ostream& os, const AccessToken& token);

/// The shortest token credkit accepts. Real tokens (JWTs, Agora "007" tokens, opaque
/// service tokens) are far longer; a shorter string is an error message or a placeholder.
inline constexpr std::size_t min_token_length = 16;
/// The longest token credkit accepts: 16 KiB, what common HTTP servers allow for one header.
inline constexpr std::size_t max_token_length = 16 * 1024;

/// The one rule every token passes before credkit caches it, hands it out or sends it in a
/// header, whichever path produced it (fetchers, `update_token`, the sources, the caches,
/// `parse_token`): letters, digits and `-._~+/=` (RFC 6750's `b64token` alphabet; `=` may
/// also pad a JWT's segments, but cannot start a token), `min_token_length` to
/// `max_token_length` characters. So no token can carry CR, LF, NUL, spaces or any other
/// byte that would break or inject into a header.
///
/// Returns an empty code when `token` passes, else `errc::invalid_token`; `why`, when
/// given, receives the reason (position and code of a bad character, or the length), never
/// the token itself.
std::error_code check_token_text(std::string_view token, std::string* why = nullptr) noexcept;

/// Formats a wall-clock time as ISO 8601 UTC (`2026-11-23T10:00:00Z`, with milliseconds when non-zero).
std::string format_time(std::chrono::system_clock::time_point t);

}  // namespace credkit
