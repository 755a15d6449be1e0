#include <credkit/core/access_token.hpp>
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
