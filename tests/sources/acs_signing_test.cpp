// ACS connection strings and HMAC-SHA256 request signing, checked against the Azure SDK's
// published test vectors and an independent computation with the openssl CLI.
#include <doctest/doctest.h>

#include <credkit/core/error.hpp>
#include <credkit/sources/acs_connection_string.hpp>
#include <credkit/sources/acs_identity_client.hpp>

#include "core/base64.hpp"
#include "sources/acs/hmac_signer.hpp"
#include "sources/acs/identity_requests.hpp"
#include "sources/common/crypto.hpp"
#include "sources/common/text.hpp"
#include "sources/http/http_date.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

using namespace credkit;
using namespace std::chrono_literals;

namespace {
constexpr const char* kSecretKey = "c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LW11c3Qtbm90LWxlYWs=";

std::string message_of_parse(std::string_view text) {
  try {
    (void)acs::ConnectionString::parse(text);
  } catch (const Error& e) {
    CHECK(e.code() == make_error_code(errc::invalid_connection_string));
    return e.what();
  }
  FAIL("parse accepted a bad connection string");
  return {};
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[512];
  while (auto n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string header(const detail::HttpRequest& r, std::string_view name) {
  for (auto& [n, v] : r.headers) {
    if (detail::iequals(n, name)) return v;
  }
  return {};
}
}  // namespace

TEST_CASE("acs: connection string parsing") {
  auto cs = acs::ConnectionString::parse(std::string("endpoint=https://contoso.communication.azure.com/;accesskey=") +
                                         kSecretKey);
  CHECK(cs.endpoint() == "https://contoso.communication.azure.com");
  CHECK(cs.decoded_key() == "secret-key-material-that-must-not-leak");
  // Case-insensitive keys, any order, spaces, port kept.
  auto cs2 = acs::ConnectionString::parse(std::string(" AccessKey=") + kSecretKey +
                                          " ; ENDPOINT=http://127.0.0.1:8080 ;");
  CHECK(cs2.endpoint() == "http://127.0.0.1:8080");
  std::ostringstream os;
  os << cs;
  CHECK(os.str().find("contoso") != std::string::npos);
  CHECK(os.str().find(kSecretKey) == std::string::npos);
  CHECK(os.str().find("secret-key") == std::string::npos);
}

TEST_CASE("acs: bad connection strings name the problem, never the key") {
  const std::string key = std::string("accesskey=") + kSecretKey;
  CHECK(message_of_parse(key).find("missing 'endpoint") != std::string::npos);
  CHECK(message_of_parse("endpoint=https://x.communication.azure.com/").find("missing 'accesskey") !=
        std::string::npos);
  CHECK(message_of_parse("endpoint=https://x/;accesskey=not base64!").find("base64") != std::string::npos);
  CHECK(message_of_parse("endpoint=contoso;" + key).find("absolute") != std::string::npos);
  CHECK(message_of_parse("endpoint=ftp://x/;" + key).find("absolute") != std::string::npos);
  CHECK(message_of_parse("endpoint=https://x/path;" + key).find("path") != std::string::npos);
  CHECK(message_of_parse("endpoint=https://x/;garbage-without-equals").find("'='") != std::string::npos);
  CHECK(message_of_parse("endpoint=https://x/;accesskey=;").find("empty") != std::string::npos);
  CHECK(message_of_parse("endpoint=https://x/;" + key + ";accesskey=abcd").find("twice") != std::string::npos);
  for (auto text : {std::string("endpoint=https://x/path;") + key, std::string("garbage") + kSecretKey,
                    std::string("endpoint=ftp://x/;") + key}) {
    CHECK(message_of_parse(text).find(kSecretKey) == std::string::npos);
  }
}

// Azure SDK for Python, azure-communication-identity tests/test_hmac.py: key "pw==",
// host contoso.communicationservices.azure.com, x-ms-date "Wed, 13 Apr 2022 18:09:12 GMT".
TEST_CASE("acs: signer reproduces the Azure SDK's published signatures") {
  const auto key = *detail::base64_decode("pw==");
  CHECK(detail::base64_encode(detail::hmac_sha256(key, "banana")) == "88EC05aAS9iXnaimtNO78JLjiPtfWryQB/5QYEzEsu8=");
  const char* host = "contoso.communicationservices.azure.com";
  const char* date = "Wed, 13 Apr 2022 18:09:12 GMT";
  const std::string prefix = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=";
  auto h = acs::detail::sign_request("GET", host, "/", "", date, key);
  CHECK(h.authorization == prefix + "88MDmJhUR3m5QhFxb8ztShsSwlGrg7g/6XPnWf7QEO4=");
  CHECK(h.content_sha256 == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  CHECK(h.date == date);
  CHECK(acs::detail::sign_request("GET", host, "/testPath", "", date, key).authorization ==
        prefix + "RoCrHjw7fb9fpHSbqvRUY2xa8RBS0YvI1cxI1x8AS38=");
  CHECK(acs::detail::sign_request("GET", host, "/testPath?testQuery=yes", "", date, key).authorization ==
        prefix + "il99+rd6V5O136roX/zVePCNle78HmvC4B7tu9zRH3I=");
}

TEST_CASE("acs: a signed POST matches an independent openssl computation") {
  if (std::system("openssl version > /dev/null 2>&1") != 0) {
    MESSAGE("openssl CLI not available; skipped");
    return;
  }
  auto cs = acs::ConnectionString::parse(std::string("endpoint=https://127.0.0.1:8443;accesskey=") + kSecretKey);
  const auto now = std::chrono::sys_days{std::chrono::year{2026} / 11 / 23} + 9h + 5min + 7s;
  auto body = acs::detail::token_request_body("scopes", {acs::TokenScope::chat, acs::TokenScope::voip_join}, 90min);
  CHECK(body == R"({"expiresInMinutes":90,"scopes":["chat","voip.join"]})");
  auto req = acs::detail::make_signed_request(cs, "2023-10-01", "POST", "/identities/8%3Aacs%3Aabc/:issueAccessToken",
                                              body, now);
  CHECK(req.url == "https://127.0.0.1:8443/identities/8%3Aacs%3Aabc/:issueAccessToken?api-version=2023-10-01");
  CHECK(header(req, "x-ms-date") == "Mon, 23 Nov 2026 09:05:07 GMT");

  const std::string dir = "/tmp/credkit-acs-sign-" + std::to_string(::getpid());
  std::system(("mkdir -p " + dir).c_str());
  std::ofstream(dir + "/body", std::ios::binary) << body;
  const std::string hash = run("openssl dgst -sha256 -binary " + dir + "/body | openssl base64 -A");
  CHECK(header(req, "x-ms-content-sha256") == hash);
  const std::string to_sign = "POST\n/identities/8%3Aacs%3Aabc/:issueAccessToken?api-version=2023-10-01\n"
                              "Mon, 23 Nov 2026 09:05:07 GMT;127.0.0.1:8443;" + hash;
  std::ofstream(dir + "/sts", std::ios::binary) << to_sign;
  const std::string hexkey = run(std::string("printf '%s' '") + kSecretKey + "' | openssl base64 -d -A | od -An -tx1 | tr -d ' \\n'");
  const std::string sig = run("openssl dgst -sha256 -mac HMAC -macopt hexkey:" + hexkey + " -binary " + dir +
                              "/sts | openssl base64 -A");
  std::system(("rm -rf " + dir).c_str());
  CHECK(header(req, "Authorization") ==
        "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=" + sig);
}

TEST_CASE("acs: token request validation") {
  using acs::TokenScope;
  CHECK_THROWS_AS(acs::detail::validate_token_request({}, 60min), Error);
  CHECK_THROWS_AS(acs::detail::validate_token_request({TokenScope::chat}, 59min), Error);
  CHECK_THROWS_AS(acs::detail::validate_token_request({TokenScope::chat}, 1441min), Error);
  CHECK_NOTHROW(acs::detail::validate_token_request({TokenScope::chat}, 60min));
  CHECK_NOTHROW(acs::detail::validate_token_request({TokenScope::chat_join_limited}, 1440min));
  CHECK(acs::to_string(TokenScope::chat_join_limited) == "chat.join.limited");
  CHECK(acs::to_string(TokenScope::voip_join) == "voip.join");
  CHECK(acs::to_string(TokenScope::chat_join) == "chat.join");
}

TEST_CASE("acs: response parsing") {
  auto ut = acs::detail::parse_create_response(
      R"({"identity":{"id":"8:acs:r_1"},"accessToken":{"token":"tok-0123456789abcdef","expiresOn":"2023-10-10T21:39:39.3244584+00:00"}})",
      true);
  CHECK(ut.user_id == "8:acs:r_1");
  CHECK(ut.token.token == "tok-0123456789abcdef");
  CHECK(format_time(ut.token.expires_on) == "2023-10-10T21:39:39.324Z");
  CHECK_THROWS_AS(acs::detail::parse_create_response(R"({"identity":{}})", false), Error);
  CHECK_THROWS_AS(acs::detail::parse_create_response("not json", false), Error);
  CHECK_THROWS_AS(acs::detail::parse_create_response(R"({"identity":{"id":"x"}})", true), Error);
  auto bad_time = nlohmann::json::parse(R"({"token":"t","expiresOn":"yesterday"})");
  CHECK_THROWS_AS(acs::detail::parse_access_token(bad_time, "issue token"), Error);
}

TEST_CASE("common: date and URL helpers") {
  auto t = detail::parse_http_date("Wed, 13 Apr 2022 18:09:12 GMT");
  REQUIRE(t);
  CHECK(detail::format_http_date(*t) == "Wed, 13 Apr 2022 18:09:12 GMT");
  CHECK_FALSE(detail::parse_http_date("Wed, 13 Foo 2022 18:09:12 GMT"));
  CHECK_FALSE(detail::parse_http_date("Wed, 31 Feb 2022 18:09:12 GMT"));
  CHECK_FALSE(detail::parse_http_date(""));
  CHECK(detail::parse_iso8601("2026-11-23T10:00:00Z") == detail::parse_iso8601("2026-11-23T11:00:00+01:00"));
  CHECK_FALSE(detail::parse_iso8601("2026-11-23T10:00:00X"));
  CHECK_FALSE(detail::parse_iso8601("2026-13-23T10:00:00Z"));
  auto u = detail::parse_url("https://Host.example:8443/a/b?c=d#frag");
  REQUIRE(u);
  CHECK(u->authority() == "Host.example:8443");
  CHECK(u->path == "/a/b");
  CHECK(u->query == "c=d");
  CHECK_FALSE(detail::parse_url("https://user@host/"));
  CHECK_FALSE(detail::parse_url("https://host:99999/"));
  CHECK_FALSE(detail::parse_url("host/path"));
  CHECK(detail::url_encode("8:acs:a b/~") == "8%3Aacs%3Aa%20b%2F~");
  CHECK(detail::url_decode("a%20b+c", true) == "a b c");
  CHECK_FALSE(detail::url_decode("a%2", false));
}
