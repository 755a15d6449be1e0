#include <credkit/core/access_token.hpp>
#include <credkit/core/error.hpp>
#include <credkit/core/log.hpp>
#include <credkit/core/token_handle.hpp>

#include <ctime>
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

bool is_b64token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == '+' || c == '/';
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
  for (std::size_t i = 0; i < token.size(); ++i) {
    if (!is_b64token_char(token[i]) && token[i] != '=') {
      return fail([&] {
        return "unexpected character (code " + std::to_string(static_cast<unsigned char>(token[i])) +
               ") at position " + std::to_string(i) + "; a token holds only letters, digits and -._~+/=";
      });
    }
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
