#include <doctest/doctest.h>

#include "support/test_tokens.hpp"

#include "core/base64.hpp"

#include <sstream>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono;

namespace {
system_clock::time_point at(std::int64_t seconds) { return system_clock::time_point(std::chrono::seconds(seconds)); }

std::string error_message(std::string_view token) {
  try {
    (void)parse_token(token);
  } catch (const Error& e) {
    CHECK(e.code() == make_error_code(errc::invalid_token));
    return e.what();
  }
  FAIL("expected invalid_token");
  return {};
}
}  // namespace

TEST_CASE("parse_token reads an integer exp") {
  auto t = parse_token(make_jwt_exp("1767225600"));
  CHECK(t.expires_on == at(1767225600));
}

TEST_CASE("parse_token reads a fractional exp to the millisecond") {
  auto t = parse_token(make_jwt_exp("1767225600.25"));
  CHECK(t.expires_on == at(1767225600) + 250ms);
}

TEST_CASE("parse_token accepts base64url segments with and without padding") {
  // Pick a subject that makes every segment need padding.
  for (std::string sub : {"a", "ab", "abc", "abcd"}) {
    auto padded = make_jwt_exp("1767225600", sub, /*pad=*/true);
    auto bare = make_jwt_exp("1767225600", sub, /*pad=*/false);
    CHECK(parse_token(padded).expires_on == at(1767225600));
    CHECK(parse_token(bare).expires_on == at(1767225600));
  }
}

TEST_CASE("parse_token rejects malformed tokens with a message naming the problem") {
  CHECK(error_message("").find("empty") != std::string::npos);
  CHECK(error_message("IAmNotAToken").find("too short") != std::string::npos);
  CHECK(error_message("not.a.real.token").find("4 dot-separated segments") != std::string::npos);
  CHECK(error_message("abc def ghijklmnopqrstu").find("position 3") != std::string::npos);
  CHECK(error_message("!!!.???.###").find("unexpected character") != std::string::npos);
  // Three segments that are not base64url JSON.
  CHECK(error_message("aaaaaaaa.bbbbbbbb.cccc").find("header") != std::string::npos);
  const auto header = detail::base64url_encode(R"({"alg":"HS256"})");
  CHECK(error_message(header + ".%%%%.sig").find("unexpected character") != std::string::npos);
  CHECK(error_message(header + "." + detail::base64url_encode("[1,2]") + ".c2ln").find("payload") != std::string::npos);
  CHECK(error_message(header + "." + detail::base64url_encode("{}") + ".c2l*").find("unexpected") != std::string::npos);
  CHECK(error_message(header + "." + detail::base64url_encode("{}") + ".A").find("signature") != std::string::npos);
}

TEST_CASE("parse_token error messages never contain the token") {
  const std::string secret_ish = "sEcReTsEcReTsEcReT.sEcReTsEcReT.sEcReT";
  auto msg = error_message(secret_ish);
  CHECK(msg.find("sEcReT") == std::string::npos);
}

TEST_CASE("parse_token rejects a negative or non-numeric exp") {
  CHECK(error_message(make_jwt_exp("-5")).find("negative") != std::string::npos);
  CHECK(error_message(make_jwt_exp("\"tomorrow\"")).find("not a number") != std::string::npos);
  CHECK(error_message(make_jwt_exp("null")).find("not a number") != std::string::npos);
}

TEST_CASE("parse_token clamps an exp beyond the representable range instead of overflowing") {
  LogCapture logs;
  auto t = parse_token(make_jwt_exp("32503680000"));  // year 3000
  CHECK(t.expires_on > at(8'000'000'000));
  CHECK(t.expires_on <= at(9'000'000'000));
  CHECK(logs.count(LogLevel::warning) == 1);
  auto huge = parse_token(make_jwt_exp("1e300"));
  CHECK(huge.expires_on == t.expires_on);
}

TEST_CASE("a JWE or opaque token gets the fallback lifetime and exactly one warning") {
  LogCapture logs;
  ParseOptions options;
  options.now = at(1000);
  options.fallback_lifetime = 5min;
  const auto header = detail::base64url_encode(R"({"alg":"RSA-OAEP","enc":"A256GCM"})");
  auto jwe = parse_token(header + ".a2V5.aXY.Y2lwaGVy.dGFn", options);
  CHECK(jwe.expires_on == at(1000) + 5min);
  CHECK(logs.count(LogLevel::warning) == 1);

  auto opaque = parse_token("0123456789abcdef0123456789", options);
  CHECK(opaque.expires_on == at(1000) + 5min);
  CHECK(logs.count(LogLevel::warning) == 2);
  for (auto& [level, line] : logs.lines()) CHECK(line.find("0123456789abcdef0123456789") == std::string::npos);

  // A JWS without exp falls back too.
  auto no_exp = parse_token(header + "." + detail::base64url_encode(R"({"sub":"x"})") + ".c2ln", options);
  CHECK(no_exp.expires_on == at(1000) + 5min);
}

TEST_CASE("the non-throwing overload reports through error_code") {
  std::error_code ec;
  auto t = parse_token("not.a.real.token", ec);
  CHECK(ec == make_error_code(errc::invalid_token));
  CHECK(t.token.empty());
  auto ok = parse_token(make_jwt_exp("1767225600"), ec);
  CHECK(!ec);
  CHECK(ok.expires_on == at(1767225600));
}

TEST_CASE("base64 decoders are strict") {
  CHECK(detail::base64url_decode("QQ") == std::optional<std::string>("A"));
  CHECK(detail::base64url_decode("QQ==") == std::optional<std::string>("A"));
  CHECK_FALSE(detail::base64url_decode("Q"));       // impossible length
  CHECK_FALSE(detail::base64url_decode("QR"));      // non-canonical trailing bits
  CHECK_FALSE(detail::base64url_decode("QQ==="));   // too much padding
  CHECK_FALSE(detail::base64url_decode("QQ="));     // padding to a wrong length
  CHECK_FALSE(detail::base64url_decode("a+b/"));    // standard alphabet in url decoder
  CHECK(detail::base64_decode("a+b/") .has_value());
  for (int n = 0; n < 40; ++n) {
    std::string bytes;
    for (int i = 0; i < n; ++i) bytes += static_cast<char>((i * 37 + n) & 0xFF);
    CHECK(detail::base64url_decode(detail::base64url_encode(bytes)) == std::optional<std::string>(bytes));
    CHECK(detail::base64_decode(detail::base64_encode(bytes)) == std::optional<std::string>(bytes));
  }
}

TEST_CASE("AccessToken and TokenHandle stream redacted") {
  const auto jwt = make_jwt(at(1767225600));
  AccessToken t{jwt, at(1767225600)};
  std::ostringstream os;
  os << t << ' ' << TokenHandle::make(t) << ' ' << TokenHandle{};
  const auto s = os.str();
  CHECK(s.find(jwt) == std::string::npos);
  CHECK(s.find(jwt.substr(10, 20)) == std::string::npos);
  CHECK(s.find("(" + std::to_string(jwt.size()) + " chars)") != std::string::npos);
  CHECK(s.find("2026-01-01T00:00:00Z") != std::string::npos);
  CHECK(s.find("TokenHandle{empty}") != std::string::npos);
  CHECK(redact("short") == "(5 chars)");
}

TEST_CASE("error codes have actionable messages and map to portable conditions") {
  CHECK(make_error_code(errc::token_expired_on_arrival).message() ==
        "the token returned by the fetcher is already expired");
  CHECK(make_error_code(errc::cancelled) == std::errc::operation_canceled);
  CHECK(make_error_code(errc::fetch_timeout) == std::errc::timed_out);
  CHECK(std::string(category().name()) == "credkit");
  ErrorDetails unavailable, forbidden;
  unavailable.http_status = 503;
  forbidden.http_status = 403;
  Error e(errc::http_status, "boom", unavailable);
  CHECK(e.retryable());
  Error e4(errc::http_status, "nope", forbidden);
  CHECK_FALSE(e4.retryable());
  CHECK(is_retryable(std::make_exception_ptr(std::runtime_error("x"))));
  CHECK(error_code_of(std::make_exception_ptr(std::runtime_error("x"))) == make_error_code(errc::fetch_failed));
}
