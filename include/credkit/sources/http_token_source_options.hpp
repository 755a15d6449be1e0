// credkit — how an HttpTokenSource asks the app's token service for a token.
#pragma once

#include <credkit/core/parse_token.hpp>
#include <credkit/sources/http_client_options.hpp>
#include <credkit/sources/http_token_response.hpp>

#include <string>
#include <utility>
#include <vector>

namespace credkit {

/// The request an `HttpTokenSource` sends, how it reads the answer, and the transport settings.
struct HttpTokenSourceOptions {
  /// The HTTP method, e.g. "GET" or "POST".
  std::string method = "GET";
  /// The token endpoint: `https://...` (or `http://` to loopback, unless `http.allow_insecure_http`).
  std::string url;
  /// Request headers, e.g. the app's session `{"Authorization", "Bearer ..."}` or a `Cookie`.
  /// Their values are treated as secrets: never logged nor put in error messages.
  std::vector<std::pair<std::string, std::string>> headers;
  /// The request body (sent when not empty, or always for POST). Also treated as a secret.
  std::string body;
  /// Where the answer keeps the token and its expiry.
  HttpTokenResponse response = HttpTokenResponse::plain_text();
  /// Timeouts, TLS trust, size limit.
  HttpClientOptions http;
  /// How `async_fetch` reads expiries from token strings (a credential's fetcher uses the
  /// credential's own `TokenCredentialOptions::parse` instead).
  ParseOptions parse;
};

}  // namespace credkit
