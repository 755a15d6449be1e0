// Agora AccessToken2: byte-compatibility with Agora's published test vectors, parsing,
// parse_token integration and hostile inputs.
#include <doctest/doctest.h>

#include <credkit/credkit.hpp>
#include <credkit/core/error.hpp>
#include <credkit/core/parse_token.hpp>
#include <credkit/sources/agora_access_token.hpp>
#include <credkit/sources/agora_token_info.hpp>

#include "core/base64.hpp"
#include "sources/agora/access_token2.hpp"
#include "support/async_helpers.hpp"

#include <boost/asio/io_context.hpp>

#include <random>

using namespace credkit;
using namespace std::chrono_literals;

namespace {
// Fixed inputs of Agora's own AccessToken2 unit tests (AgoraIO/Tools, DynamicKey/AgoraDynamicKey,
// e.g. csharp/test/AccessToken2Test.cs): app id, certificate, expire 600, issue_ts 1111111, salt 1.
constexpr const char* kAppId = "970CA35de60c44645bbae8a215061b33";
constexpr const char* kAppCert = "5CFd2fd1755d40ecb72977518be15d3b";
constexpr const char* kChannel = "7d72365eb983485397e3e3f9d460bdda";
constexpr const char* kUid = "2882341273";
// Expected tokens from those tests (build_ServiceChat_userToken / _appToken / build_ServiceRtc_uid_0).
constexpr const char* kChatUserToken =
    "007eJxTYNAIsnbS3v/A5t2TC6feR15r+6cq8bqAvfaW+tk/Vzz+p6xTYLA0N3B2NDZNSTUzSDYxMTMxTUpKTLVINDI0NTAzTDI2dv8iwBDBxMDAyADCrEDMCOZzMRhZWBgZmxgamRsDAB+lHrg=";
constexpr const char* kChatAppToken =
    "007eJxTYNDNaz3snC8huEfHWdz6s98qltq4zqy9fl99Uh0FDvy6F6DAYGlu4OxobJqSamaQbGJiZmKalJSYapFoZGhqYGaYZGzs/kWAIYKJgYGRAYRZgZgJzGdgAACt8hhr";
constexpr const char* kRtcUid0Token =
    "007eJxTYLhzZP08Lxa1Pg57+TcXb/3cZ3wi4V6kbpbOog0G2dOYk20UGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiQwMADacImo=";
// Agora's parse_TokenRtm vector, produced by another zlib (ends with a sync-flush block).
constexpr const char* kRtmTokenOtherZlib =
    "007eJxSYOCdJftjyTM2zxW6Xhm/5T0j5LdcUt/xYVt48fb5Mp3PX9coMFiaGzg7GpumpJoZJJuYmJmYJiUlplokGhmaGpgZJhkbu38RYIhgYmBgZABhJgZGBkYwn5OhJLW4JL60OLUIEAAA//9ZVh6A";

agora::AccessToken2 fixed() {
  agora::AccessToken2 t(kAppId, kAppCert, 600s);
  t.issue_ts(1111111).salt(1);
  return t;
}
}  // namespace

TEST_CASE("agora: chat user token matches Agora's published vector byte for byte") {
  auto t = fixed();
  t.add_chat_user(kUid, 600s);
  CHECK(t.build() == kChatUserToken);
}

TEST_CASE("agora: chat app token matches Agora's published vector") {
  auto t = fixed();
  t.add_chat_app(600s);
  CHECK(t.build() == kChatAppToken);
}

TEST_CASE("agora: RTC token (uid 0) matches Agora's published vector") {
  auto t = fixed();
  t.add_rtc(kChannel, "0", {{agora::RtcPrivilege::join_channel, 600s}});
  CHECK(t.build() == kRtcUid0Token);
}

TEST_CASE("agora: parse reads app id, times and services of the published vectors") {
  auto info = agora::parse_access_token(kChatUserToken);
  CHECK(info.app_id == kAppId);
  CHECK(info.issue_ts == 1111111);
  CHECK(info.expire == 600);
  CHECK(info.salt == 1);
  CHECK(info.expires_on == std::chrono::system_clock::time_point(std::chrono::seconds(1111111 + 600)));
  REQUIRE(info.services.size() == 1);
  CHECK(info.services[0].type == 5);
  CHECK(info.services[0].user_id == kUid);
  CHECK(info.services[0].privileges.at(1) == 600);

  auto app = agora::parse_access_token(kChatAppToken);
  REQUIRE(app.services.size() == 1);
  CHECK(app.services[0].user_id.empty());
  CHECK(app.services[0].privileges.at(2) == 600);

  auto rtm = agora::parse_access_token(kRtmTokenOtherZlib);
  REQUIRE(rtm.services.size() == 1);
  CHECK(rtm.services[0].type == 2);
  CHECK(rtm.services[0].user_id == "test_user");
}

TEST_CASE("agora: signatures verify with the right certificate only") {
  CHECK(agora::verify_access_token(kChatUserToken, kAppCert));
  CHECK_FALSE(agora::verify_access_token(kChatUserToken, "5CFd2fd1755d40ecb72977518be15d3c"));
  auto fresh = agora::build_chat_user_token(kAppId, kAppCert, "alice", 1h);
  CHECK(agora::verify_access_token(fresh, kAppCert));
  auto info = agora::parse_access_token(fresh);
  CHECK(info.salt >= 1);
  CHECK(info.salt <= 99999999u);
  const auto now = std::chrono::system_clock::now();
  CHECK(info.expires_on > now + 59min);
  CHECK(info.expires_on <= now + 61min);
}

TEST_CASE("agora: parse_token understands 007 tokens") {
  auto t = parse_token(kChatAppToken);
  CHECK(t.token == kChatAppToken);
  CHECK(t.expires_on == std::chrono::system_clock::time_point(std::chrono::seconds(1111711)));
  // A non-007 token is left to the other parsers.
  CHECK_THROWS_AS(parse_token("006abc"), Error);
}

TEST_CASE("agora: builder validates its arguments") {
  CHECK_THROWS_AS(agora::AccessToken2("", kAppCert, 600s), Error);
  CHECK_THROWS_AS(agora::AccessToken2(kAppId, "", 600s), Error);
  CHECK_THROWS_AS(agora::AccessToken2(kAppId, kAppCert, 0s), Error);
  CHECK_THROWS_AS(agora::AccessToken2(kAppId, kAppCert, 25h), Error);
  agora::AccessToken2 none(kAppId, kAppCert, 600s);
  CHECK_THROWS_AS(none.build(), Error);
  try {
    agora::AccessToken2 bad(kAppId, kAppCert, 0s);
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find(kAppCert) == std::string::npos);
  }
}

namespace {
std::string wrap(const std::string& raw) {
  return "007" + detail::base64_encode(agora::detail::zlib_compress(raw));
}
void expect_invalid(std::string_view token, const std::string& mentions) {
  CAPTURE(mentions);
  try {
    (void)parse_token(token);
    FAIL("parse_token accepted a damaged 007 token");
  } catch (const Error& e) {
    CHECK(e.code() == make_error_code(errc::invalid_token));
    CAPTURE(std::string(e.what()));
    CHECK(std::string(e.what()).find(mentions) != std::string::npos);
  }
}
}  // namespace

TEST_CASE("agora: damaged 007 tokens give invalid_token naming the problem") {
  expect_invalid("007", "too short");  // the token gate (check_token_text) speaks first
  // parse_token rejects stray characters itself; the Agora parser names the base64 problem.
  CHECK_THROWS_WITH_AS(agora::parse_access_token("007!!!!"), doctest::Contains("base64"), Error);
  expect_invalid("007AAAA*", "");
  expect_invalid("007" + detail::base64_encode("not zlib at all"), "zlib");
  // Truncated at every possible length of a valid payload.
  auto decoded = detail::base64_decode(std::string_view(kChatUserToken).substr(3));
  REQUIRE(decoded);
  auto raw = agora::detail::zlib_decompress(*decoded, 1 << 16);
  REQUIRE(raw);
  for (std::size_t n = 0; n < raw->size(); ++n) {
    CAPTURE(n);
    CHECK_THROWS_AS(agora::parse_access_token(wrap(raw->substr(0, n))), Error);
  }
  expect_invalid(wrap(*raw + "x"), "stray bytes");
  // A string length claiming far more than present.
  std::string huge_len = *raw;
  huge_len[0] = '\xff';
  huge_len[1] = '\xff';
  expect_invalid(wrap(huge_len), "truncated");
  // A zlib bomb: 10 MB of zeros.
  expect_invalid(wrap(std::string(10 * 1024 * 1024, '\0')), "64 KiB");
  // Oversized text.
  expect_invalid("007" + std::string(20000, 'A'), "too long");  // over max_token_length
}

TEST_CASE("agora: random bytes never crash the parser") {
  std::mt19937 rng(12345);
  auto decoded = detail::base64_decode(std::string_view(kChatUserToken).substr(3));
  auto raw = *agora::detail::zlib_decompress(*decoded, 1 << 16);
  for (int i = 0; i < 2000; ++i) {
    std::string mutated = raw;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) mutated[rng() % mutated.size()] = static_cast<char>(rng());
    try {
      auto info = agora::parse_access_token(wrap(mutated));
      CHECK(info.services.size() <= 65535);
    } catch (const Error& e) {
      CHECK(e.code() == make_error_code(errc::invalid_token));
    }
  }
}

TEST_CASE("agora: a local chat token fetcher feeds a credential") {
  boost::asio::io_context io;
  CHECK_THROWS_AS(agora::chat_user_token_fetcher(kAppId, "", "u", 1h), Error);
  TokenCredentialOptions options;
  options.mode = RefreshMode::on_demand;
  options.fetcher = agora::chat_user_token_fetcher(kAppId, kAppCert, "user-7", 2h);
  auto credential = TokenCredential::create(io.get_executor(), std::move(options));
  bool done = false;
  credential->async_get_token([&](std::exception_ptr e, TokenHandle t) {
    REQUIRE_FALSE(e);
    CHECK(agora::verify_access_token(t.token(), kAppCert));
    auto info = agora::parse_access_token(t.token());
    CHECK(info.services.at(0).user_id == "user-7");
    CHECK(t.expires_on() == info.expires_on);
    CHECK(info.expire == 7200);
    done = true;
  });
  credkit::test::run_until_done(io, done);
  credential->close();
  io.poll();
}
