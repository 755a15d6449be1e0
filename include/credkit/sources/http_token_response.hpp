// credkit — where a token service's answer keeps the token and its expiry.
#pragma once

#include <string>
#include <utility>

namespace credkit {

/// Describes the body a token service answers with, for `HttpTokenSource`.
///
/// Either the whole body is the token (plain text), or it is a JSON object holding the token
/// and, optionally, its expiry at configurable (dotted) paths. Presets cover the common services.
struct HttpTokenResponse {
  /// The body's shape.
  enum class Format {
    plain_text,  ///< The body is the token (surrounding white space ignored).
    json,        ///< The body is a JSON object; see `token_field` and `expiry_field`.
  };
  /// How the expiry is given.
  enum class Expiry {
    from_token,        ///< Not given: read from the token itself with `parse_token`.
    timestamp,         ///< ISO 8601 (`2026-11-23T10:00:00Z`, fractions and offsets allowed) or Unix seconds.
    seconds_from_now,  ///< A lifetime in seconds from receipt (OAuth `expires_in`), number or numeric string.
  };

  /// The body's shape.
  Format format = Format::plain_text;
  /// JSON path of the token string, dotted for nested objects (`accessToken.token`).
  std::string token_field;
  /// JSON path of the expiry (dotted); empty with `Expiry::from_token`.
  std::string expiry_field;
  /// How `expiry_field` is to be read.
  Expiry expiry = Expiry::from_token;

  /// The body is the token; its expiry is read from it.
  static HttpTokenResponse plain_text() { return {}; }

  /// A JSON body with the token at `token_field` and the expiry at `expiry_field`
  /// (read as `expiry`; leave both out to read it from the token).
  static HttpTokenResponse json(std::string token_field, std::string expiry_field = {},
                                Expiry expiry = Expiry::from_token) {
    return {Format::json, std::move(token_field), std::move(expiry_field), expiry};
  }

  /// Azure Communication Services style: `{"token": "...", "expiresOn": "2026-11-23T10:00:00Z"}`.
  static HttpTokenResponse acs() { return json("token", "expiresOn", Expiry::timestamp); }

  /// OAuth 2.0 style: `{"access_token": "...", "expires_in": 3599}`.
  static HttpTokenResponse oauth() { return json("access_token", "expires_in", Expiry::seconds_from_now); }

  /// Azure Web PubSub style: `{"token": "..."}` (expiry from the JWT itself).
  static HttpTokenResponse web_pubsub() { return json("token"); }
};

}  // namespace credkit
