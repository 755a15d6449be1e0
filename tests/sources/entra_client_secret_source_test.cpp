// credkit::entra::ClientSecretSource against the token server's Entra-style endpoint over loopback.
#include <doctest/doctest.h>

#include <credkit/credkit.hpp>
#include <credkit/sources/entra_client_secret_source.hpp>

#include "support/async_helpers.hpp"
#include "sources/common/text.hpp"
#include "sources/entra/token_request.hpp"
#include "source_test_support.hpp"
#include "token_server.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono_literals;

namespace {

Outcome<AccessToken> get(boost::asio::io_context& io, entra::ClientSecretSource& source) {
  return run_op<AccessToken>(io, [&](auto handler) { source.async_get_token(std::move(handler)); });
}

// The authority with a trailing '/', which the source drops.
entra::ClientSecretOptions options_for(const TokenServer& server) {
  auto o = entra_options_for(server);
  o.authority += "/";
  return o;
}

}  // namespace

TEST_CASE("entra: the request is a form-encoded client credentials grant") {
  entra::ClientSecretOptions o;
  o.tenant_id = "contoso.onmicrosoft.com";
  o.client_id = "id";
  o.client_secret = "s3cr&t=+";
  o.scope = "https://webpubsub.azure.com/.default";
  auto req = entra::detail::make_token_request(o);
  CHECK(req.method == "POST");
  CHECK(req.url == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
  CHECK(req.body ==
        "grant_type=client_credentials&client_id=id&client_secret=s3cr%26t%3D%2B&scope=https%3A%2F%2Fwebpubsub."
        "azure.com%2F.default");
  o.client_secret.clear();
  CHECK_THROWS_AS(entra::detail::validate(o), Error);
  o.client_secret = "x";
  o.authority = "not a url";
  CHECK_THROWS_AS(entra::detail::validate(o), Error);
  o.authority = "https://login.microsoftonline.com";
  o.tenant_id = "../evil";
  CHECK_THROWS_AS(entra::detail::validate(o), Error);
}

TEST_CASE("entra: token response parsing") {
  const auto now = std::chrono::system_clock::now();
  auto t = entra::detail::parse_token_response(R"({"token_type":"Bearer","expires_in":3599,"access_token":"abc-0123456789abcdef"})", now);
  CHECK(t.token == "abc-0123456789abcdef");
  CHECK(t.expires_on == now + 3599s);
  CHECK(entra::detail::parse_token_response(R"({"expires_in":"60","access_token":"abc-0123456789abcdef"})", now).expires_on == now + 60s);
  CHECK_THROWS_AS(entra::detail::parse_token_response(R"({"expires_in":60})", now), Error);
  CHECK_THROWS_AS(entra::detail::parse_token_response(R"({"access_token":"a","expires_in":"soon"})", now), Error);
  CHECK_THROWS_AS(entra::detail::parse_token_response("<html>", now), Error);
}

TEST_CASE("entra: client credentials against the local authority") {
  TokenServer server;
  server.start();
  boost::asio::io_context io;
  entra::ClientSecretSource source(io.get_executor(), options_for(server));
  const auto before = std::chrono::system_clock::now();
  auto r = get(io, source);
  REQUIRE_FALSE(r.error);
  CHECK(r.value.expires_on >= before + 3599s);
  CHECK(r.value.expires_on <= std::chrono::system_clock::now() + 3599s);
  CHECK(server.request_count("entra_token") == 1);
}

TEST_CASE("entra: invalid_client carries the Entra error and codes, never the secret") {
  TokenServer server;
  server.start();
  boost::asio::io_context io;
  auto o = options_for(server);
  o.client_secret = "the-wrong-secret-value-XYZ";
  entra::ClientSecretSource source(io.get_executor(), o);
  std::string logged;
  auto previous = set_log_handler([&](LogLevel, std::string_view line) { logged += std::string(line) + "\n"; });
  auto e = as_error(get(io, source).error);
  set_log_handler(previous);
  const std::string what = e.what();
  CAPTURE(what);
  CHECK(e.code() == make_error_code(errc::http_status));
  CHECK(e.http_status() == 401);
  CHECK_FALSE(e.retryable());
  CHECK(what.find("invalid_client") != std::string::npos);
  CHECK(what.find("7000215") != std::string::npos);
  CHECK(what.find("Invalid client secret") != std::string::npos);
  CHECK(what.find("the-wrong-secret-value-XYZ") == std::string::npos);
  CHECK(logged.find("the-wrong-secret-value-XYZ") == std::string::npos);

  auto wrong_tenant = options_for(server);
  wrong_tenant.tenant_id = "another-tenant";
  entra::ClientSecretSource s2(io.get_executor(), wrong_tenant);
  auto e2 = as_error(get(io, s2).error);
  CHECK(std::string(e2.what()).find("90002") != std::string::npos);
  CHECK(e2.http_status() == 400);
}

TEST_CASE("entra: 429 with Retry-After, 5xx and garbage") {
  TokenServer server;
  server.start();
  boost::asio::io_context io;
  entra::ClientSecretSource source(io.get_executor(), options_for(server));
  Fault f{FaultMode::rate_limited, 1};
  f.retry_after = 3s;
  server.inject_fault(f);
  auto e = as_error(get(io, source).error);
  CHECK(e.code() == make_error_code(errc::rate_limited));
  CHECK(e.retry_after() == std::optional<std::chrono::milliseconds>(3s));
  server.inject_fault({FaultMode::server_error, 1});
  CHECK(as_error(get(io, source).error).retryable());
  server.inject_fault({FaultMode::garbage, 1});
  CHECK(as_error(get(io, source).error).code() == make_error_code(errc::invalid_response));
  CHECK_FALSE(get(io, source).error);
}

TEST_CASE("entra: a slow authority trips the total timeout") {
  TokenServer server;
  server.start();
  boost::asio::io_context io;
  auto o = options_for(server);
  o.http.total_timeout = 300ms;
  entra::ClientSecretSource source(io.get_executor(), o);
  Fault f{FaultMode::slow, 1};
  f.delay = 3s;
  server.inject_fault(f);
  CHECK(as_error(get(io, source).error).code() == make_error_code(errc::timeout));
}
