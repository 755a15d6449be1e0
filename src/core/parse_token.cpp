#include <credkit/core/error.hpp>
#include <credkit/core/log.hpp>
#include <credkit/core/parse_token.hpp>

#include "core/base64.hpp"
#include "core/saturating_time.hpp"
#include "core/secret_scrubber.hpp"
#include "core/token_parsers.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <vector>

namespace credkit {
namespace {

using Clock = std::chrono::system_clock;

// libstdc++'s system_clock counts nanoseconds in 64 bits: it ends in 2262. Expiries past this
// point (a token claiming to last until the year 3000) are clamped to it rather than overflowing.
constexpr double kMaxExpSeconds = 9'000'000'000.0;  // 2255-03-14

[[noreturn]] void invalid(const std::string& what) { throw_error(errc::invalid_token, "invalid token: " + what); }

Clock::time_point now_of(const ParseOptions& options) { return options.now.value_or(Clock::now()); }

AccessToken with_fallback(std::string_view token, const ParseOptions& options, const std::string& why) {
  const auto lifetime = options.fallback_lifetime;
  log(LogLevel::warning, "token " + redact(token) + ": " + why + "; assuming it expires in " +
                             std::to_string(lifetime.count()) + " s (ParseOptions::fallback_lifetime)");
  return AccessToken{std::string(token), detail::add_sat(now_of(options), lifetime), std::nullopt};
}

nlohmann::json decode_json_segment(std::string_view segment, const char* name) {
  auto bytes = detail::base64url_decode(segment);
  if (!bytes) invalid(std::string("the JWT ") + name + " is not valid base64url");
  auto json = nlohmann::json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) invalid(std::string("the JWT ") + name + " is not a JSON object");
  return json;
}

// A NumericDate claim (`exp`, `iat`): seconds since the epoch, integer or fractional.
Clock::time_point claim_to_time(const nlohmann::json& exp, const char* name) {
  double seconds = 0;
  if (exp.is_number_unsigned()) {
    seconds = static_cast<double>(exp.get<std::uint64_t>());
  } else if (exp.is_number_integer()) {
    seconds = static_cast<double>(exp.get<std::int64_t>());
  } else if (exp.is_number_float()) {
    seconds = exp.get<double>();
  } else {
    invalid(std::string("the JWT '") + name + "' claim is not a number");
  }
  if (!std::isfinite(seconds) || seconds < 0) invalid(std::string("the JWT '") + name + "' claim is negative");
  if (seconds > kMaxExpSeconds) {
    log(LogLevel::warning, std::string("token '") + name + "' is beyond the representable range; clamped to 2255-03-14");
    seconds = kMaxExpSeconds;
  }
  const auto ms = static_cast<std::int64_t>(std::floor(seconds * 1000.0));
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(ms)));
}

std::vector<std::string_view> split_dots(std::string_view s) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    auto dot = s.find('.', start);
    if (dot == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, dot - start));
    start = dot + 1;
  }
}

AccessToken parse_throwing(std::string_view token, const ParseOptions& options) {
  if (std::string why; check_token_text(token, &why)) invalid(why);
  detail::remember_secret(token);  // the token gate (token_admission.hpp): never in a diagnostic
  if (auto agora = detail::try_parse_agora_token(token)) return *agora;

  if (token.find('.') != std::string_view::npos) {
    const auto parts = split_dots(token);
    if (parts.size() == 3) {
      const auto header = decode_json_segment(parts[0], "header");
      (void)header;
      const auto payload = decode_json_segment(parts[1], "payload");
      if (!detail::base64url_decode(parts[2])) invalid("the JWT signature is not valid base64url");
      auto it = payload.find("exp");
      if (it == payload.end()) return with_fallback(token, options, "the JWT has no 'exp' claim");
      AccessToken parsed{std::string(token), claim_to_time(*it, "exp"), std::nullopt};
      // `iat` only refines the lifetime (R1): one that is not a plausible issue time before
      // the expiry is ignored rather than failing a token whose expiry is readable.
      if (auto iat = payload.find("iat"); iat != payload.end() && iat->is_number()) {
        try {
          const auto issued = claim_to_time(*iat, "iat");
          if (issued < parsed.expires_on) parsed.issued_at = issued;
        } catch (const Error&) {
        }
      }
      return parsed;
    }
    if (parts.size() == 5) {
      // A JWE: its claims are encrypted, so only the header can be checked.
      const auto header = decode_json_segment(parts[0], "header");
      (void)header;
      return with_fallback(token, options, "the token is an encrypted JWT (JWE) whose expiry cannot be read");
    }
    invalid("it has " + std::to_string(parts.size()) +
            " dot-separated segments; a JWT has 3 (signed) or 5 (encrypted)");
  }
  return with_fallback(token, options, "the token is opaque (not a JWT)");
}

}  // namespace

AccessToken parse_token(std::string_view token, const ParseOptions& options) { return parse_throwing(token, options); }

AccessToken parse_token(std::string_view token, std::error_code& ec, const ParseOptions& options) noexcept {
  ec.clear();
  try {
    return parse_throwing(token, options);
  } catch (const std::system_error& e) {
    ec = e.code();
  } catch (...) {
    ec = make_error_code(errc::invalid_token);
  }
  return {};
}

}  // namespace credkit
