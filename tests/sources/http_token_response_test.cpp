// The pure parts of the HTTP source: timestamps, Retry-After, URL and body redaction.
#include <credkit/credkit.hpp>

#include "sources/common/text.hpp"
#include "sources/http/http_client.hpp"
#include "sources/http/token_response_parser.hpp"

#include <doctest/doctest.h>

#include <ctime>

using namespace credkit;
using namespace std::chrono_literals;
using std::chrono::system_clock;

namespace {

// The reference: the C library's own UTC conversion.
system_clock::time_point utc(int y, int mo, int d, int h, int mi, int s) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return system_clock::from_time_t(timegm(&tm));
}

}  // namespace

TEST_CASE("http: ISO 8601 timestamps with fractions and offsets") {
  using detail::parse_iso8601;
  const auto base = utc(2026, 11, 23, 10, 0, 0);
  CHECK(parse_iso8601("2026-11-23T10:00:00Z") == base);
  CHECK(parse_iso8601("2026-11-23t10:00:00z") == base);
  CHECK(parse_iso8601("2026-11-23 10:00:00Z") == base);
  CHECK(parse_iso8601("2026-11-23T10:00:00.5Z") == base + 500ms);
  CHECK(parse_iso8601("2026-11-23T10:00:00.1234567+00:00") == base + 123456700ns);
  CHECK(parse_iso8601("2026-11-23T12:00:00+02:00") == base);
  CHECK(parse_iso8601("2026-11-23T04:30:00-0530") == base);
  CHECK(parse_iso8601("2026-11-23T11:00:00+01") == base);
  CHECK(parse_iso8601("2024-02-29T00:00:00Z") == utc(2024, 2, 29, 0, 0, 0));
  CHECK(parse_iso8601("1999-12-31T23:59:59Z") == utc(1999, 12, 31, 23, 59, 59));
  for (const char* bad : {"", "2026-11-23", "2026-11-23T10:00:00", "2026-11-23T10:00Z", "2026-13-01T00:00:00Z",
                          "2025-02-29T00:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23T10:00:00.Z",
                          "2026-11-23T10:00:00+2500", "2026-11-23T10:00:00Zjunk", "tomorrow", "2026-11-23X10:00:00Z"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_iso8601(bad));
  }
}

// Found by fuzz_http_token_response: years outside system_clock's nanosecond range (1677-2262)
// overflowed the conversion. They are clamped: the past to the epoch, the far future to 2255.
TEST_CASE("http: expiries outside the clock's range are clamped, never overflowed") {
  using detail::parse_iso8601;
  const auto epoch = system_clock::time_point{};
  const auto cap = system_clock::time_point(std::chrono::seconds(9'000'000'000));  // 2255-03-14
  CHECK(parse_iso8601("1015-01-01T00:00:01Z") == epoch);
  CHECK(parse_iso8601("0000-01-01T00:00:00Z") == epoch);
  CHECK(parse_iso8601("1969-12-31T23:59:59Z") == epoch);
  CHECK(parse_iso8601("9999-12-31T23:59:59+00:00") == cap);
  CHECK(parse_iso8601("2262-04-12T00:00:00Z") == cap);

  const auto now = system_clock::now();
  auto parse = [&](const std::string& body) {
    return detail::parse_token_response(HttpTokenResponse::acs(), body, now);
  };
  // A year-1015 expiry is an expired token, reported as such.
  try {
    (void)parse(R"({"token":"abcdefghijklmnop0123","expiresOn":"1015-01-01T00:00:01Z"})");
    FAIL("expected invalid_token");
  } catch (const Error& e) {
    CHECK(e.code() == make_error_code(errc::invalid_token));
  }
  CHECK(parse(R"({"token":"abcdefghijklmnop0123","expiresOn":"9999-12-31T23:59:59Z"})").expires_on == cap);
  // Unix seconds up to the year 3000 are accepted; past 2255 they are clamped.
  CHECK(parse(R"({"token":"abcdefghijklmnop0123","expiresOn":32503679999})").expires_on == cap);
  CHECK(parse(R"({"token":"abcdefghijklmnop0123","expiresOn":"32503679999"})").expires_on == cap);
}

// Found by fuzz_http_token_response: a number too large for a double made the JSON library
// throw out_of_range, which escaped as a non-credkit exception.
TEST_CASE("http: a JSON number out of range is invalid_response, not a foreign exception") {
  for (const char* body : {": 666666666e0000561910644", "666666666e0000561910644", R"({"token": 1e999999})"}) {
    CAPTURE(body);
    try {
      (void)detail::parse_token_response(HttpTokenResponse::acs(), body, system_clock::now());
      FAIL("expected invalid_response");
    } catch (const Error& e) {
      CHECK(e.code() == make_error_code(errc::invalid_response));
    }
  }
}

// Found by fuzz_http_token_response (CI run of 2026-11-23): a huge negative expires_in was
// converted to long long for the error message (UB).
TEST_CASE("http: a huge negative expires_in is an expired token, named as such") {
  const auto now = system_clock::now();
  for (const char* body : {R"({"access_token":"abcdefghijklmnop0123","expires_in":-100000000000000485187799855300})",
                           R"({"access_token":"abcdefghijklmnop0123","expires_in":-1e300})",
                           R"({"access_token":"abcdefghijklmnop0123","expires_in":-5})"}) {
    CAPTURE(body);
    try {
      (void)detail::parse_token_response(HttpTokenResponse::oauth(), body, now);
      FAIL("expected invalid_token");
    } catch (const Error& e) {
      CHECK(e.code() == make_error_code(errc::invalid_token));
      CHECK(std::string(e.what()).find("already expired") != std::string::npos);
    }
  }
}

TEST_CASE("http: Retry-After as seconds or HTTP-date") {
  const auto now = utc(2026, 11, 23, 10, 0, 0);
  CHECK(detail::parse_retry_after("120", now) == std::chrono::milliseconds(120s));
  CHECK(detail::parse_retry_after(" 0 ", now) == std::chrono::milliseconds(0));
  CHECK(detail::parse_retry_after("Mon, 23 Nov 2026 10:01:30 GMT", now) == std::chrono::milliseconds(90s));
  CHECK(detail::parse_retry_after("Mon, 23 Nov 2026 09:00:00 GMT", now) == std::chrono::milliseconds(0));
  CHECK(detail::parse_retry_after("99999999999999999999", now) == std::chrono::milliseconds(24h));
  CHECK_FALSE(detail::parse_retry_after("", now));
  CHECK_FALSE(detail::parse_retry_after("soon", now));
}

TEST_CASE("http: URLs in messages lose credentials, query and fragment") {
  CHECK(detail::url_for_message("https://user:pw@tokens.example.com:8443/api/token?code=secret#frag") ==
        "https://tokens.example.com:8443/api/token");
  CHECK(detail::url_for_message("http://127.0.0.1/t") == "http://127.0.0.1/t");
  const auto odd = detail::url_for_message("not a url?key=secret");
  CHECK(odd.find("secret") == std::string::npos);
}

TEST_CASE("http: redaction hides long token-like runs, sensitive keys' values and given secrets") {
  const std::string jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLWJ5dGVz";
  const auto out = detail::redact_secrets(R"({"error":"bad","access_token":"abc12345","detail":")" + jwt +
                                              "\",\"note\":\"ok\"}\r\nline2",
                                          {"my-session-cookie-value"});
  CHECK(out.find(jwt) == std::string::npos);
  CHECK(out.find("abc12345") == std::string::npos);
  CHECK(out.find("\"error\":\"bad\"") != std::string::npos);
  CHECK(out.find("\"note\":\"ok\"") != std::string::npos);
  CHECK(out.find('\r') == std::string::npos);
  CHECK(out.find('\n') == std::string::npos);
  const auto given = detail::redact_secrets("cookie was my-session-cookie-value indeed", {"my-session-cookie-value"});
  CHECK(given.find("my-session-cookie-value") == std::string::npos);
  CHECK(given.find("indeed") != std::string::npos);
  CHECK(detail::redact_secrets("plain words stay") == "plain words stay");
}

TEST_CASE("http: http_error classification by status") {
  detail::HttpRequest request{.method = "POST", .url = "https://t.example.com/token?x=1", .headers = {}, .body = "client_secret=s3cr3t-value-123"};
  auto error_for = [&](int status, std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
    detail::HttpResponse response;
    response.status = status;
    response.body = std::move(body);
    response.headers = std::move(headers);
    return detail::http_error(request, response);
  };
  for (int status : {500, 502, 503, 504, 408}) {
    CAPTURE(status);
    const auto e = error_for(status, "x");
    CHECK(e.code() == make_error_code(errc::http_status));
    CHECK(e.retryable());
  }
  for (int status : {400, 401, 403, 404, 409, 301}) {
    CAPTURE(status);
    CHECK_FALSE(error_for(status, "x").retryable());
  }
  const auto limited = error_for(429, "", {{"retry-after", "3"}});
  CHECK(limited.code() == make_error_code(errc::rate_limited));
  CHECK(limited.retryable());
  CHECK(limited.retry_after() == std::chrono::milliseconds(3s));
  const auto unavailable = error_for(503, "", {{"Retry-After", "5"}});
  CHECK(unavailable.retry_after() == std::chrono::milliseconds(5s));
  const std::string echoed = error_for(400, "bad request: client_secret=s3cr3t-value-123").what();
  CHECK(echoed.find("s3cr3t-value-123") == std::string::npos);
  CHECK(echoed.find("POST https://t.example.com/token answered HTTP 400") == 0);
  CHECK(echoed.find("x=1") == std::string::npos);
}
