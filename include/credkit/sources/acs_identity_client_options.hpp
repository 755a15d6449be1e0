// credkit — settings of credkit::acs::IdentityClient.
#pragma once

#include <credkit/core/clock.hpp>
#include <credkit/sources/http_client_options.hpp>

#include <memory>
#include <string>

namespace credkit::acs {

/// Settings of `IdentityClient`; every field has a usable default.
struct IdentityClientOptions {
  /// Transport settings (timeouts, TLS, size limits).
  HttpClientOptions http;
  /// The identity REST API version sent as `api-version`.
  std::string api_version = "2023-10-01";
  /// The clock used for `x-ms-date` (tests inject a skewed `testing::ManualClock`). Null: the
  /// system clock, and in `IdentityClient::fetcher()` service time (`FetchContext::now()`: the
  /// system clock corrected by the offset the credential learned from the service's `Date`
  /// headers).
  std::shared_ptr<Clock> clock;
};

}  // namespace credkit::acs
