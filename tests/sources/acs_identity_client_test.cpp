// credkit::acs::IdentityClient against the sample token server's fake ACS identity service
// (which checks the real HMAC-SHA256 signature with its own OpenSSL code) over loopback.
#include <doctest/doctest.h>

#include <credkit/credkit.hpp>
#include <credkit/sources/acs_identity_client.hpp>
#include <credkit/testing/manual_clock.hpp>

#include "support/async_helpers.hpp"
#include "core/base64.hpp"
#include "source_test_support.hpp"
#include "token_server.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <nlohmann/json.hpp>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kWrongKey = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmc=";


struct Fixture {
  TokenServer server;
  boost::asio::io_context io;
  Fixture() { server.start(); }
  acs::IdentityClient client(acs::IdentityClientOptions options = {}) {
    return acs::IdentityClient(io.get_executor(), acs::ConnectionString::parse(server.acs_connection_string()),
                               std::move(options));
  }
  std::string create_user(acs::IdentityClient& c) {
    auto r = run_op<std::string>(io, [&](auto h) { c.async_create_user(std::move(h)); });
    REQUIRE_FALSE(r.error);
    return r.value;
  }
};

}  // namespace

TEST_CASE("acs identity: create user and token in one call, with a signed request") {
  Fixture f;
  auto c = f.client();
  const auto before = std::chrono::system_clock::now();
  auto r = run_op<acs::UserAndToken>(f.io, [&](auto h) {
    c.async_create_user_and_token({acs::TokenScope::chat, acs::TokenScope::voip}, 60min, std::move(h));
  });
  REQUIRE_FALSE(r.error);
  CHECK(r.value.user_id.rfind("8:acs:", 0) == 0);
  CHECK(r.value.token.expires_on >= std::chrono::floor<std::chrono::seconds>(before) + 60min);
  CHECK(r.value.token.expires_on <= std::chrono::system_clock::now() + 61min);
  CHECK(jwt_payload(r.value.token.token)["acsScope"] == nlohmann::json({"chat", "voip"}));
  CHECK(f.server.request_count("acs_create_user") == 1);
  CHECK(f.server.request_count("acs_unauthorized") == 0);
}

TEST_CASE("acs identity: issue, revoke, delete, then the user is gone") {
  Fixture f;
  auto c = f.client();
  const auto user = f.create_user(c);
  auto issued = run_op<AccessToken>(f.io, [&](auto h) {
    c.async_issue_token(user, {acs::TokenScope::chat_join_limited, acs::TokenScope::voip_join}, 90min, std::move(h));
  });
  REQUIRE_FALSE(issued.error);
  CHECK(jwt_payload(issued.value.token)["acsScope"] == nlohmann::json({"chat.join.limited", "voip.join"}));
  CHECK(jwt_payload(issued.value.token)["skypeid"] == user);
  CHECK(issued.value.expires_on > std::chrono::system_clock::now() + 89min);
  // The expiry ACS reports agrees with the token's own exp claim.
  CHECK(parse_token(issued.value.token).expires_on == issued.value.expires_on);

  CHECK_FALSE(run_void(f.io, [&](auto h) { c.async_revoke_tokens(user, std::move(h)); }));
  CHECK_FALSE(run_void(f.io, [&](auto h) { c.async_delete_user(user, std::move(h)); }));
  auto gone = run_op<AccessToken>(f.io, [&](auto h) { c.async_issue_token(user, {acs::TokenScope::chat}, 60min, std::move(h)); });
  auto e = as_error(gone.error);
  CHECK(e.code() == make_error_code(errc::http_status));
  CHECK(e.http_status() == 404);
  CHECK_FALSE(e.retryable());
  CHECK(f.server.request_count("acs_revoke_tokens") == 1);
  CHECK(f.server.request_count("acs_delete_user") == 1);
  CHECK(f.server.request_count("acs_issue_token") == 2);
}

TEST_CASE("acs identity: Teams token exchange") {
  Fixture f;
  auto c = f.client();
  auto r = run_op<AccessToken>(f.io, [&](auto h) {
    c.async_exchange_teams_token("entra-token-of-a-teams-user", "app-id", "user-object-id", std::move(h));
  });
  REQUIRE_FALSE(r.error);
  CHECK(jwt_payload(r.value.token)["skypeid"] == "teams:user-object-id");
  auto bad = run_op<AccessToken>(f.io, [&](auto h) { c.async_exchange_teams_token("", "app", "user", std::move(h)); });
  CHECK(as_error(bad.error).code() == make_error_code(errc::invalid_argument));
  CHECK(f.server.request_count("acs_exchange_teams_token") == 1);
}

TEST_CASE("acs identity: a wrong access key is rejected with a non-retryable 401 that leaks no secret") {
  Fixture f;
  acs::IdentityClient c(f.io.get_executor(),
                        acs::ConnectionString::parse("endpoint=" + f.server.base_url() + ";accesskey=" + kWrongKey));
  std::string logged;
  auto previous = set_log_handler([&](LogLevel, std::string_view line) { logged += std::string(line) + "\n"; });
  auto r = run_op<std::string>(f.io, [&](auto h) { c.async_create_user(std::move(h)); });
  set_log_handler(previous);
  auto e = as_error(r.error);
  CHECK(e.code() == make_error_code(errc::http_status));
  CHECK(e.http_status() == 401);
  CHECK_FALSE(e.retryable());
  const std::string what = e.what();
  CHECK(what.find("401") != std::string::npos);
  CHECK(what.find(kWrongKey) == std::string::npos);
  CHECK(logged.find(kWrongKey) == std::string::npos);
  CHECK(f.server.request_count("acs_unauthorized") == 1);
  CHECK(f.server.request_count("acs_create_user") == 0);
}

TEST_CASE("acs identity: a stale x-ms-date is rejected (401), a fresh one within skew accepted") {
  Fixture f;
  acs::IdentityClientOptions stale;
  stale.clock = std::make_shared<credkit::testing::ManualClock>(std::chrono::system_clock::now() - 10min);
  auto c = f.client(stale);
  auto r = run_op<std::string>(f.io, [&](auto h) { c.async_create_user(std::move(h)); });
  CHECK(as_error(r.error).http_status() == 401);
  acs::IdentityClientOptions skewed;
  skewed.clock = std::make_shared<credkit::testing::ManualClock>(std::chrono::system_clock::now() - 4min);
  auto c2 = f.client(skewed);
  auto ok = run_op<std::string>(f.io, [&](auto h) { c2.async_create_user(std::move(h)); });
  CHECK_FALSE(ok.error);
  CHECK(f.server.request_count("acs_unauthorized") == 1);
}

TEST_CASE("acs identity: 429, 5xx and garbage answers") {
  Fixture f;
  auto c = f.client();
  Fault limited{FaultMode::rate_limited, 1};
  limited.retry_after = 7s;
  f.server.inject_fault(limited);
  auto r429 = run_op<std::string>(f.io, [&](auto h) { c.async_create_user(std::move(h)); });
  auto e429 = as_error(r429.error);
  CHECK(e429.code() == make_error_code(errc::rate_limited));
  REQUIRE(e429.retry_after());
  CHECK(*e429.retry_after() == 7s);
  CHECK(e429.retryable());

  f.server.inject_fault({FaultMode::server_error, 1});
  auto r5xx = run_op<std::string>(f.io, [&](auto h) { c.async_create_user(std::move(h)); });
  CHECK(as_error(r5xx.error).http_status() == 503);
  CHECK(as_error(r5xx.error).retryable());

  f.server.inject_fault({FaultMode::garbage, 1});
  auto rg = run_op<std::string>(f.io, [&](auto h) { c.async_create_user(std::move(h)); });
  CHECK(as_error(rg.error).code() == make_error_code(errc::invalid_response));

  auto ok = run_op<std::string>(f.io, [&](auto h) { c.async_create_user(std::move(h)); });
  CHECK_FALSE(ok.error);
}

TEST_CASE("acs identity: argument errors are posted, not thrown inline") {
  Fixture f;
  auto c = f.client();
  bool called = false;
  std::exception_ptr error;
  c.async_issue_token("8:acs:x", {acs::TokenScope::chat}, 30min, boost::asio::bind_executor(f.io, [&](std::exception_ptr e, AccessToken) {
    called = true;
    error = e;
  }));
  CHECK_FALSE(called);
  f.io.restart();
  f.io.run();
  CHECK(called);
  CHECK(as_error(error).code() == make_error_code(errc::invalid_argument));
  CHECK_THROWS_AS(c.fetcher("8:acs:x", {}, 60min), Error);
  CHECK_THROWS_AS(c.fetcher("", {acs::TokenScope::chat}, 60min), Error);
  CHECK(f.server.stats().empty());
}

TEST_CASE("acs identity: cancellation aborts a hung request") {
  Fixture f;
  auto c = f.client();
  f.server.inject_fault({FaultMode::hang, 1});
  boost::asio::cancellation_signal signal;
  boost::asio::steady_timer timer(f.io, 100ms);
  timer.async_wait([&](boost::system::error_code) { signal.emit(boost::asio::cancellation_type::terminal); });
  auto r = run_op<std::string>(f.io, [&](auto h) {
    c.async_create_user(boost::asio::bind_cancellation_slot(signal.slot(), std::move(h)));
  });
  CHECK(as_error(r.error).code() == make_error_code(errc::cancelled));
}

TEST_CASE("acs identity: a stateless bot uses the client as its fetcher; concurrent callers share one fetch") {
  Fixture f;
  auto c = f.client();
  const auto user = f.create_user(c);
  auto credential = on_demand_credential(f.io, c.fetcher(user, {acs::TokenScope::chat}));
  int done = 0;
  std::vector<TokenHandle> handles(3);
  for (auto& h : handles) {
    credential->async_get_token([&](std::exception_ptr e, TokenHandle t) {
      CHECK_FALSE(e);
      h = std::move(t);
      ++done;
    });
  }
  credkit::test::run_until(f.io, [&] { return done >= 3; });
  CHECK(handles[0] == handles[1]);
  CHECK(handles[1] == handles[2]);
  CHECK(jwt_payload(handles[0].token())["skypeid"] == user);
  CHECK(f.server.request_count("acs_issue_token") == 1);
  // A cached, fresh token costs no request.
  bool again = false;
  credential->async_get_token([&](std::exception_ptr e, TokenHandle) {
    CHECK_FALSE(e);
    again = true;
  });
  credkit::test::run_until_done(f.io, again);
  CHECK(f.server.request_count("acs_issue_token") == 1);
  credential->close();
  f.io.poll();
}
