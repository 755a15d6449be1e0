// credkit sample — a local trusted token service (Boost.Beast, loopback) for demos and tests.
//
// It plays every server credkit's sources talk to: an app's own token endpoint (ACS-style
// HS256 JWTs), Web PubSub client URLs, Agora Chat tokens, the ACS identity REST API (checking
// the real HMAC-SHA256 signature and x-ms-date freshness), a Microsoft Entra token endpoint,
// and Web PubSub's :generateToken. It can be told to fail, and counts requests per endpoint.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace credkit::samples {

/// How the next requests to token endpoints fail (admin endpoints are never affected).
enum class FaultMode {
  none,
  server_error,  ///< 503 with a JSON error body.
  rate_limited,  ///< 429 with `Retry-After`.
  slow,          ///< Answer normally after `delay`.
  garbage,       ///< 200 with a body that is not JSON.
  expired,       ///< 200 with a token that expired an hour ago.
  hang,          ///< Never answer (the client's timeout must fire).
};

/// The fault's name as the admin endpoint spells it: "none", "5xx", "429", "slow", "garbage",
/// "expired", "hang".
std::string_view to_string(FaultMode mode) noexcept;

/// A fault applied to the next `count` token requests.
struct Fault {
  FaultMode mode = FaultMode::none;
  int count = 1;                                     ///< How many requests; negative: until cleared.
  std::chrono::milliseconds delay{2000};             ///< For `slow`.
  std::chrono::seconds retry_after{1};               ///< For `rate_limited`.
};

/// Settings of the server. Every secret has a fixed, obviously fake default for local use.
struct TokenServerOptions {
  std::string address = "127.0.0.1";  ///< Listen address (loopback by default).
  std::uint16_t port = 0;             ///< 0: an ephemeral port (see `TokenServer::port`).
  /// Lifetime of tokens from the app endpoints, Agora and Web PubSub (not ACS identity, which
  /// uses the request's `expiresInMinutes` unless `acs_lifetime_override` is set).
  std::chrono::seconds token_lifetime{3600};
  std::chrono::seconds acs_lifetime_override{0};  ///< 0: honour expiresInMinutes.
  std::string jwt_secret = "credkit-token-server-demo-secret";  ///< HS256 key of app JWTs.
  std::string acs_access_key = "ZmFrZS1hY3MtYWNjZXNzLWtleS1mb3ItdGVzdHMtb25seQ==";  ///< base64.
  std::chrono::seconds acs_max_clock_skew{300};  ///< x-ms-date tolerance.
  std::string webpubsub_access_key = "fake-web-pubsub-access-key-for-tests-only";
  std::string webpubsub_hub = "chat";
  std::string agora_app_id = "970CA35de60c44645bbae8a215061b33";
  std::string agora_app_certificate = "5CFd2fd1755d40ecb72977518be15d3b";
  std::string entra_tenant = "00000000-0000-0000-0000-000000000001";
  std::string entra_client_id = "11111111-2222-3333-4444-555555555555";
  std::string entra_client_secret = "fake~entra~client~secret~value";
  std::chrono::seconds entra_token_lifetime{3599};
  Fault initial_fault;  ///< Applied from the start.
  /// The server's clock (null: the system clock): token times, x-ms-date checks and the `Date`
  /// header. Tests skew it to prove x-ms-date checks and clients' clock-offset learning.
  std::function<std::chrono::system_clock::time_point()> now;
};

/// The server. Runs on its own thread; all members are thread-safe. Every response carries a
/// `Date` header (IMF-fixdate) with the server's clock (`TokenServerOptions::now`).
///
/// Endpoints (counter names in brackets):
/// - `GET /chat/user/{name}/token` [chat_user_token], `POST /api/token` [api_token]:
///   `{"token": <HS256 JWT>, "expiresOn": <ISO 8601>}`.
/// - `GET /api/webpubsub/client-url?user=...` [webpubsub_client_url]: `{"url", "token"}`.
/// - `GET /api/agora/chat/user/{uid}/token` [agora_chat_user_token]: `{"token": "007...", "expiresOn"}`.
/// - ACS identity, HMAC-checked, 401 otherwise: `POST /identities` [acs_create_user],
///   `POST /identities/{id}/:issueAccessToken` [acs_issue_token],
///   `POST /identities/{id}/:revokeAccessTokens` [acs_revoke_tokens], `DELETE /identities/{id}`
///   [acs_delete_user], `POST /teamsUser/:exchangeAccessToken` [acs_exchange_teams_token];
///   rejected signatures count in [acs_unauthorized].
/// - `POST /{tenant}/oauth2/v2.0/token` [entra_token]: client credentials grant.
/// - `POST /api/hubs/{hub}/:generateToken` [webpubsub_generate_token]: needs a bearer token
///   from the Entra endpoint.
/// - `POST /admin/faults` `{"mode": "5xx"|"429"|"slow"|"garbage"|"expired"|"hang"|"none",
///   "count": N, "delay_ms": D, "retry_after": S}`; `GET /admin/stats`: the counters as JSON.
class TokenServer {
 public:
  explicit TokenServer(TokenServerOptions options = {});
  TokenServer(const TokenServer&) = delete;
  TokenServer& operator=(const TokenServer&) = delete;
  /// Stops the server.
  ~TokenServer();

  /// Binds and starts serving on a background thread. Throws std::system_error if the
  /// address cannot be bound.
  void start();
  /// Stops serving and joins the thread; open connections (hung ones included) are closed.
  void stop();

  /// The bound port (valid after `start`).
  std::uint16_t port() const noexcept;
  /// "http://127.0.0.1:<port>".
  std::string base_url() const;
  /// An ACS connection string for this server ("endpoint=http://127.0.0.1:<port>;accesskey=...").
  std::string acs_connection_string() const;
  /// A Web PubSub connection string for this server.
  std::string webpubsub_connection_string() const;

  /// Replaces the current fault.
  void inject_fault(Fault fault);
  /// Requests served (or failed by a fault) per endpoint counter name.
  std::map<std::string, std::uint64_t> stats() const;
  /// One counter (0 if never hit).
  std::uint64_t request_count(std::string_view endpoint) const;
  /// Waits, at most `timeout`, until no connection is open and the server's thread has
  /// returned from every handler that ran before; true if it got there. Tests that exhaust the
  /// process's descriptors call it first, so that nothing but accept runs while none are free.
  bool wait_idle(std::chrono::milliseconds timeout);
  /// The options in use.
  const TokenServerOptions& options() const noexcept;

 private:
  friend struct TokenServerAccess;  // token_server_http.hpp's socket-free handler
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace credkit::samples
