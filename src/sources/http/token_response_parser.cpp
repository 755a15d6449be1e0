// Reading token services' answers: plain text, or JSON with configurable dotted field paths.
#include "sources/http/token_response_parser.hpp"

#include "core/saturating_time.hpp"
#include "sources/http/http_client.hpp"

#include <credkit/core/access_token.hpp>
#include <credkit/core/error.hpp>

#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>

namespace credkit::detail {
namespace {

using std::chrono::system_clock;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
long long civil_days(long long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long long>(doe) - 719468;
}

bool leap(long long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

const nlohmann::json* find_path(const nlohmann::json& root, const std::string& path, std::string& missing_at) {
  const nlohmann::json* node = &root;
  std::size_t start = 0;
  while (true) {
    const auto dot = path.find('.', start);
    const auto key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object()) {
      missing_at = path.substr(0, start ? start - 1 : 0);
      return nullptr;
    }
    auto it = node->find(key);
    if (it == node->end()) {
      missing_at = path.substr(0, dot);
      return nullptr;
    }
    node = &*it;
    if (dot == std::string::npos) return node;
    start = dot + 1;
  }
}

std::string type_name(const nlohmann::json& j) { return j.type_name(); }

// system_clock counts nanoseconds in 64 bits: 1677 to 2262. Expiries outside are clamped, not
// converted (that overflows): before 1970 to the epoch (an expired token, reported as such),
// after 2255-03-14 to that date, as parse_token clamps a JWT's 'exp'.
constexpr double kMaxExpirySeconds = 9'000'000'000.0;

system_clock::time_point from_unix_seconds(double seconds) {
  if (!(seconds > 0)) return system_clock::time_point{};
  if (seconds > kMaxExpirySeconds) seconds = kMaxExpirySeconds;
  return system_clock::time_point(std::chrono::duration_cast<system_clock::duration>(std::chrono::duration<double>(seconds)));
}

std::optional<double> as_number(const nlohmann::json& j) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const auto s = trim(j.get_ref<const std::string&>());
    if (s.empty()) return std::nullopt;
    std::size_t used = 0;
    try {
      const double v = std::stod(s, &used);
      if (used == s.size()) return v;
    } catch (...) {
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<system_clock::time_point> parse_http_timestamp(std::string_view s) {
  std::size_t i = 0;
  auto digits = [&](std::size_t n, int& out) {
    if (i + n > s.size()) return false;
    out = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const char c = s[i + k];
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    i += n;
    return true;
  };
  auto expect = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(4, year) || !expect('-') || !digits(2, month) || !expect('-') || !digits(2, day)) return std::nullopt;
  if (i >= s.size() || (s[i] != 'T' && s[i] != 't' && s[i] != ' ')) return std::nullopt;
  ++i;
  if (!digits(2, hour) || !expect(':') || !digits(2, minute) || !expect(':') || !digits(2, second)) return std::nullopt;
  static constexpr int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || day > mdays[month - 1] + (month == 2 && leap(year)) || hour > 23 ||
      minute > 59 || second > 60) {
    return std::nullopt;
  }
  long long nanos = 0;
  if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
    ++i;
    const std::size_t first = i;
    long long scale = 100'000'000;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      nanos += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == first) return std::nullopt;
  }
  long long offset_minutes = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    const int sign = s[i] == '-' ? -1 : 1;
    ++i;
    int oh = 0, om = 0;
    if (!digits(2, oh)) return std::nullopt;
    if (expect(':')) {
      if (!digits(2, om)) return std::nullopt;
    } else if (i < s.size()) {
      if (!digits(2, om)) return std::nullopt;
    }
    if (oh > 23 || om > 59) return std::nullopt;
    offset_minutes = sign * (oh * 60 + om);
  } else {
    return std::nullopt;  // a time without offset is ambiguous
  }
  if (i != s.size()) return std::nullopt;
  const long long secs = civil_days(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
                         hour * 3600 + minute * 60 + second - offset_minutes * 60;
  if (secs < 0 || secs >= static_cast<long long>(kMaxExpirySeconds)) return from_unix_seconds(static_cast<double>(secs));
  return system_clock::time_point(std::chrono::duration_cast<system_clock::duration>(
      std::chrono::seconds(secs) + std::chrono::nanoseconds(nanos)));
}

ParsedTokenResponse parse_token_response(const HttpTokenResponse& format, std::string_view body,
                                         system_clock::time_point now) {
  ParsedTokenResponse out;
  if (format.format == HttpTokenResponse::Format::plain_text) {
    out.token = trim(body);
    if (out.token.empty()) throw_error(errc::invalid_token, "the token service answered with an empty body");
    return out;
  }

  nlohmann::json root;
  try {
    root = nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is a position, safe to show; the body itself may hold secrets.
    throw_error(errc::invalid_response, "the token service's answer is not valid JSON (error at byte " +
                                            std::to_string(e.byte) + " of " + std::to_string(body.size()) + ")");
  } catch (const nlohmann::json::exception& e) {
    // Not a syntax error: e.g. a number too large for a double (id 406). The text is the
    // library's and may quote the input, so only its id is shown.
    throw_error(errc::invalid_response, "the token service's answer is not usable JSON (JSON library error " +
                                            std::to_string(e.id) + ", e.g. a number out of range)");
  }
  if (!root.is_object()) {
    throw_error(errc::invalid_response,
                "the token service's answer is a JSON " + type_name(root) + ", expected an object");
  }

  std::string missing;
  const auto* token = find_path(root, format.token_field, missing);
  if (!token) {
    throw_error(errc::invalid_response, "the token service's answer has no field '" + format.token_field + "'" +
                                            (missing != format.token_field && !missing.empty()
                                                 ? " ('" + missing + "' is missing or not an object)"
                                                 : std::string()));
  }
  if (!token->is_string()) {
    throw_error(errc::invalid_response, "field '" + format.token_field + "' of the token service's answer is a " +
                                            type_name(*token) + ", expected a string");
  }
  out.token = trim(token->get_ref<const std::string&>());
  if (out.token.empty()) throw_error(errc::invalid_token, "field '" + format.token_field + "' holds an empty token");

  if (format.expiry == HttpTokenResponse::Expiry::from_token) return out;
  const auto& field = format.expiry_field;
  const auto* expiry = find_path(root, field, missing);
  if (!expiry || expiry->is_null()) {
    throw_error(errc::invalid_response, "the token service's answer has no field '" + field + "' (the expiry)");
  }
  if (format.expiry == HttpTokenResponse::Expiry::timestamp) {
    if (expiry->is_string()) {
      const auto& text = expiry->get_ref<const std::string&>();
      if (auto t = parse_http_timestamp(trim(text))) {
        out.expires_on = *t;
      } else if (auto n = as_number(*expiry); n && std::isfinite(*n) && *n > 0 && *n < 32503680000.0) {
        out.expires_on = from_unix_seconds(*n);
      } else {
        throw_error(errc::invalid_response, "field '" + field + "' is not an ISO 8601 timestamp with a UTC offset: '" +
                                                redact_secrets(text.substr(0, 48)) + "'");
      }
    } else if (auto n = as_number(*expiry); n && std::isfinite(*n) && *n > 0 && *n < 32503680000.0) {
      out.expires_on = from_unix_seconds(*n);
    } else {
      throw_error(errc::invalid_response, "field '" + field + "' is a " + type_name(*expiry) +
                                              ", expected an ISO 8601 timestamp or Unix seconds");
    }
  } else {
    const auto n = as_number(*expiry);
    if (!n || !std::isfinite(*n)) {
      throw_error(errc::invalid_response, "field '" + field + "' is a " + type_name(*expiry) +
                                              ", expected a number of seconds");
    }
    if (*n <= 0) {
      // The value is shown only while it fits a long long (converting -1e29 would be UB).
      const std::string shown = *n > -1e15 ? std::to_string(static_cast<long long>(*n)) + " s" : "a huge negative number";
      throw_error(errc::invalid_token, "field '" + field + "' says the token is already expired (" + shown + ")");
    }
    if (*n > 10.0 * 365 * 86400) {
      throw_error(errc::invalid_response, "field '" + field + "' is implausibly large (more than 10 years)");
    }
    out.expires_on = add_sat(now, saturate_cast<system_clock::duration>(std::chrono::duration<double>(*n)));
  }
  if (*out.expires_on <= now) {
    throw_error(errc::invalid_token, "the token service handed out a token that already expired (field '" + field +
                                         "' = " + format_time(*out.expires_on) + ")");
  }
  return out;
}

}  // namespace credkit::detail
