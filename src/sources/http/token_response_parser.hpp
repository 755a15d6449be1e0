// credkit internal — reading a token service's answer (plain text or JSON) into a token.
#pragma once

#include <credkit/sources/http_token_response.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace credkit::detail {

/// A token and, when the answer said so, its expiry (else read it from the token).
struct ParsedTokenResponse {
  std::string token;
  std::optional<std::chrono::system_clock::time_point> expires_on;
};

/// Reads `body` as described by `format`. `now` anchors `seconds_from_now` and the expiry check:
/// in a credential's fetch it is service time (the response's `Date`, see service_time.hpp).
/// Throws `Error`: `invalid_response` (not JSON, field missing or of the wrong type, bad
/// timestamp; the message names the field, never its token value) or `invalid_token`
/// (empty token, already expired).
ParsedTokenResponse parse_token_response(const HttpTokenResponse& format, std::string_view body,
                                         std::chrono::system_clock::time_point now);

}  // namespace credkit::detail
