// HTTP-dates: one strict parser for the three RFC 7231 forms, bounded to system_clock's range.
#include "sources/http/http_date.hpp"

#include "sources/common/text.hpp"

#include <array>
#include <cstdio>

namespace credkit::detail {
namespace {

constexpr std::array<std::string_view, 7> kDays = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 7> kLongDays = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                       "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// The longest form is RFC 850's "Wednesday, 06-Nov-94 08:49:37 GMT" (33 characters).
constexpr std::size_t kMaxLength = 40;

bool leap_year(int y) noexcept { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) noexcept {
  static constexpr std::array<int, 12> kDaysIn = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return kDaysIn[static_cast<std::size_t>(m - 1)] + (m == 2 && leap_year(y) ? 1 : 0);
}

// 0 = Sunday. 1970-01-01 was a Thursday.
int weekday_of(std::int64_t days) noexcept { return static_cast<int>(((days % 7) + 7 + 4) % 7); }

// A cursor over the text that never reads past its end.
struct Cursor {
  std::string_view s;
  std::size_t pos = 0;

  bool literal(std::string_view lit) noexcept {
    if (s.substr(pos, lit.size()) != lit) return false;
    pos += lit.size();
    return true;
  }
  bool digits(std::size_t n, int& out) noexcept {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const char c = s[pos + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    pos += n;
    out = v;
    return true;
  }
  // One of `names` (exact, case-sensitive); its index, or -1.
  template <std::size_t N>
  int name(const std::array<std::string_view, N>& names) noexcept {
    for (std::size_t i = 0; i < N; ++i) {
      if (literal(names[i])) return static_cast<int>(i);
    }
    return -1;
  }
  // "HH:MM:SS"
  bool time_of_day(int& h, int& mi, int& sec) noexcept {
    return digits(2, h) && literal(":") && digits(2, mi) && literal(":") && digits(2, sec);
  }
  bool at_end() const noexcept { return pos == s.size(); }
};

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The RFC 850 two-digit year: the year ending in `yy` that is at most 50 years after `current`.
int expand_two_digit_year(int yy, int current) noexcept {
  int year = current - current % 100 + yy;
  if (year > current + 50) year -= 100;
  if (year + 100 <= current + 50) year += 100;
  return year;
}

}  // namespace

std::optional<std::int64_t> parse_http_date_seconds(std::string_view text, int current_year) noexcept {
  text = trim_ows(text);
  if (text.size() < 24 || text.size() > kMaxLength) return std::nullopt;
  Cursor c{text};
  int weekday = -1, day = 0, month = -1, year = 0, hour = 0, minute = 0, second = 0;
  if (text[3] == ',') {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    weekday = c.name(kDays);
    if (weekday < 0 || !c.literal(", ") || !c.digits(2, day) || !c.literal(" ")) return std::nullopt;
    month = c.name(kMonths);
    if (month < 0 || !c.literal(" ") || !c.digits(4, year) || !c.literal(" ") || !c.time_of_day(hour, minute, second) ||
        !c.literal(" GMT") || !c.at_end()) {
      return std::nullopt;
    }
  } else if (text[3] == ' ') {
    // asctime: "Sun Nov  6 08:49:37 1994"
    weekday = c.name(kDays);
    if (weekday < 0 || !c.literal(" ")) return std::nullopt;
    month = c.name(kMonths);
    if (month < 0 || !c.literal(" ")) return std::nullopt;
    if (c.literal(" ")) {
      if (!c.digits(1, day)) return std::nullopt;
    } else if (!c.digits(2, day)) {
      return std::nullopt;
    }
    if (!c.literal(" ") || !c.time_of_day(hour, minute, second) || !c.literal(" ") || !c.digits(4, year) ||
        !c.at_end()) {
      return std::nullopt;
    }
  } else {
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
    weekday = c.name(kLongDays);
    int yy = 0;
    if (weekday < 0 || !c.literal(", ") || !c.digits(2, day) || !c.literal("-")) return std::nullopt;
    month = c.name(kMonths);
    if (month < 0 || !c.literal("-") || !c.digits(2, yy) || !c.literal(" ") || !c.time_of_day(hour, minute, second) ||
        !c.literal(" GMT") || !c.at_end()) {
      return std::nullopt;
    }
    year = expand_two_digit_year(yy, current_year);
    if (year < 0 || year > 9999) return std::nullopt;
  }
  ++month;  // 1-based from here
  if (day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59) return std::nullopt;
  if (second == 60 && hour == 23 && minute == 59) {
    second = 59;  // a leap second: POSIX time has none, the second before is the closest
  } else if (second > 59) {
    return std::nullopt;
  }
  const std::int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  if (weekday_of(days) != weekday) return std::nullopt;
  return days * 86400 + hour * 3600 + minute * 60 + second;
}

std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text,
                                                                     int current_year) noexcept {
  const auto seconds = parse_http_date_seconds(text, current_year);
  if (!seconds || *seconds < 0 || *seconds > kMaxHttpDateSeconds) return std::nullopt;
  // In range: seconds * 1e9 fits system_clock's 64-bit nanoseconds.
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::seconds(*seconds)));
}

std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text) noexcept {
  using namespace std::chrono;
  const year_month_day today{floor<days>(system_clock::now())};
  return parse_http_date(text, static_cast<int>(today.year()));
}

std::string format_http_date(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  // Whole seconds (floor) in a 64-bit seconds count: no overflow anywhere in system_clock's range.
  const auto secs = floor<seconds>(time_point_cast<nanoseconds>(t));
  const auto day_point = floor<days>(secs);
  const year_month_day ymd{day_point};
  const hh_mm_ss hms{secs - day_point};
  const weekday wd{day_point};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02u %s %04d %02d:%02d:%02d GMT", kDays[wd.c_encoding()].data(),
                static_cast<unsigned>(ymd.day()), kMonths[static_cast<unsigned>(ymd.month()) - 1].data(),
                static_cast<int>(ymd.year()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
  return buf;
}

}  // namespace credkit::detail
