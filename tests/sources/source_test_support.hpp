// What the sources tests share: the sample token server (its names, its Entra settings), an
// on-demand credential over a fetcher, and a JWT's payload.
#pragma once

#include <doctest/doctest.h>

#include <credkit/credkit.hpp>
#include <credkit/sources/entra_client_secret_source.hpp>

#include "core/base64.hpp"
#include "token_server.hpp"

#include <boost/asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace credkit::test {

// The sample token server the sources tests run against.
using samples::Fault;
using samples::FaultMode;
using samples::TokenServer;
using samples::TokenServerOptions;

/// Client credentials for the token server's Entra endpoint, for a Web PubSub scope.
inline entra::ClientSecretOptions entra_options_for(const samples::TokenServer& server) {
  entra::ClientSecretOptions o;
  o.authority = server.base_url();
  o.tenant_id = server.options().entra_tenant;
  o.client_id = server.options().entra_client_id;
  o.client_secret = server.options().entra_client_secret;
  o.scope = "https://webpubsub.azure.com/.default";
  return o;
}

/// A credential on `io` that fetches with `fetcher` when a token is asked for.
inline std::shared_ptr<TokenCredential> on_demand_credential(boost::asio::io_context& io, Fetcher fetcher) {
  TokenCredentialOptions options;
  options.mode = RefreshMode::on_demand;
  options.fetcher = std::move(fetcher);
  return TokenCredential::create(io.get_executor(), std::move(options));
}

/// The JSON payload of a compact JWT (its second part).
inline nlohmann::json jwt_payload(const std::string& token) {
  const auto first = token.find('.');
  const auto second = token.find('.', first + 1);
  const auto bytes = detail::base64url_decode(token.substr(first + 1, second - first - 1));
  REQUIRE(bytes);
  return nlohmann::json::parse(*bytes);
}

}  // namespace credkit::test
