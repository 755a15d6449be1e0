// credkit — reading an Agora AccessToken2 ("007…") back: app id, times and services.
#pragma once

#include <credkit/sources/agora_service.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace credkit::agora {

/// One service granted by a token.
struct ServiceInfo {
  /// The service type number (see `ServiceType`); unknown types are reported as read.
  std::uint16_t type = 0;
  /// Privilege number -> seconds after issue time it lasts.
  std::map<std::uint16_t, std::uint32_t> privileges;
  /// RTC: the channel name; empty otherwise.
  std::string channel_name;
  /// RTC uid, RTM user id, Chat user UUID (empty in a Chat app token).
  std::string user_id;
};

/// What an AccessToken2 says about itself. The signature is not verified (that needs the
/// app certificate; see `verify_access_token`).
struct TokenInfo {
  std::string app_id;          ///< The Agora app id the token is for.
  std::uint32_t issue_ts = 0;  ///< Seconds since the Unix epoch.
  std::uint32_t expire = 0;    ///< Seconds after `issue_ts` the token is valid.
  std::uint32_t salt = 0;      ///< The random salt mixed into the signing key.
  std::chrono::system_clock::time_point issued_at;   ///< `issue_ts` as a time point.
  std::chrono::system_clock::time_point expires_on;  ///< `issue_ts + expire`.
  /// The services, in token order. Parsing stops at a service type it does not know (its
  /// layout is unknown); `services_complete` then is false.
  std::vector<ServiceInfo> services;
  /// False when parsing stopped at an unknown service type.
  bool services_complete = true;
};

/// Parses an AccessToken2. Throws `Error(errc::invalid_token)` naming what is wrong (not a
/// "007" token, bad base64, not zlib data, truncated field, oversized input) — never
/// echoing the token. Bounded work and memory on any input.
TokenInfo parse_access_token(std::string_view token);

/// True when `token` is a well-formed AccessToken2 whose signature matches `app_certificate`
/// (compared in constant time).
bool verify_access_token(std::string_view token, std::string_view app_certificate) noexcept;

}  // namespace credkit::agora
