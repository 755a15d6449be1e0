// Secrets: the DiagnosticsCapture that the whole suite runs under catches what it should, and
// credkit's own outputs (operator<<, Error messages, log lines) never carry a secret.
#include <doctest/doctest.h>

#include "support/test_tokens.hpp"

#include <credkit/caches/cache_encryption_key.hpp>
#include <credkit/caches/token_cache_key.hpp>
#include <credkit/sources/http_client_options.hpp>
#include <credkit/sources/http_token_source.hpp>
#include <credkit/testing/diagnostics_capture.hpp>
#if __has_include(<credkit/sources/acs_connection_string.hpp>)
#include <credkit/sources/acs_connection_string.hpp>
#define CREDKIT_TEST_HAVE_ACS 1
#endif

using namespace credkit;
using namespace credkit::test;
using credkit::testing::DiagnosticsCapture;
using sys = std::chrono::system_clock;

TEST_SUITE("security") {

TEST_CASE("DiagnosticsCapture: finds a secret in a log line and an Error message, and reports it masked") {
  DiagnosticsCapture capture;
  // Neither token- nor key-shaped and unknown to credkit, so the library's scrub (which would
  // hide a registered or key-like secret before the capture sees it) lets it through.
  const std::string secret = "local-client-secret-qwerty-words";
  capture.add_secret(secret, "client secret");
  const auto level = log_level();
  set_log_level(LogLevel::off);  // the observer sees lines the threshold drops, too
  log(LogLevel::debug, "connecting with " + secret);
  set_log_level(level);
  Error err(errc::fetch_failed, "bad answer: ..." + secret.substr(4, 26) + "...");  // a 26-char fragment
  const auto leaks = capture.leaks();
  REQUIRE(leaks.size() == 2);
  CHECK(leaks[0].source == "log debug");
  CHECK(leaks[0].label == "client secret");
  CHECK(leaks[1].source == "Error");
  const auto report = capture.report();
  CHECK(report.find("<secret:client secret>") != std::string::npos);
  CHECK(report.find(secret.substr(4, 16)) == std::string::npos);  // the report itself is clean
  CHECK(capture.texts_checked() >= 2);
  capture.clear();
  CHECK(capture.leaks().empty());
}

TEST_CASE("DiagnosticsCapture: token shapes are flagged, redacted forms are not") {
  DiagnosticsCapture capture;
  const std::string jwt = make_jwt(sys::now() + std::chrono::hours(1), "shape-test");
  capture.inspect("test output", "header: Bearer " + jwt);
  capture.inspect("test output", "agora 007eJxTYGAwMLC0sjA0NTRz0DM3MzcxNjY1NzA3N0xMTE1JSUlNS0tL");
  capture.inspect("test output", "token " + redact(jwt) + " expires soon");
  capture.inspect("test output", "eyJhbGciOiJIUzI1NiJ9 alone is a header, not a token");
  const auto leaks = capture.leaks();
  REQUIRE(leaks.size() == 2);
  CHECK(leaks[0].label == "JWT-shaped text");
  CHECK(leaks[1].label == "Agora-token-shaped text");
  CHECK(capture.report().find(jwt.substr(0, 20)) == std::string::npos);
  DiagnosticsCapture::Options no_shapes;
  no_shapes.detect_token_shapes = false;
  DiagnosticsCapture plain(no_shapes);
  plain.inspect("test output", jwt);
  CHECK(plain.leaks().empty());
}

TEST_CASE("operator<< of every public type that holds a secret prints no secret") {
  DiagnosticsCapture capture;
  const std::string jwt = make_jwt(sys::now() + std::chrono::hours(1), "stream-test");
  DiagnosticsCapture::register_secret(jwt, "test JWT");
  const AccessToken token{jwt, sys::now() + std::chrono::hours(1)};
  capture.inspect_streamed("AccessToken", token);
  capture.inspect_streamed("TokenHandle", TokenHandle::make(token));
  capture.inspect("to_string(AccessToken)", to_string(token));

  const std::string hex_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  DiagnosticsCapture::register_secret(hex_key, "cache key (hex)");
  capture.inspect_streamed("CacheEncryptionKey", CacheEncryptionKey::from_hex(hex_key));
  const std::string passphrase = "correct horse battery staple 42";
  DiagnosticsCapture::register_secret(passphrase, "cache passphrase");
  capture.inspect_streamed("CacheEncryptionKey(passphrase)", CacheEncryptionKey::from_passphrase(passphrase));
#ifdef CREDKIT_TEST_HAVE_ACS
  const std::string access_key = "c2VjcmV0LWFjY2Vzcy1rZXktZm9yLXRlc3RzLW9ubHktMDEyMzQ1Njc4OQ==";
  DiagnosticsCapture::register_secret(access_key, "ACS access key");
  const auto cs = acs::ConnectionString::parse("endpoint=https://contoso.communication.azure.com/;accesskey=" + access_key);
  capture.inspect_streamed("acs::ConnectionString", cs);
  // A malformed connection string's error must not echo the key either.
  CHECK_THROWS_AS(acs::ConnectionString::parse("accesskey=" + access_key), Error);
#endif
  INFO(capture.report());
  CHECK(capture.leaks().empty());
  CHECK(capture.texts_checked() >= 5);
}

TEST_CASE("parse_token errors about hostile tokens never echo the token") {
  DiagnosticsCapture capture;
  const std::string payload_bad = make_jwt_exp("\"soon\"", "hostile");  // non-numeric exp
  const std::string negative = make_jwt_exp("-5", "hostile");
  DiagnosticsCapture::register_secret(payload_bad, "hostile token");
  DiagnosticsCapture::register_secret(negative, "hostile token");
  for (const auto& t : {payload_bad, negative, payload_bad + "$$$", std::string("eyJ") + std::string(40, '!')}) {
    std::error_code ec;
    (void)parse_token(t, ec);
    CHECK(ec == make_error_code(errc::invalid_token));
    try {
      (void)parse_token(t);
    } catch (const Error& e) {
      capture.inspect("Error::what()", e.what());
    }
  }
  INFO(capture.report());
  CHECK(capture.leaks().empty());
}

TEST_CASE("TLS verification is on by default and plain http is refused off loopback") {
  const HttpClientOptions defaults;
  CHECK(defaults.verify_peer);
  CHECK_FALSE(defaults.allow_insecure_http);
  CHECK(defaults.max_response_bytes > 0);

  HttpTokenSourceOptions o;
  o.url = "http://tokens.example.com/token";
  try {
    HttpTokenSource source(o);
    FAIL("plain http to a remote host was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == make_error_code(errc::insecure_url));
  }
  o.url = "http://127.0.0.1:9/token";  // loopback: allowed without opting in
  CHECK_NOTHROW((void)HttpTokenSource{o});
  o.url = "http://tokens.example.com/token";
  o.http.allow_insecure_http = true;  // explicit opt-in
  CHECK_NOTHROW((void)HttpTokenSource{o});
}

}  // TEST_SUITE
