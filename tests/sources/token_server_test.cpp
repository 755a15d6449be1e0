// The sample token server itself: endpoints, admin faults and counters, signature checks,
// and clean shutdown with a hung connection — driven over loopback with credkit's HTTP client.
#include <doctest/doctest.h>

#include <credkit/credkit.hpp>
#include <credkit/sources/agora_token_info.hpp>

#include "core/base64.hpp"
#include "sources/acs/hmac_signer.hpp"
#include "sources/common/text.hpp"
#include "sources/http/http_client.hpp"
#include "sources/http/http_date.hpp"
#include "token_server.hpp"
#include "token_server_http.hpp"
#include "support/async_helpers.hpp"

#include <boost/asio/io_context.hpp>

#include <nlohmann/json.hpp>

using namespace credkit;
using namespace std::chrono_literals;
using credkit::samples::FaultMode;
using credkit::samples::TokenServer;
using credkit::samples::TokenServerOptions;

namespace {

struct Client {
  boost::asio::io_context io;
  detail::HttpClient http{io.get_executor(), [] {
                            HttpClientOptions o;
                            o.total_timeout = 5s;
                            return o;
                          }()};

  std::pair<std::exception_ptr, detail::HttpResponse> send(detail::HttpRequest req) {
    std::exception_ptr error;
    detail::HttpResponse response;
    bool done = false;
    http.async_request(std::move(req), {}, [&](std::exception_ptr e, detail::HttpResponse r) {
      error = e;
      response = std::move(r);
      done = true;
    });
    credkit::test::run_until_done(io, done);
    return {error, response};
  }

  detail::HttpResponse get(const std::string& url) {
    auto [e, r] = send({"GET", url, {}, {}});
    REQUIRE_FALSE(e);
    return r;
  }
  detail::HttpResponse post(const std::string& url, std::string body) {
    auto [e, r] = send({"POST", url, {{"Content-Type", "application/json"}}, std::move(body)});
    REQUIRE_FALSE(e);
    return r;
  }
};

}  // namespace

TEST_CASE("token server: app endpoints issue ACS-style JWTs with the configured lifetime") {
  TokenServerOptions o;
  o.token_lifetime = 20s;
  TokenServer server(o);
  server.start();
  CHECK(server.port() != 0);
  Client c;
  auto r = c.get(server.base_url() + "/chat/user/alice/token");
  CHECK(r.status == 200);
  auto j = nlohmann::json::parse(r.body);
  auto token = parse_token(j["token"].get<std::string>());
  const auto now = std::chrono::system_clock::now();
  CHECK(token.expires_on > now + 18s);
  CHECK(token.expires_on <= now + 21s);
  CHECK(detail::parse_iso8601(j["expiresOn"].get<std::string>()) == token.expires_on);
  auto r2 = c.post(server.base_url() + "/api/token", R"({"user":"bob"})");
  CHECK(r2.status == 200);
  CHECK(server.request_count("chat_user_token") == 1);
  CHECK(server.request_count("api_token") == 1);
  CHECK(c.get(server.base_url() + "/nope").status == 404);
}

TEST_CASE("token server: Web PubSub client URL and Agora chat token endpoints") {
  TokenServer server;
  server.start();
  Client c;
  auto r = c.get(server.base_url() + "/api/webpubsub/client-url?user=dave");
  REQUIRE(r.status == 200);
  auto j = nlohmann::json::parse(r.body);
  CHECK(j["url"].get<std::string>().find("/client/hubs/chat?access_token=") != std::string::npos);
  CHECK(parse_token(j["token"].get<std::string>()).expires_on > std::chrono::system_clock::now() + 59min);

  auto a = c.get(server.base_url() + "/api/agora/chat/user/user-42/token");
  REQUIRE(a.status == 200);
  auto aj = nlohmann::json::parse(a.body);
  const auto agora_token = aj["token"].get<std::string>();
  CHECK(agora::verify_access_token(agora_token, server.options().agora_app_certificate));
  auto info = agora::parse_access_token(agora_token);
  REQUIRE(info.services.size() == 1);
  CHECK(info.services[0].user_id == "user-42");
  CHECK(parse_token(agora_token).expires_on == info.expires_on);
  CHECK(server.request_count("agora_chat_user_token") == 1);
}

TEST_CASE("token server: admin faults, stats and expired tokens") {
  TokenServer server;
  server.start();
  Client c;
  CHECK(c.post(server.base_url() + "/admin/faults", R"({"mode":"429","count":2,"retry_after":9})").status == 200);
  auto r1 = c.get(server.base_url() + "/chat/user/a/token");
  CHECK(r1.status == 429);
  CHECK(r1.header("retry-after") == "9");
  CHECK(c.get(server.base_url() + "/chat/user/a/token").status == 429);
  CHECK(c.get(server.base_url() + "/chat/user/a/token").status == 200);
  CHECK(c.post(server.base_url() + "/admin/faults", R"({"mode":"expired"})").status == 200);
  auto expired = nlohmann::json::parse(c.get(server.base_url() + "/chat/user/a/token").body);
  CHECK(parse_token(expired["token"].get<std::string>()).expires_on < std::chrono::system_clock::now());
  CHECK(c.post(server.base_url() + "/admin/faults", R"({"mode":"bogus"})").status == 400);
  auto stats = nlohmann::json::parse(c.get(server.base_url() + "/admin/stats").body);
  CHECK(stats["fault_429"] == 2);
  CHECK(stats["chat_user_token"] == 2);
  CHECK(server.stats().at("fault_429") == 2);
}

TEST_CASE("token server: ACS signature check rejects tampering, accepts a correct signature") {
  TokenServer server;
  server.start();
  Client c;
  auto key = *detail::base64_decode(server.options().acs_access_key);
  const std::string host = "127.0.0.1:" + std::to_string(server.port());
  const std::string target = "/identities?api-version=2023-10-01";
  auto make = [&](const std::string& signed_body, const std::string& sent_body, std::chrono::seconds skew) {
    auto h = acs::detail::sign_request("POST", host, target, signed_body,
                                       detail::format_http_date(std::chrono::system_clock::now() + skew), key);
    detail::HttpRequest req{"POST", server.base_url() + target, {}, sent_body};
    req.headers = {{"x-ms-date", h.date}, {"x-ms-content-sha256", h.content_sha256}, {"Authorization", h.authorization}};
    return req;
  };
  CHECK(c.send(make("{}", "{}", 0s)).second.status == 201);
  CHECK(c.send(make("{}", "{ }", 0s)).second.status == 401);            // body changed after signing
  CHECK(c.send(make("{}", "{}", -400s)).second.status == 401);          // stale date
  CHECK(c.send(make("{}", "{}", 400s)).second.status == 401);           // date from the future
  auto forged = make("{}", "{}", 0s);
  forged.headers[2].second.back() = forged.headers[2].second.back() == 'A' ? 'B' : 'A';
  CHECK(c.send(forged).second.status == 401);
  CHECK(server.request_count("acs_unauthorized") == 4);
  CHECK(server.request_count("acs_create_user") == 1);
}

TEST_CASE("token server: stop() returns while a client connection hangs") {
  TokenServer server;
  server.start();
  server.inject_fault({FaultMode::hang, 1});
  Client c;
  bool done = false;
  std::exception_ptr error;
  c.http.async_request({"GET", server.base_url() + "/chat/user/a/token", {}, {}}, {},
                       [&](std::exception_ptr e, detail::HttpResponse) {
                         error = e;
                         done = true;
                       });
  while (server.request_count("fault_hang") == 0) c.io.run_one_for(10ms);
  server.stop();  // must not wait for the hung request
  credkit::test::run_until_done(c.io, done);
  CHECK(error);  // the connection was closed under the request
}

TEST_CASE("token server: hostile requests get an error answer and the server keeps serving") {
  TokenServer server;
  server.start();
  Client c;
  CHECK(c.get(server.base_url() + "/%zz/%4").status == 404);
  CHECK(c.post(server.base_url() + "/admin/faults", R"({"mode":"5xx","count":"many"})").status == 500);
  CHECK(c.post(server.base_url() + "/admin/faults", "not json").status == 400);
  CHECK(c.post(server.base_url() + "/identities?api-version=2023-10-01", "{}").status == 401);  // unsigned
  auto [e, r] = c.send({"POST", server.base_url() + "/api/hubs/chat/:generateToken?minutesToExpire=%%", {}, {}});
  CHECK_FALSE(e);
  CHECK(r.status == 401);
  CHECK(c.get(server.base_url() + "/chat/user/still-alive/token").status == 200);
}

TEST_CASE("token server: every response carries a Date header with the server's clock") {
  TokenServerOptions o;
  o.now = [] { return std::chrono::system_clock::now() + 3h; };  // a server clock 3 h ahead
  TokenServer server(o);
  server.start();
  Client c;
  auto check_date = [](const detail::HttpResponse& r) {
    const auto date = detail::parse_http_date(r.header("Date"));
    REQUIRE_MESSAGE(date, "Date: '" << r.header("Date") << "'");
    CHECK(std::chrono::abs(*date - (std::chrono::system_clock::now() + 3h)) < 2s);
  };
  check_date(c.get(server.base_url() + "/chat/user/alice/token"));                   // 200
  check_date(c.get(server.base_url() + "/nope"));                                    // 404
  check_date(c.post(server.base_url() + "/identities?api-version=2023-10-01", "{}"));  // 401 (unsigned)
  check_date(c.get(server.base_url() + "/admin/stats"));                             // admin
  for (const char* fault : {"429", "5xx", "garbage", "expired"}) {
    CAPTURE(fault);
    CHECK(c.post(server.base_url() + "/admin/faults", std::string(R"({"mode":")") + fault + "\"}").status == 200);
    check_date(c.get(server.base_url() + "/chat/user/alice/token"));
  }
  // The socket-free handler answers the same.
  samples::HttpRequest req{boost::beast::http::verb::get, "/chat/user/bob/token", 11};
  const auto answer = samples::handle_request(server, req);
  REQUIRE(answer);
  const auto date = detail::parse_http_date(std::string((*answer)[boost::beast::http::field::date]));
  REQUIRE(date);
  CHECK(std::chrono::abs(*date - (std::chrono::system_clock::now() + 3h)) < 2s);
}
