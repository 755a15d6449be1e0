// credkit internal — the token service's clock as HTTP responses show it, for every source's
// fetcher (issue "Refresh semantics", item 3: token times are judged in service time).
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/core/fetcher.hpp>
#include <credkit/core/parse_token.hpp>

#include "sources/http/http_client.hpp"

#include <chrono>
#include <optional>
#include <string_view>

namespace credkit::detail {

/// The response's `Date` header as a time (RFC 7231 HTTP-date, see http_date.hpp); nullopt
/// when absent or not a valid, representable date.
std::optional<std::chrono::system_clock::time_point> response_date(const HttpResponse& response) noexcept;

/// What one response tells a source about time; call it for every response (any status)
/// before completing anything.
///
/// In a credential's fetch (`fetch` set): reports the response's `Date` to the credential
/// (`FetchContext::report_service_time`) and returns the time relative expiries count from,
/// in service time: `fetch->now()` after the report (the `Date`, when the credential took it;
/// its own service time when it refused the reading as implausible, R16).
/// Outside a fetch (a source's own async API, `fetch` empty): reports nothing and returns the
/// system clock's now, as those APIs always did.
std::chrono::system_clock::time_point service_time_of(const HttpResponse& response,
                                                      const std::optional<FetchContext>& fetch) noexcept;

/// The time to sign a request with in a fetch: `FetchContext::now()` (service time as the
/// credential knows it), else the system clock.
std::chrono::system_clock::time_point signing_time(const std::optional<FetchContext>& fetch) noexcept;

/// Reads a token string's expiry (`parse_token`). In a fetch: with the credential's
/// `ParseOptions`, except that a fallback lifetime (an opaque token) counts from `received`
/// (`service_time_of`'s answer, service time). Outside a fetch: with `outside`, unchanged.
/// Throws `Error(invalid_token)`.
AccessToken parse_token_received(std::string_view token, std::chrono::system_clock::time_point received,
                                 const std::optional<FetchContext>& fetch, const ParseOptions& outside = {});

}  // namespace credkit::detail
