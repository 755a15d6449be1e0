// Reading token services' answers: plain text, or JSON with configurable dotted field paths.
#include "sources/http/token_response_parser.hpp"

#include "core/saturating_time.hpp"
#include "core/strict_number.hpp"
#include "core/token_admission.hpp"
#include "sources/common/text.hpp"
#include "sources/http/http_client.hpp"

#include <credkit/core/access_token.hpp>
#include <credkit/core/error.hpp>

#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>

namespace credkit::detail {
namespace {

using std::chrono::system_clock;

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

// A JSON number, or a string holding one in JSON's own grammar (strict_number.hpp): not hex,
// not "inf", not " 12".
std::optional<double> as_number(const nlohmann::json& j) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) return parse_json_number(j.get_ref<const std::string&>());
  return std::nullopt;
}

}  // namespace

ParsedTokenResponse parse_token_response(const HttpTokenResponse& format, std::string_view body,
                                         system_clock::time_point now) {
  ParsedTokenResponse out;
  if (format.format == HttpTokenResponse::Format::plain_text) {
    out.token = std::string(trim(body));
    if (out.token.empty()) throw_error(errc::invalid_token, "the token service answered with an empty body");
    admit_token_text(out.token, "the token service's answer");
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
  out.token = token->get<std::string>();  // exact: a JSON string has no framing white space to trim
  if (out.token.empty()) throw_error(errc::invalid_token, "field '" + format.token_field + "' holds an empty token");
  admit_token_text(out.token, "field '" + format.token_field + "' of the token service's answer");

  if (format.expiry == HttpTokenResponse::Expiry::from_token) return out;
  const auto& field = format.expiry_field;
  const auto* expiry = find_path(root, field, missing);
  if (!expiry || expiry->is_null()) {
    throw_error(errc::invalid_response, "the token service's answer has no field '" + field + "' (the expiry)");
  }
  if (format.expiry == HttpTokenResponse::Expiry::timestamp) {
    if (expiry->is_string()) {
      const auto& text = expiry->get_ref<const std::string&>();
      if (auto t = parse_iso8601(trim(text))) {
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
