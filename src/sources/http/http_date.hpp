// credkit internal — HTTP-dates (RFC 7231 §7.1.1.1): the one strict, bounded parser and the
// formatter every source uses (`Date`, `Retry-After`, ACS `x-ms-date`).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace credkit::detail {

/// The last whole second `system_clock` (64-bit nanoseconds) holds: 2262-04-11T23:47:16Z.
inline constexpr std::int64_t kMaxHttpDateSeconds = 9'223'372'036;

/// Seconds since the Unix epoch of a syntactically valid HTTP-date, which may lie outside
/// `system_clock`'s range (years 0000-9999 are accepted here; callers bound the result).
/// Accepts, exactly as RFC 7231 spells them (names case-sensitive, single spaces, "GMT"):
/// - IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT` (what senders must generate);
/// - the obsolete RFC 850 form `Sunday, 06-Nov-94 08:49:37 GMT`, its two-digit year read as
///   the year with those digits at most 50 years after `current_year` (RFC 7231's rule);
/// - the obsolete asctime form `Sun Nov  6 08:49:37 1994`.
/// Surrounding spaces and tabs are ignored. Rejects (nullopt) anything else: a day that the
/// month does not have, hour > 23, minute > 59, second > 59 (except the leap second
/// 23:59:60, read as 23:59:59), a weekday that does not match the date, stray characters.
/// Never reads past `text`, never overflows, allocates nothing.
std::optional<std::int64_t> parse_http_date_seconds(std::string_view text, int current_year) noexcept;

/// A valid HTTP-date (see above) within what `system_clock` holds and not before the epoch:
/// 1970-01-01T00:00:00Z to 2262-04-11T23:47:16Z. Nullopt for anything else.
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text,
                                                                     int current_year) noexcept;

/// As above, with RFC 850 two-digit years read relative to the system clock's current year.
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text) noexcept;

/// `t` (floored to whole seconds) as an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". Every
/// `system_clock` time (1677-2262) has a four-digit year.
std::string format_http_date(std::chrono::system_clock::time_point t);

}  // namespace credkit::detail
