// credkit — the connection string of an Azure Communication Services resource.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>

namespace credkit::acs {

/// A parsed ACS connection string: `endpoint=https://<resource>.communication.azure.com/;accesskey=<base64>`.
///
/// Keys are case-insensitive; the order of the parts does not matter. The access key is
/// decoded once and held in memory wiped with `OPENSSL_cleanse` when the last copy goes.
/// Streaming (`operator<<`) prints the endpoint and a redacted key, never the key.
class ConnectionString {
 public:
  /// Parses `text`. Throws `Error(errc::invalid_connection_string)` naming the missing or
  /// malformed part (never echoing the key): no `endpoint`, an endpoint that is not an
  /// absolute http(s) URL, no `accesskey`, an access key that is not valid base64.
  static ConnectionString parse(std::string_view text);

  /// Builds one from an endpoint and a base64 access key (validated as in `parse`).
  ConnectionString(std::string_view endpoint, std::string_view access_key);

  /// The endpoint without a trailing slash, e.g. `https://contoso.communication.azure.com`.
  const std::string& endpoint() const noexcept;

  /// The decoded access key bytes (the HMAC key). Handle with care: never log it.
  const std::string& decoded_key() const noexcept;

  /// `ConnectionString{endpoint=..., accesskey=<redacted>}`.
  friend std::ostream& operator<<(std::ostream& os, const ConnectionString& cs);

 private:
  struct Data;
  ConnectionString() = default;
  std::shared_ptr<const Data> data_;
};

}  // namespace credkit::acs
