// credkit — settings of credkit::entra::ClientSecretSource.
#pragma once

#include <credkit/sources/http_client_options.hpp>

#include <string>

namespace credkit::entra {

/// What the OAuth 2.0 client credentials grant needs, and where to send it.
struct ClientSecretOptions {
  /// The directory (tenant) id or domain, e.g. "contoso.onmicrosoft.com". Required.
  std::string tenant_id;
  /// The application (client) id. Required.
  std::string client_id;
  /// The client secret. Required; never logged or put in an error message.
  std::string client_secret;
  /// The scope, e.g. "https://webpubsub.azure.com/.default". Required.
  std::string scope;
  /// The authority host (national clouds, or a local test server). No trailing slash needed.
  std::string authority = "https://login.microsoftonline.com";
  /// Transport settings (timeouts, TLS, size limits).
  HttpClientOptions http;
};

}  // namespace credkit::entra
