// credkit internal — an asynchronous HTTP(S) client: libcurl's multi interface driven by Asio.
#pragma once

#include <credkit/core/error.hpp>
#include <credkit/sources/http_client_options.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace credkit::detail {

/// One HTTP request. `headers` are sent as given (name, value); CR/LF in either is refused.
struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

/// A complete HTTP response (of any status).
struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  /// The first header named `name` (case-insensitive), or "" if absent.
  std::string header(std::string_view name) const;
};

class HttpEngine;

/// An asynchronous HTTP(S) client (libcurl multi + Asio, never blocking the executor).
///
/// Copies share one engine and one connection pool (keep-alive: consecutive requests to the
/// same host reuse the connection). The engine lives as long as a copy or an outstanding
/// request does: destroying every copy with requests outstanding is safe, they run to
/// completion (bounded by `total_timeout`).
///
/// Thread safety: every member may be called concurrently from any thread.
class HttpClient {
 public:
  using Completion = std::function<void(std::exception_ptr, HttpResponse)>;

  /// `executor` runs the I/O (through an internal strand) and the completions.
  HttpClient(boost::asio::any_io_executor executor, HttpClientOptions options);

  /// Starts a request.
  ///
  /// `done` runs on the client's executor, always posted (never inline). Transfer failures
  /// arrive as `credkit::Error`: network_error, timeout, tls_error, insecure_url,
  /// response_too_large, invalid_argument (bad URL or header), cancelled. A non-2xx status
  /// is not an error here: the response is delivered.
  ///
  /// Cancellation: emitting `slot`'s signal (any type) aborts the transfer; `done` then gets
  /// `errc::cancelled`. The handler is installed here and cleared just before `done` runs,
  /// so emit the signal from the executor `done` runs on.
  void async_request(HttpRequest request, boost::asio::cancellation_slot slot, Completion done);

  /// As above, but `done` runs on `completion_executor` (the slot is cleared there too).
  void async_request(HttpRequest request, boost::asio::cancellation_slot slot, Completion done,
                     boost::asio::any_io_executor completion_executor);

  /// The executor given at construction.
  const boost::asio::any_io_executor& get_executor() const noexcept;

  /// The options the client was built with.
  const HttpClientOptions& options() const noexcept;

 private:
  std::shared_ptr<HttpEngine> engine_;
};

/// The Error for a non-2xx response: `http_status` (retryable for 5xx/408), or `rate_limited`
/// with `retry_after` from `Retry-After` (seconds or HTTP-date, a date measured against the
/// response's `Date` when it has one, else the local clock). The message names the method,
/// the URL without query or credentials, the status and the start of the body (at most 256
/// chars, anything that looks like a token, key or secret redacted).
Error http_error(const HttpRequest& request, const HttpResponse& response);

/// Checks a URL before any traffic: absolute http(s) URL (else `errc::invalid_argument`),
/// plain http only to loopback unless `options.allow_insecure_http` (else `errc::insecure_url`).
void check_request_url(const std::string& url, const HttpClientOptions& options);

/// The proxy a request to `url` goes through ("" = direct): `options.proxy`, else with
/// `options.use_environment_proxy` the environment's (libcurl's variables and rules, no_proxy
/// included), else none. Throws `errc::invalid_argument` (bad proxy URL or scheme) and
/// `errc::insecure_url` (plain http through a non-loopback proxy; proxy credentials in clear
/// to a non-loopback http or SOCKS proxy) unless `options.allow_insecure_http`. The result is
/// the normalised proxy URL for CURLOPT_PROXY; `password` receives the proxy password, for
/// redaction. See docs/security.md, "Network egress".
std::string proxy_for_request(const std::string& url, const HttpClientOptions& options, std::string* password = nullptr);

/// The URL without user info, query or fragment, for messages ("https://host:port/path").
std::string url_for_message(std::string_view url);

/// A peer's text made safe to show: `detail::scrub` in its untrusted mode (every remembered
/// and given secret in any encoding, every run of 24+ token characters, secret-shaped text
/// hidden; control characters become spaces).
std::string redact_secrets(std::string_view text, const std::vector<std::string_view>& secrets = {});

/// Parses a `Retry-After` value (delta seconds or an HTTP-date, see http_date.hpp) relative to
/// `now`, capped at 24 h (a valid date beyond 2262 too); a date in the past is 0. Nullopt when
/// malformed.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now);

}  // namespace credkit::detail
