// credkit detail — URL, connection-string and date helpers shared by the token sources.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace credkit::detail {

/// Percent-encodes everything but RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~).
std::string url_encode(std::string_view text);

/// Decodes %XX escapes and, when `plus_is_space`, '+' as a space. Nullopt on a bad escape.
std::optional<std::string> url_decode(std::string_view text, bool plus_is_space);

/// An application/x-www-form-urlencoded body from name/value pairs.
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields);

/// Pieces of an absolute http(s)/ws(s) URL.
struct UrlParts {
  std::string scheme;          ///< Lower-cased: "https", "http", ...
  std::string host;            ///< As written (IPv6 literals keep their brackets).
  std::optional<std::uint16_t> port;  ///< Only when written in the URL.
  std::string path;            ///< Starts with '/', "/" when absent. Excludes the query.
  std::string query;           ///< Without the '?', may be empty.
  /// host[:port] as it goes in the Host header (port only when written).
  std::string authority() const;
};

/// Parses an absolute URL "scheme://host[:port][/path][?query]"; nullopt when malformed
/// (no scheme, empty host, bad port, user-info, fragment characters in the authority).
std::optional<UrlParts> parse_url(std::string_view url);

/// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b) noexcept;

/// Trims ASCII spaces and tabs on both ends.
std::string_view trim(std::string_view s) noexcept;

/// Splits "Key=Value;Key2=Value2;" into pairs (keys trimmed, values trimmed; a value may
/// contain '='). Nullopt when a non-empty segment has no '=' or an empty key. The caller
/// owns naming errors (the text may contain a key and must never be echoed).
std::optional<std::vector<std::pair<std::string, std::string>>> split_connection_string(std::string_view text);

// HTTP-dates (RFC 1123 / IMF-fixdate): sources/http/http_date.hpp.

/// The one parser of ISO 8601 / RFC 3339 timestamps from outside (ACS `expiresOn`, token
/// services' expiry fields): "2026-11-23T10:00:00Z", "2023-10-10T21:39:39.3244584+00:00",
/// "2030-01-01 10:00:00-0530" (`T`, `t` or space; any number of fraction digits, at most 30;
/// a zone is required: 'Z', ±hh, ±hh:mm or ±hhmm). Strict: nothing but white space around,
/// real calendar dates. Instants before 1970 give the epoch (long expired); instants past
/// 2255-03-14 (beyond system_clock) are clamped to it. Nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text);

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept;

}  // namespace credkit::detail
