// credkit detail — the ACS HMAC-SHA256 request signature (pure functions).
#pragma once

#include <string>
#include <string_view>

namespace credkit::acs::detail {

/// The headers that authenticate one ACS request.
struct HmacHeaders {
  std::string date;            ///< x-ms-date (RFC 1123, GMT).
  std::string content_sha256;  ///< x-ms-content-sha256: base64(SHA-256(body)).
  std::string authorization;   ///< Authorization: HMAC-SHA256 SignedHeaders=...&Signature=...
};

/// The string ACS signs: VERB "\n" path-and-query "\n" date ";" host ";" content-hash.
std::string hmac_string_to_sign(std::string_view method, std::string_view path_and_query, std::string_view date,
                                std::string_view host, std::string_view content_sha256);

/// Signs a request. `host` is the Host header value (host[:port]); `key` is the decoded
/// access key; `date` an RFC 1123 date.
HmacHeaders sign_request(std::string_view method, std::string_view host, std::string_view path_and_query,
                         std::string_view body, std::string_view date, std::string_view key);

}  // namespace credkit::acs::detail
