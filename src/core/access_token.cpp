#include <credkit/core/access_token.hpp>
#include <credkit/core/error.hpp>
#include <credkit/core/log.hpp>
#include <credkit/core/token_handle.hpp>

#include <array>
#include <ctime>
#include <string_view>
#include <ostream>

namespace credkit {

std::string format_time(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto secs = floor<seconds>(t);
  const auto ms = duration_cast<milliseconds>(t - secs).count();
  const std::time_t tt = system_clock::to_time_t(secs);
  std::tm tm{};
  if (!gmtime_r(&tt, &tm)) return "<time out of range>";
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(buf, n);
  if (ms != 0) {
    char frac[24];
    std::snprintf(frac, sizeof frac, ".%03lld", static_cast<long long>(ms));
    out += frac;
  }
  out += 'Z';
  return out;
}

namespace {

// The bytes a token may hold (RFC 6750 b64token characters and '='), as a table: every
// created credential checks its token, and a 1 KB token through a chain of comparisons per
// byte was a visible part of creation.
constexpr auto token_bytes = [] {
  std::array<bool, 256> t{};
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (unsigned char c : std::string_view("-._~+/=")) t[c] = true;
  return t;
}();

bool is_token_byte(char c) { return token_bytes[static_cast<unsigned char>(c)]; }

// The position of the first byte a token may not hold, or size().
std::size_t first_foreign_byte(std::string_view token) noexcept {
  std::size_t i = 0;
  // Eight bytes a step, accumulated without branches: the common case (a valid token) stays
  // one predictable loop.
  for (; i + 8 <= token.size(); i += 8) {
    bool ok = true;
    for (std::size_t k = 0; k < 8; ++k) ok &= is_token_byte(token[i + k]);
    if (!ok) break;
  }
  while (i < token.size() && is_token_byte(token[i])) ++i;
  return i;
}

}  // namespace

std::error_code check_token_text(std::string_view token, std::string* why) noexcept {
  const auto fail = [&](auto&& make_reason) {
    if (why) {
      try {
        *why = make_reason();
      } catch (...) {
      }
    }
    return make_error_code(errc::invalid_token);
  };
  if (token.empty()) return fail([] { return std::string("the token is empty"); });
  if (token.front() == '=') return fail([] { return std::string("it starts with '='"); });
  if (const std::size_t i = first_foreign_byte(token); i != token.size()) {
    return fail([&] {
      return "unexpected character (code " + std::to_string(static_cast<unsigned char>(token[i])) +
             ") at position " + std::to_string(i) + "; a token holds only letters, digits and -._~+/=";
    });
  }
  if (token.size() < min_token_length) {
    return fail([&] {
      return "it is too short (" + std::to_string(token.size()) + " characters; a token has at least " +
             std::to_string(min_token_length) + ")";
    });
  }
  if (token.size() > max_token_length) {
    return fail([&] {
      return "it is too long (" + std::to_string(token.size()) + " characters; at most " +
             std::to_string(max_token_length) + ")";
    });
  }
  return {};
}

std::string to_string(const AccessToken& token) {
  return "AccessToken{" + redact(token.token) + ", expires " + format_time(token.expires_on) + "}";
}

std::ostream& operator<<(std::ostream& os, const AccessToken& token) { return os << to_string(token); }

TokenHandle TokenHandle::make(AccessToken token) {
  return TokenHandle(std::make_shared<const AccessToken>(std::move(token)));
}

std::ostream& operator<<(std::ostream& os, const TokenHandle& token) {
  if (!token) return os << "TokenHandle{empty}";
  return os << *token;
}

}  // namespace credkit
