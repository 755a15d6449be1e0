// HttpTokenSource and the internal HttpClient against a real Beast server on loopback:
// every answer form, every failure mode, keep-alive, cancellation, timeouts, secret hygiene.
#include <credkit/credkit.hpp>
#include <credkit/sources/http_token_source.hpp>

#include "support/async_helpers.hpp"
#include "sources/http/http_client.hpp"
#include "support/loopback_http_server.hpp"
#include "support/test_tokens.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <ctime>

// Designated initializers leave the other reply fields at their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono_literals;
using std::chrono::system_clock;

namespace {

// Runs one async_fetch to completion on `io` (bounded by the source's total_timeout).
Outcome<AccessToken> fetch_once(boost::asio::io_context& io, const HttpTokenSource& source) {
  return run_op<AccessToken>(io, [&](auto handler) { source.async_fetch(std::move(handler)); });
}

std::string rethrow_message(const std::exception_ptr& e) { return as_error(e).what(); }

// The one request `server` has seen.
HttpExchange only_exchange(const LoopbackHttpServer& server) {
  const auto seen = server.exchanges();
  REQUIRE(seen.size() == 1);
  return seen[0];
}

HttpTokenSourceOptions options_for(const LoopbackHttpServer& server, std::string_view path,
                                   HttpTokenResponse response = HttpTokenResponse::plain_text()) {
  HttpTokenSourceOptions o;
  o.url = server.url(path);
  o.response = std::move(response);
  return o;
}

// "YYYY-MM-DDTHH:MM:SS" of `t` shifted into the zone `offset` (for "+02:00"-style timestamps).
std::string local_iso(system_clock::time_point t, std::chrono::minutes offset) {
  const std::time_t secs = system_clock::to_time_t(t + offset);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return buf;
}

system_clock::time_point whole_seconds(system_clock::time_point t) {
  return std::chrono::floor<std::chrono::seconds>(t);
}

const std::string session_secret = "Bearer app-session-7f3c9a1b2d4e6f8091a2b3c4d5e6f708";

}  // namespace

TEST_CASE("http: a plain-text token, expiry read from the token; request as configured") {
  const auto exp = whole_seconds(system_clock::now() + 1h);
  const auto jwt = make_jwt(exp);
  LoopbackHttpServer server([&](const HttpExchange&) { return HttpReply{.body = jwt + "\r\n"}; });
  boost::asio::io_context io;
  auto o = options_for(server, "/chat/user/alice/token");
  o.headers = {{"Authorization", session_secret}, {"Cookie", "sid=abc"}};
  HttpTokenSource source(io.get_executor(), o);

  const auto r = fetch_once(io, source);
  REQUIRE_FALSE(r.error);
  CHECK(r.value.token == jwt);
  CHECK(r.value.expires_on == exp);

  const auto seen = only_exchange(server);
  CHECK(seen.method == "GET");
  CHECK(seen.target == "/chat/user/alice/token");
  CHECK(seen.header("Authorization") == session_secret);
  CHECK(seen.header("Cookie") == "sid=abc");
  CHECK(seen.header("User-Agent").starts_with("credkit/"));
}

TEST_CASE("http: POST with a body and JSON answers in every supported form") {
  const auto now = system_clock::now();
  const auto exp = whole_seconds(now + 2h);
  const auto jwt = make_jwt(exp);
  std::string answer;
  LoopbackHttpServer server([&](const HttpExchange&) {
    return HttpReply{.body = answer, .content_type = "application/json"};
  });
  boost::asio::io_context io;

  auto run = [&](std::string body, HttpTokenResponse format) {
    answer = std::move(body);
    auto o = options_for(server, "/api/token", std::move(format));
    o.method = "POST";
    o.body = R"({"user":"alice"})";
    o.headers = {{"Content-Type", "application/json"}};
    HttpTokenSource source(io.get_executor(), o);
    return fetch_once(io, source);
  };

  SUBCASE("ACS style, Z") {
    const auto r = run(R"({"token":")" + jwt + R"(","expiresOn":")" + local_iso(exp, 0min) + R"(Z"})",
                       HttpTokenResponse::acs());
    REQUIRE_FALSE(r.error);
    CHECK(r.value.token == jwt);
    CHECK(r.value.expires_on == exp);
    const auto seen = only_exchange(server);
    CHECK(seen.method == "POST");
    CHECK(seen.body == R"({"user":"alice"})");
    CHECK(seen.header("Accept") == "application/json");
  }
  SUBCASE("ACS style, 7 fraction digits and +02:00") {
    const auto r = run(R"({"token":"opaque-token-value-0123456789","expiresOn":")" + local_iso(exp, 120min) +
                           R"(.2500000+02:00"})",
                       HttpTokenResponse::acs());
    REQUIRE_FALSE(r.error);
    CHECK(r.value.token == "opaque-token-value-0123456789");
    CHECK(r.value.expires_on == exp + 250ms);
  }
  SUBCASE("ACS style, -05:30") {
    const auto r = run(R"({"token":"t0123456789abcdef","expiresOn":")" + local_iso(exp, -330min) + R"(-05:30"})",
                       HttpTokenResponse::acs());
    REQUIRE_FALSE(r.error);
    CHECK(r.value.expires_on == exp);
  }
  SUBCASE("OAuth style, expires_in as number and as string") {
    for (std::string lifetime : {"3599", "\"3599\""}) {
      const auto before = system_clock::now();
      const auto r = run(R"({"access_token":"opaque-access-token-000111222333","token_type":"Bearer","expires_in":)" +
                             lifetime + "}",
                         HttpTokenResponse::oauth());
      const auto after = system_clock::now();
      REQUIRE_FALSE(r.error);
      CHECK(r.value.token == "opaque-access-token-000111222333");
      CHECK(r.value.expires_on >= before + 3599s);
      CHECK(r.value.expires_on <= after + 3599s);
    }
  }
  SUBCASE("Web PubSub style: expiry from the JWT") {
    const auto r = run(R"({"token":")" + jwt + R"(","url":"wss://x/client/hubs/chat?access_token=)" + jwt + "\"}",
                       HttpTokenResponse::web_pubsub());
    REQUIRE_FALSE(r.error);
    CHECK(r.value.token == jwt);
    CHECK(r.value.expires_on == exp);
  }
  SUBCASE("nested paths") {
    const auto r = run(R"({"user":{"id":"8:acs:1"},"accessToken":{"token":")" + jwt + R"(","expiresOn":")" +
                           local_iso(exp, 0min) + R"(Z"}})",
                       HttpTokenResponse::json("accessToken.token", "accessToken.expiresOn",
                                               HttpTokenResponse::Expiry::timestamp));
    REQUIRE_FALSE(r.error);
    CHECK(r.value.token == jwt);
    CHECK(r.value.expires_on == exp);
  }
  SUBCASE("timestamp given as Unix seconds") {
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(exp.time_since_epoch()).count();
    const auto r = run(R"({"token":"t0123456789abcdef","expires_on":")" + std::to_string(secs) + "\"}",
                       HttpTokenResponse::json("token", "expires_on", HttpTokenResponse::Expiry::timestamp));
    REQUIRE_FALSE(r.error);
    CHECK(r.value.expires_on == exp);
  }
}

TEST_CASE("http: malformed answers name the field and never show the token") {
  const auto jwt = make_jwt(system_clock::now() + 1h);
  std::string answer;
  LoopbackHttpServer server([&](const HttpExchange&) { return HttpReply{.body = answer}; });
  boost::asio::io_context io;
  auto run = [&](std::string body, HttpTokenResponse format) {
    answer = std::move(body);
    HttpTokenSource source(io.get_executor(), options_for(server, "/t", std::move(format)));
    return fetch_once(io, source);
  };
  struct Case {
    std::string body;
    HttpTokenResponse format;
    errc code;
    std::string says;
  };
  const auto past = local_iso(system_clock::now() - 1h, 0min) + "Z";
  const std::vector<Case> cases = {
      {"{\"token\": \"" + jwt + "\"", HttpTokenResponse::acs(), errc::invalid_response, "not valid JSON"},
      {"<html>" + jwt + "</html>", HttpTokenResponse::acs(), errc::invalid_response, "not valid JSON"},
      {"[\"" + jwt + "\"]", HttpTokenResponse::web_pubsub(), errc::invalid_response, "expected an object"},
      {R"({"tok":")" + jwt + R"("})", HttpTokenResponse::web_pubsub(), errc::invalid_response, "no field 'token'"},
      {R"({"token":42})", HttpTokenResponse::web_pubsub(), errc::invalid_response, "field 'token'"},
      {R"({"token":""})", HttpTokenResponse::web_pubsub(), errc::invalid_token, "field 'token'"},
      {R"({"token":")" + jwt + R"("})", HttpTokenResponse::acs(), errc::invalid_response, "'expiresOn'"},
      {R"({"token":")" + jwt + R"(","expiresOn":"tomorrow"})", HttpTokenResponse::acs(), errc::invalid_response,
       "'expiresOn' is not an ISO 8601"},
      {R"({"token":")" + jwt + R"(","expiresOn":"2026-02-30T10:00:00Z"})", HttpTokenResponse::acs(),
       errc::invalid_response, "'expiresOn'"},
      {R"({"token":")" + jwt + R"(","expiresOn":")" + past + "\"}", HttpTokenResponse::acs(), errc::invalid_token,
       "'expiresOn'"},
      {R"({"access_token":")" + jwt + R"(","expires_in":0})", HttpTokenResponse::oauth(), errc::invalid_token,
       "'expires_in'"},
      {R"({"access_token":")" + jwt + R"(","expires_in":"soon"})", HttpTokenResponse::oauth(),
       errc::invalid_response, "'expires_in'"},
      {R"({"accessToken":{"tok":"x"}})",
       HttpTokenResponse::json("accessToken.token"), errc::invalid_response, "'accessToken.token'"},
      {R"({"accessToken":"flat"})", HttpTokenResponse::json("accessToken.token"), errc::invalid_response,
       "'accessToken.token'"},
      {"   \r\n", HttpTokenResponse::plain_text(), errc::invalid_token, "empty"},
      {"not a token!", HttpTokenResponse::plain_text(), errc::invalid_token, ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    const auto r = run(c.body, c.format);
    const auto err = as_error(r.error);
    CHECK(err.code() == make_error_code(c.code));
    const std::string msg = err.what();
    CHECK_MESSAGE(msg.find(c.says) != std::string::npos, msg);
    CHECK(msg.find(jwt) == std::string::npos);
    CHECK(msg.find(server.url("/t").substr(0, 16)) != std::string::npos);  // says which request
    CHECK(err.retryable());  // a glitching service may answer properly next time
  }
}

TEST_CASE("http: error statuses are classified for the retry policy, bodies truncated and redacted") {
  const auto jwt = make_jwt(system_clock::now() + 1h);
  HttpReply reply;
  LoopbackHttpServer server([&](const HttpExchange&) { return reply; });
  boost::asio::io_context io;
  auto o = options_for(server, "/token?user=alice&sig=query-secret-value");
  o.headers = {{"Authorization", session_secret}};
  HttpTokenSource source(io.get_executor(), o);

  SUBCASE("503 is retryable") {
    reply = {.status = 503, .body = "backend down; echo: " + session_secret + " token " + jwt};
    const auto err = as_error(fetch_once(io, source).error);
    CHECK(err.code() == make_error_code(errc::http_status));
    CHECK(err.http_status() == 503);
    CHECK(err.retryable());
    const std::string msg = err.what();
    CHECK(msg.find("GET http://127.0.0.1:" + std::to_string(server.port()) + "/token answered HTTP 503") !=
          std::string::npos);
    CHECK(msg.find("backend down") != std::string::npos);
    CHECK(msg.find("app-session-7f3c9a1b2d4e6f8091a2b3c4d5e6f708") == std::string::npos);
    CHECK(msg.find(jwt) == std::string::npos);
    CHECK(msg.find(jwt.substr(0, 30)) == std::string::npos);
    CHECK(msg.find("query-secret-value") == std::string::npos);
    CHECK(msg.find("user=alice") == std::string::npos);
  }
  SUBCASE("429 with Retry-After seconds") {
    reply = {.status = 429, .body = "slow down", .headers = {{"Retry-After", "7"}}};
    const auto err = as_error(fetch_once(io, source).error);
    CHECK(err.code() == make_error_code(errc::rate_limited));
    CHECK(err.retryable());
    REQUIRE(err.retry_after());
    CHECK(*err.retry_after() == 7s);
    CHECK(err.http_status() == 429);
  }
  SUBCASE("429 with Retry-After as an HTTP-date") {
    const std::time_t when = system_clock::to_time_t(system_clock::now() + 120s);
    std::tm tm{};
    gmtime_r(&when, &tm);
    char date[64];
    std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    reply = {.status = 429, .headers = {{"Retry-After", date}}};
    const auto err = as_error(fetch_once(io, source).error);
    CHECK(err.code() == make_error_code(errc::rate_limited));
    REQUIRE(err.retry_after());
    CHECK(*err.retry_after() > 110s);
    CHECK(*err.retry_after() <= 120s);
  }
  SUBCASE("401, 403, 404 are not retryable; 408 is") {
    for (int status : {400, 401, 403, 404, 408}) {
      reply = {.status = status, .body = R"({"error":"invalid_session","access_token":"short-secret"})"};
      const auto err = as_error(fetch_once(io, source).error);
      CHECK(err.code() == make_error_code(errc::http_status));
      CHECK(err.http_status() == status);
      CHECK(err.retryable() == (status == 408));
      const std::string msg = err.what();
      CHECK(msg.find("invalid_session") != std::string::npos);
      CHECK(msg.find("short-secret") == std::string::npos);
    }
  }
  SUBCASE("a long error body is cut to 256 characters") {
    reply = {.status = 500, .body = std::string(5000, 'x') + " tail"};
    const std::string msg = as_error(fetch_once(io, source).error).what();
    CHECK(msg.find(" tail") == std::string::npos);
    CHECK(msg.size() < 600);
  }
}

TEST_CASE("http: transport failures: refused, silent server, slow drip, oversized answer") {
  boost::asio::io_context io;
  SUBCASE("connection refused is a retryable network_error") {
    unsigned short port = 0;
    {
      boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
      port = probe.local_endpoint().port();
    }  // closed: nothing listens there now
    HttpTokenSourceOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(port) + "/token";
    HttpTokenSource source(io.get_executor(), o);
    const auto err = as_error(fetch_once(io, source).error);
    CHECK(err.code() == make_error_code(errc::network_error));
    CHECK(err.retryable());
    CHECK(std::string(err.what()).find("127.0.0.1") != std::string::npos);
  }
  SUBCASE("a server that accepts and never answers hits the total timeout") {
    LoopbackHttpServer server([](const HttpExchange&) { return HttpReply{.mode = HttpReply::Mode::never_answer}; });
    auto o = options_for(server, "/t");
    o.http.total_timeout = 300ms;
    HttpTokenSource source(io.get_executor(), o);
    const auto start = std::chrono::steady_clock::now();
    const auto err = as_error(fetch_once(io, source).error);
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(err.code() == make_error_code(errc::timeout));
    CHECK(err.retryable());
    CHECK(took >= 290ms);  // not before the timeout (no upper bound asserted: the box is shared)
    CHECK(server.requests() == 1);
  }
  SUBCASE("a slow drip is cut by the total timeout") {
    LoopbackHttpServer server([](const HttpExchange&) {
      return HttpReply{.body = std::string(100, 'a'), .mode = HttpReply::Mode::drip, .drip_interval = 50ms};
    });
    auto o = options_for(server, "/t");
    o.http.total_timeout = 400ms;
    HttpTokenSource source(io.get_executor(), o);
    const auto err = as_error(fetch_once(io, source).error);
    CHECK(err.code() == make_error_code(errc::timeout));
  }
  SUBCASE("a 10 MB answer is refused at the size cap") {
    LoopbackHttpServer server([](const HttpExchange&) { return HttpReply{.body = std::string(10 << 20, 'z')}; });
    HttpTokenSource source(io.get_executor(), options_for(server, "/t"));
    const auto err = as_error(fetch_once(io, source).error);
    CHECK(err.code() == make_error_code(errc::response_too_large));
    CHECK(std::string(err.what()).find("1048576") != std::string::npos);
  }
  SUBCASE("an answer over a small cap, without Content-Length, is refused while streaming") {
    LoopbackHttpServer server([](const HttpExchange&) {
      return HttpReply{.body = std::string(300, 'z'), .mode = HttpReply::Mode::drip, .drip_interval = 1ms};
    });
    auto o = options_for(server, "/t");
    o.http.max_response_bytes = 200;
    HttpTokenSource source(io.get_executor(), o);
    CHECK(as_error(fetch_once(io, source).error).code() == make_error_code(errc::response_too_large));
  }
  SUBCASE("the server closing without an answer is a network_error") {
    LoopbackHttpServer server([](const HttpExchange&) { return HttpReply{.mode = HttpReply::Mode::close}; });
    HttpTokenSource source(io.get_executor(), options_for(server, "/t"));
    const auto err = as_error(fetch_once(io, source).error);
    CHECK(err.code() == make_error_code(errc::network_error));
    CHECK(err.retryable());
  }
}

TEST_CASE("http: 100 fetches reuse one keep-alive connection") {
  const auto jwt = make_jwt(system_clock::now() + 1h);
  LoopbackHttpServer server([&](const HttpExchange&) { return HttpReply{.body = jwt}; });
  boost::asio::io_context io;
  HttpTokenSource source(io.get_executor(), options_for(server, "/token"));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) {
    const auto r = fetch_once(io, source);
    REQUIRE_FALSE(r.error);
    REQUIRE(r.value.token == jwt);
  }
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(server.requests() == 100);
  CHECK(server.connections() == 1);
  const auto seen = server.exchanges();
  CHECK(std::all_of(seen.begin(), seen.end(), [](const HttpExchange& e) { return e.connection == 1; }));
  MESSAGE("100 sequential fetches over 1 connection: "
          << std::chrono::duration_cast<std::chrono::microseconds>(took).count() / 100 << " us per fetch");

  // Baseline in the same run: a fresh source (own pool) per fetch opens a connection each time.
  const auto fresh_start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) {
    HttpTokenSource fresh(io.get_executor(), options_for(server, "/token"));
    REQUIRE_FALSE(fetch_once(io, fresh).error);
  }
  const auto fresh_took = std::chrono::steady_clock::now() - fresh_start;
  CHECK(server.connections() == 101);
  MESSAGE("100 sequential fetches, new connection each: "
          << std::chrono::duration_cast<std::chrono::microseconds>(fresh_took).count() / 100
          << " us per fetch (ratio new/reused " << std::chrono::duration<double>(fresh_took) / std::chrono::duration<double>(took) << ")");
}

TEST_CASE("http: cancellation aborts the transfer with errc::cancelled") {
  LoopbackHttpServer server([](const HttpExchange&) { return HttpReply{.mode = HttpReply::Mode::never_answer}; });
  boost::asio::io_context io;
  HttpTokenSource source(io.get_executor(), options_for(server, "/t"));  // total_timeout 30 s
  boost::asio::cancellation_signal signal;
  Outcome<AccessToken> r;
  bool done = false;
  const auto start = std::chrono::steady_clock::now();
  source.async_fetch(boost::asio::bind_cancellation_slot(
      signal.slot(), boost::asio::bind_executor(io, [&](std::exception_ptr e, AccessToken t) {
        r = {e, std::move(t)};
        done = true;
      })));
  // Run the I/O until the server has the request, then cancel from this (the handler's) thread.
  while (server.requests() == 0 && std::chrono::steady_clock::now() - start < 10s) io.run_one_for(10ms);
  REQUIRE(server.requests() == 1);
  REQUIRE_FALSE(done);
  signal.emit(boost::asio::cancellation_type::terminal);
  credkit::test::run_until_done(io, done);
  CHECK(as_error(r.error).code() == make_error_code(errc::cancelled));
  CHECK(std::chrono::steady_clock::now() - start < 20s);  // well before the 30 s total timeout

  // The source still works after a cancelled fetch.
  LoopbackHttpServer good([](const HttpExchange&) { return HttpReply{.body = make_jwt(system_clock::now() + 1h)}; });
  HttpTokenSource again(io.get_executor(), options_for(good, "/t"));
  CHECK_FALSE(fetch_once(io, again).error);
}

TEST_CASE("http: plain http:// is refused before any traffic unless to loopback or allowed") {
  HttpTokenSourceOptions o;
  o.url = "http://tokens.example.com/api/token";
  try {
    HttpTokenSource source(o);
    FAIL("plain http to a remote host was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == make_error_code(errc::insecure_url));
    CHECK(std::string(e.what()).find("allow_insecure_http") != std::string::npos);
  }
  for (const char* url : {"http://localhost:1/t", "http://127.0.0.1:1/t", "http://127.8.9.10/t", "http://[::1]:1/t",
                          "https://tokens.example.com/t"}) {
    CAPTURE(url);
    o.url = url;
    CHECK_NOTHROW(HttpTokenSource{o});
  }
  o.url = "http://tokens.example.com/api/token";
  o.http.allow_insecure_http = true;
  CHECK_NOTHROW(HttpTokenSource{o});
  o.http.allow_insecure_http = false;
  for (const char* url : {"", "tokens.example.com/t", "ftp://tokens.example.com/t", "http://", "https://exa mple.com/"}) {
    CAPTURE(url);
    o.url = url;
    try {
      HttpTokenSource source(o);
      FAIL("accepted a bad URL");
    } catch (const Error& e) {
      CHECK(e.code() == make_error_code(errc::invalid_argument));
    }
  }
  // The internal client refuses too, asynchronously (posted, never inline).
  boost::asio::io_context io;
  detail::HttpClient client(io.get_executor(), {});
  bool done = false;
  std::exception_ptr error;
  client.async_request({.url = "http://10.1.2.3/token"}, {}, [&](std::exception_ptr e, detail::HttpResponse) {
    error = e;
    done = true;
  });
  CHECK_FALSE(done);
  io.run();
  CHECK(done);
  CHECK(as_error(error).code() == make_error_code(errc::insecure_url));
}

TEST_CASE("http: bad options are refused with invalid_argument") {
  HttpTokenSourceOptions o;
  o.url = "https://tokens.example.com/t";
  auto refused = [](const HttpTokenSourceOptions& bad) {
    try {
      HttpTokenSource source(bad);
    } catch (const Error& e) {
      return e.code() == make_error_code(errc::invalid_argument);
    }
    return false;
  };
  auto bad = o;
  bad.method = "get me";
  CHECK(refused(bad));
  bad = o;
  bad.headers = {{"X-Evil", "a\r\nHost: elsewhere"}};
  CHECK(refused(bad));
  bad = o;
  bad.response = HttpTokenResponse::json("");
  CHECK(refused(bad));
  bad = o;
  bad.response = HttpTokenResponse::json("a..b");
  CHECK(refused(bad));
  bad = o;
  bad.response = HttpTokenResponse::json("token", "", HttpTokenResponse::Expiry::seconds_from_now);
  CHECK(refused(bad));
  bad = o;
  bad.http.total_timeout = 0ms;
  CHECK(refused(bad));
}

TEST_CASE("http: the internal client: methods, headers, bodies, status passthrough") {
  LoopbackHttpServer server([](const HttpExchange& ex) {
    return HttpReply{.status = ex.target == "/missing" ? 404 : 201,
                     .body = ex.method + " " + ex.body,
                     .headers = {{"X-Echo", ex.header("X-Test")}, {"x-lower", "yes"}}};
  });
  boost::asio::io_context io;
  detail::HttpClient client(io.get_executor(), {});
  auto request = [&](detail::HttpRequest req) {
    std::pair<std::exception_ptr, detail::HttpResponse> out;
    bool done = false;
    client.async_request(std::move(req), {}, [&](std::exception_ptr e, detail::HttpResponse r) {
      out = {e, std::move(r)};
      done = true;
    });
    credkit::test::run_until_done(io, done);
    return out;
  };
  auto [e1, r1] = request({.method = "PUT", .url = server.url("/x"), .headers = {{"X-Test", "abc"}}, .body = "payload"});
  REQUIRE_FALSE(e1);
  CHECK(r1.status == 201);
  CHECK(r1.body == "PUT payload");
  CHECK(r1.header("x-echo") == "abc");
  CHECK(r1.header("X-LOWER") == "yes");
  CHECK(r1.header("absent").empty());
  auto [e2, r2] = request({.url = server.url("/missing")});
  REQUIRE_FALSE(e2);  // a status is not a transport error
  CHECK(r2.status == 404);
  const auto err = detail::http_error({.url = server.url("/missing")}, r2);
  CHECK(err.code() == make_error_code(errc::http_status));
  CHECK_FALSE(err.retryable());
}

TEST_CASE("http: end to end: a TokenCredential fetches over HTTP, 20 refreshes on one connection") {
  std::atomic<int> minted{0};
  LoopbackHttpServer server([&](const HttpExchange& ex) {
    if (ex.header("Authorization") != session_secret) return HttpReply{.status = 401};
    const auto exp = whole_seconds(system_clock::now() + 1h);
    return HttpReply{.body = R"({"token":")" + make_jwt(exp, "user-" + std::to_string(minted++)) +
                             R"(","expiresOn":")" + local_iso(exp, 0min) + R"(Z"})",
                     .content_type = "application/json"};
  });
  LogCapture logs;
  boost::asio::io_context io;
  auto o = options_for(server, "/chat/user/alice/token", HttpTokenResponse::acs());
  o.headers = {{"Authorization", session_secret}};
  HttpTokenSource source(o);  // binds to the credential's executor on first use

  TokenCredentialOptions co;
  co.fetcher = source.fetcher();
  co.mode = RefreshMode::on_demand;
  auto credential = TokenCredential::create(io.get_executor(), co);

  auto get = [&] {
    std::exception_ptr error;
    TokenHandle token;
    bool done = false;
    credential->async_get_token([&](std::exception_ptr e, TokenHandle t) {
      error = e;
      token = std::move(t);
      done = true;
    });
    credkit::test::run_until_done(io, done);
    if (error) FAIL(rethrow_message(error));
    return token;
  };
  auto token = get();
  CHECK(token.token() == make_jwt(token.expires_on(), "user-0"));
  for (int i = 1; i <= 20; ++i) {
    CHECK(credential->invalidate(token));
    auto next = get();
    CHECK(next.token() != token.token());
    token = next;
  }
  CHECK(server.requests() == 21);
  CHECK(server.connections() == 1);
  credential->close();
  io.restart();
  io.run();
  for (const auto& [level, line] : logs.lines()) {
    CHECK(line.find("app-session-7f3c9a1b2d4e6f8091a2b3c4d5e6f708") == std::string::npos);
    CHECK(line.find(token.token()) == std::string::npos);
  }
}

TEST_CASE("http: a failing fetch surfaces through the credential with its retryable classification") {
  LoopbackHttpServer server([](const HttpExchange&) { return HttpReply{.status = 401, .body = "session expired"}; });
  boost::asio::io_context io;
  HttpTokenSource source(options_for(server, "/t"));
  TokenCredentialOptions co;
  co.fetcher = source.fetcher();
  co.mode = RefreshMode::on_demand;
  auto credential = TokenCredential::create(io.get_executor(), co);
  std::exception_ptr error;
  bool done = false;
  credential->async_get_token([&](std::exception_ptr e, TokenHandle) {
    error = e;
    done = true;
  });
  credkit::test::run_until_done(io, done);
  const auto err = as_error(error);
  // The source's Error reaches the caller as is: code, status and classification intact.
  CHECK(err.code() == make_error_code(errc::http_status));
  CHECK(err.http_status() == 401);
  CHECK_FALSE(err.retryable());
  CHECK(std::string(err.what()).find("session expired") != std::string::npos);
  credential->close();
  io.restart();
  io.run();
}

TEST_CASE("http: destroying the client with a request outstanding is safe; the request still completes") {
  LoopbackHttpServer server([](const HttpExchange&) { return HttpReply{.mode = HttpReply::Mode::never_answer}; });
  boost::asio::io_context io;
  std::exception_ptr error;
  bool done = false;
  {
    HttpClientOptions o;
    o.total_timeout = 300ms;
    detail::HttpClient client(io.get_executor(), o);
    client.async_request({.url = server.url("/t")}, {}, [&](std::exception_ptr e, detail::HttpResponse) {
      error = e;
      done = true;
    });
  }  // every copy gone; the transfer keeps the engine alive until it ends
  credkit::test::run_until_done(io, done);
  CHECK(as_error(error).code() == make_error_code(errc::timeout));
  io.restart();
  io.run_for(5s);
  CHECK(io.stopped());  // ran out of work: no timer or socket wait left behind
}
