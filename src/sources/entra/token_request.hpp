// credkit detail — the client credentials request and the reading of Entra's answer (pure).
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/core/error.hpp>
#include <credkit/sources/entra_client_secret_options.hpp>

#include "sources/http/http_client.hpp"

namespace credkit::entra::detail {

/// Throws Error(invalid_argument) naming the first problem of `options`.
void validate(const ClientSecretOptions& options);

/// POST {authority}/{tenant}/oauth2/v2.0/token with the form-encoded grant.
credkit::detail::HttpRequest make_token_request(const ClientSecretOptions& options);

/// Reads a 2xx answer: access_token and expires_in (number or numeric string) from `now`.
AccessToken parse_token_response(const std::string& body, std::chrono::system_clock::time_point now);

/// The Error for a non-2xx answer, with Entra's error, AADSTS codes and description.
Error token_error(const credkit::detail::HttpRequest& request, const credkit::detail::HttpResponse& response,
                  const ClientSecretOptions& options);

}  // namespace credkit::entra::detail
