// credkit::webpubsub: connection strings, locally generated client tokens and URLs (default,
// MQTT, Socket.IO), and the :generateToken REST API with an Entra bearer over loopback.
#include <doctest/doctest.h>

#include <credkit/credkit.hpp>
#include <credkit/sources/entra_client_secret_source.hpp>
#include <credkit/sources/webpubsub_connection_string.hpp>
#include <credkit/sources/webpubsub_service_client.hpp>
#include <credkit/sources/webpubsub_token_api_client.hpp>
#include <credkit/testing/manual_clock.hpp>

#include "support/async_helpers.hpp"
#include "core/base64.hpp"
#include "sources/common/crypto.hpp"
#include "sources/common/text.hpp"
#include "sources/webpubsub/webpubsub_tokens.hpp"
#include "source_test_support.hpp"
#include "token_server.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <sstream>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kKey = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg=";


// Checks the HS256 signature independently (OpenSSL HMAC via credkit's helper over the raw key).
bool signed_with(const std::string& token, const std::string& key) {
  auto dot = token.rfind('.');
  return detail::base64url_encode(detail::hmac_sha256(key, token.substr(0, dot))) == token.substr(dot + 1);
}


}  // namespace

TEST_CASE("webpubsub: connection strings") {
  auto cs = webpubsub::ConnectionString::parse(std::string("Endpoint=https://demo.webpubsub.azure.com;AccessKey=") +
                                               kKey + ";Version=1.0;");
  CHECK(cs.endpoint() == "https://demo.webpubsub.azure.com");
  CHECK(cs.access_key() == kKey);
  auto with_port = webpubsub::ConnectionString::parse(std::string("endpoint=http://localhost;accesskey=") + kKey +
                                                      ";port=8080;version=1.0");
  CHECK(with_port.endpoint() == "http://localhost:8080");
  std::ostringstream os;
  os << cs;
  CHECK(os.str().find(kKey) == std::string::npos);
  for (std::string bad : {std::string("AccessKey=") + kKey, std::string("Endpoint=https://x"),
                          std::string("Endpoint=https://x;AccessKey=") + kKey + ";Version=2.0",
                          std::string("Endpoint=https://x;AccessKey=") + kKey + ";Port=70000",
                          std::string("Endpoint=x;AccessKey=") + kKey}) {
    CAPTURE(bad);
    try {
      (void)webpubsub::ConnectionString::parse(bad);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.code() == make_error_code(errc::invalid_connection_string));
      CHECK(std::string(e.what()).find(kKey) == std::string::npos);
    }
  }
}

TEST_CASE("webpubsub: client access tokens carry the claims the service expects") {
  const auto now = std::chrono::sys_days{std::chrono::year{2026} / 11 / 23} + 10h;
  webpubsub::ServiceClient client(
      webpubsub::ConnectionString::parse(std::string("Endpoint=https://demo.webpubsub.azure.com;AccessKey=") + kKey +
                                         ";Version=1.0;"),
      "chat", std::make_shared<credkit::testing::ManualClock>(now));
  webpubsub::ClientTokenOptions o;
  o.user_id = "alice";
  o.roles = {"webpubsub.joinLeaveGroup.group1", "webpubsub.sendToGroup.group1"};
  o.groups = {"group1"};
  o.lifetime = 5min;
  auto access = client.client_access(o);
  auto p = jwt_payload(access.token.token);
  CHECK(p["aud"] == "https://demo.webpubsub.azure.com/client/hubs/chat");
  CHECK(p["sub"] == "alice");
  CHECK(p["role"] == nlohmann::json(o.roles));
  CHECK(p["webpubsub.group"] == nlohmann::json({"group1"}));
  const auto iat = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  CHECK(p["iat"] == iat);
  CHECK(p["exp"] == iat + 300);
  CHECK(access.token.expires_on == now + 5min);
  CHECK(parse_token(access.token.token).expires_on == access.token.expires_on);
  CHECK(signed_with(access.token.token, kKey));
  CHECK(access.url == "wss://demo.webpubsub.azure.com/client/hubs/chat?access_token=" + access.token.token);

  o = {};
  o.client_type = webpubsub::ClientType::mqtt;
  auto mqtt = client.client_access(o);
  CHECK(jwt_payload(mqtt.token.token)["aud"] == "https://demo.webpubsub.azure.com/clients/mqtt/hubs/chat");
  CHECK(jwt_payload(mqtt.token.token).contains("sub") == false);
  CHECK(mqtt.url.rfind("wss://demo.webpubsub.azure.com/clients/mqtt/hubs/chat?access_token=", 0) == 0);
  CHECK(jwt_payload(mqtt.token.token)["exp"] == iat + 3600);  // default 60 minutes
  o.client_type = webpubsub::ClientType::socketio;
  auto sio = client.client_access(o);
  CHECK(jwt_payload(sio.token.token)["aud"] == "https://demo.webpubsub.azure.com/clients/socketio/hubs/chat");

  o.lifetime = 0min;
  CHECK_THROWS_AS(client.client_access(o), Error);
  CHECK_THROWS_AS(webpubsub::ServiceClient(webpubsub::ConnectionString::parse(
                                               std::string("Endpoint=https://d;AccessKey=") + kKey),
                                           "bad hub/.."),
                  Error);
}

TEST_CASE("webpubsub: the local generator works as a credential fetcher") {
  boost::asio::io_context io;
  webpubsub::ServiceClient client(webpubsub::ConnectionString::parse(
                                      std::string("Endpoint=https://demo.webpubsub.azure.com;AccessKey=") + kKey),
                                  "chat");
  webpubsub::ClientTokenOptions o;
  o.user_id = "bob";
  auto credential = on_demand_credential(io, client.fetcher(o));
  bool done = false;
  credential->async_get_token([&](std::exception_ptr e, TokenHandle t) {
    REQUIRE_FALSE(e);
    CHECK(jwt_payload(t.token())["sub"] == "bob");
    done = true;
  });
  credkit::test::run_until_done(io, done);
  credential->close();
  io.poll();
}

TEST_CASE("webpubsub: :generateToken with an Entra bearer from the client credentials source") {
  TokenServer server;
  server.start();
  boost::asio::io_context io;
  entra::ClientSecretSource entra_source(io.get_executor(), entra_options_for(server));
  auto entra_credential = on_demand_credential(io, entra_source.fetcher());

  webpubsub::TokenApiClient api(io.get_executor(), server.base_url(), "chat", entra_credential);
  auto generate = [&](webpubsub::ClientTokenOptions o) {
    std::exception_ptr error;
    webpubsub::ClientAccess access;
    bool done = false;
    api.async_generate_token(o, boost::asio::bind_executor(io, [&](std::exception_ptr e, webpubsub::ClientAccess a) {
      error = e;
      access = std::move(a);
      done = true;
    }));
    credkit::test::run_until_done(io, done);
    return std::make_pair(error, access);
  };
  webpubsub::ClientTokenOptions o;
  o.user_id = "carol";
  o.roles = {"webpubsub.sendToGroup"};
  o.groups = {"g1", "g2"};
  o.lifetime = 30min;
  o.client_type = webpubsub::ClientType::mqtt;
  auto [error, access] = generate(o);
  REQUIRE_FALSE(error);
  auto p = jwt_payload(access.token.token);
  CHECK(p["sub"] == "carol");
  CHECK(p["webpubsub.group"] == nlohmann::json({"g1", "g2"}));
  CHECK(p["role"] == nlohmann::json({"webpubsub.sendToGroup"}));
  CHECK(p["aud"].get<std::string>().find("/clients/mqtt/hubs/chat") != std::string::npos);
  CHECK(signed_with(access.token.token, server.options().webpubsub_access_key));
  CHECK(access.token.expires_on > std::chrono::system_clock::now() + 29min);
  CHECK(access.url.rfind("ws://127.0.0.1:", 0) == 0);
  // Second call reuses the cached Entra token: one Entra request in all.
  auto [error2, access2] = generate({});
  CHECK_FALSE(error2);
  CHECK(server.request_count("entra_token") == 1);
  CHECK(server.request_count("webpubsub_generate_token") == 2);

  server.inject_fault({FaultMode::server_error, 1});
  auto [error3, access3] = generate({});
  CHECK(as_error(error3).http_status() == 503);
  entra_credential->close();
  io.restart();
  io.poll();
}

TEST_CASE("webpubsub: :generateToken without a valid bearer is a non-retryable 401") {
  TokenServer server;
  server.start();
  boost::asio::io_context io;
  TokenCredentialOptions co;
  co.initial_token = AccessToken{"not-an-entra-token-just-opaque-text", std::chrono::system_clock::now() + 1h};
  auto bogus = TokenCredential::create(io.get_executor(), std::move(co));
  webpubsub::TokenApiClient api(io.get_executor(), server.base_url(), "chat", bogus);
  std::exception_ptr error;
  bool done = false;
  api.async_generate_token({}, boost::asio::bind_executor(io, [&](std::exception_ptr e, webpubsub::ClientAccess) {
    error = e;
    done = true;
  }));
  credkit::test::run_until_done(io, done);
  auto e = as_error(error);
  CHECK(e.http_status() == 401);
  CHECK_FALSE(e.retryable());
  CHECK(std::string(e.what()).find("not-an-entra-token") == std::string::npos);
  bogus->close();
  io.restart();
  io.poll();
}

TEST_CASE("webpubsub: the :generateToken request carries every option in its query") {
  webpubsub::ClientTokenOptions o;
  o.user_id = "user 1";
  o.roles = {"webpubsub.joinLeaveGroup.g1", "webpubsub.sendToGroup"};
  o.groups = {"g1"};
  o.lifetime = 90min;
  o.client_type = webpubsub::ClientType::mqtt;
  auto req = webpubsub::detail::make_generate_token_request("https://demo.webpubsub.azure.com", "chat", o);
  CHECK(req.method == "POST");
  CHECK(req.url ==
        "https://demo.webpubsub.azure.com/api/hubs/chat/:generateToken?api-version=2024-01-01&userId=user%201"
        "&role=webpubsub.joinLeaveGroup.g1&role=webpubsub.sendToGroup&minutesToExpire=90&group=g1&clientType=mqtt");
  o = {};
  auto plain = webpubsub::detail::make_generate_token_request("https://demo.webpubsub.azure.com", "chat", o);
  CHECK(plain.url == "https://demo.webpubsub.azure.com/api/hubs/chat/:generateToken?api-version=2024-01-01&minutesToExpire=60");
}
