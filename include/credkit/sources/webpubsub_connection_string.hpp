// credkit — the connection string of an Azure Web PubSub resource.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>

namespace credkit::webpubsub {

/// A parsed Web PubSub connection string:
/// `Endpoint=https://<name>.webpubsub.azure.com;AccessKey=<key>;Version=1.0;[Port=<port>;]`.
///
/// Keys are case-insensitive. `Version` must be 1.0 when present. `Port` replaces the
/// endpoint's port. The access key (used as is, as the HS256 secret) is wiped when the last
/// copy goes; `operator<<` never prints it.
class ConnectionString {
 public:
  /// Parses `text`. Throws `Error(errc::invalid_connection_string)` naming the problem
  /// (missing or malformed Endpoint, missing AccessKey, unsupported Version, bad Port),
  /// never echoing the key.
  static ConnectionString parse(std::string_view text);

  /// The endpoint, `https://host[:port]` without a trailing slash.
  const std::string& endpoint() const noexcept;
  /// The access key (the JWT signing secret). Never log it.
  const std::string& access_key() const noexcept;

  /// `ConnectionString{endpoint=..., accesskey=<redacted>}`.
  friend std::ostream& operator<<(std::ostream& os, const ConnectionString& cs);

 private:
  struct Data;
  ConnectionString() = default;
  std::shared_ptr<const Data> data_;
};

}  // namespace credkit::webpubsub
