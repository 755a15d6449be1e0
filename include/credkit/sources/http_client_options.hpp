// credkit — transport settings of credkit's HTTP(S) requests (timeouts, TLS, limits).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace credkit {

/// How credkit's HTTP sources talk to a server. Every field has a safe default: TLS
/// verification on, plain `http://` only to loopback, bounded time and response size.
struct HttpClientOptions {
  /// Longest time to establish a connection (DNS, TCP and TLS handshake).
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
  /// Longest time for a whole request, connection included.
  std::chrono::milliseconds total_timeout = std::chrono::seconds(30);
  /// A PEM file of CA certificates to trust instead of the system store (empty: system store).
  std::string ca_file;
  /// A directory of hashed CA certificates (`c_rehash` layout) to trust (empty: none).
  std::string ca_path;
  /// Verify the server's certificate chain and host name. Turn off only for local experiments.
  bool verify_peer = true;
  /// Allow plain `http://` to hosts other than loopback (127.0.0.0/8, ::1, localhost).
  /// Off by default: a token sent in clear text can be stolen on the way.
  bool allow_insecure_http = false;
  /// Largest accepted response (headers plus body); a bigger one fails with
  /// `errc::response_too_large`.
  std::size_t max_response_bytes = 1024 * 1024;
  /// The `User-Agent` header (empty: "credkit/<version>").
  std::string user_agent;
};

}  // namespace credkit
