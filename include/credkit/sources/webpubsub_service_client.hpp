// credkit — Web PubSub client access tokens generated locally from the access key.
#pragma once

#include <credkit/core/clock.hpp>
#include <credkit/core/fetcher.hpp>
#include <credkit/sources/webpubsub_client_access.hpp>
#include <credkit/sources/webpubsub_client_token_options.hpp>
#include <credkit/sources/webpubsub_connection_string.hpp>

#include <memory>
#include <string>

namespace credkit::webpubsub {

/// Generates client access tokens and URLs for one hub, locally (no network): an HS256 JWT
/// signed with the access key, with `aud` = `{endpoint}{client path}/{hub}`, `sub`, `role`,
/// `webpubsub.group`, `iat` and `exp` — what the service and its server SDKs use.
///
/// Thread safety: const members may be called concurrently.
class ServiceClient {
 public:
  /// A client for `hub` (1–128 characters of letters, digits and '_', starting with a
  /// letter; else `Error(errc::invalid_argument)`). `clock`: the time for `iat`/`exp`
  /// (null: the system clock; tests pass a `testing::ManualClock`).
  ServiceClient(ConnectionString connection_string, std::string hub, std::shared_ptr<Clock> clock = nullptr);

  /// The hub name.
  const std::string& hub() const noexcept { return hub_; }

  /// A client access URL and token. Throws `Error(errc::invalid_argument)` for a lifetime
  /// outside 1 minute to 365 days.
  ClientAccess client_access(const ClientTokenOptions& options = {}) const;

  /// A fetcher that generates a fresh token per fetch (no I/O; completes inline).
  Fetcher fetcher(ClientTokenOptions options = {}) const;

 private:
  ConnectionString connection_string_;
  std::string hub_;
  std::shared_ptr<Clock> clock_;
};

}  // namespace credkit::webpubsub
