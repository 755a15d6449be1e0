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
  /// A PEM file of CA certificates to trust. With `ca_file` or `ca_path` set, exactly these are
  /// trusted, instead of the system store; with neither, the system store.
  std::string ca_file;
  /// A directory of hashed CA certificates (`c_rehash` layout) to trust (see `ca_file`).
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
  /// A proxy for every request: `http://`, `https://`, `socks4://`, `socks4a://`, `socks5://`
  /// or `socks5h://host[:port]` (no scheme: `http://`), optionally with `user:password@`
  /// (a secret: never logged nor put in messages). Empty (the default): connect directly.
  /// A proxy is only ever used as a tunnel (HTTP `CONNECT` or SOCKS): it relays the bytes
  /// but is never sent the request itself. Refused with `errc::insecure_url`, before any
  /// traffic, unless the proxy host is loopback or `allow_insecure_http` is set: a plain
  /// `http://` request through it, and proxy credentials sent in clear (to an `http://` or
  /// SOCKS proxy). An `https://` proxy's certificate is verified like the server's
  /// (`verify_peer`, `ca_file`, `ca_path`).
  std::string proxy;
  /// Use the environment's proxy settings when `proxy` is empty, as libcurl would: `http_proxy`
  /// for http:// (never upper-case `HTTP_PROXY`), `https_proxy` or `HTTPS_PROXY` for https://,
  /// else `all_proxy` or `ALL_PROXY`; `no_proxy` or `NO_PROXY` lists hosts to reach directly.
  /// The proxy found is checked exactly like `proxy`. Off by default: credkit ignores every
  /// proxy variable (and `NO_PROXY`), so the environment cannot reroute tokens.
  bool use_environment_proxy = false;
};

}  // namespace credkit
