// credkit — a token source that asks the app's own token service over HTTP(S).
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/core/fetcher.hpp>
#include <credkit/sources/http_token_source_options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <exception>
#include <memory>

namespace credkit {

/// Completion signature of `HttpTokenSource::async_fetch`.
using HttpFetchSignature = void(std::exception_ptr, AccessToken);

/// Fetches tokens from the app's trusted token service (`GET /chat/user/{name}/token`,
/// `POST /api/token`, ...) with libcurl driven by Asio: non-blocking, keep-alive connections,
/// connect and total timeouts, TLS verification on by default.
///
/// Use it as a credential's fetcher (`options.fetcher = source.fetcher()`) or call
/// `async_fetch` directly. Copies share one connection pool.
///
/// @par Errors
/// Failures are `Error`s whose `retryable()` drives the credential's retry policy:
/// - `http_status` (the status, the start of the service's error body with secrets redacted);
///   retryable for 5xx and 408, not for other 4xx;
/// - `rate_limited` for 429, with `retry_after()` from `Retry-After`;
/// - `network_error` (DNS, connect, reset; retryable), `timeout` (retryable),
///   `tls_error` (certificate or handshake; not retryable), `response_too_large`;
/// - `invalid_response` (not JSON, a field missing or of the wrong type; the message names
///   the field) and `invalid_token` (empty, malformed or already expired token);
/// - `cancelled` when the fetch is cancelled.
/// No message contains the token, a request header value or the request body.
///
/// @par Thread safety
/// All members may be called concurrently from any thread.
class HttpTokenSource {
 public:
  /// A source whose I/O runs on the executor of its first use (the credential's executor
  /// for `fetcher()`, the handler's associated executor for `async_fetch`).
  /// Throws `Error`: `invalid_argument` (bad URL, method, header or response description),
  /// `insecure_url` (plain http to a non-loopback host, refused before any traffic).
  explicit HttpTokenSource(HttpTokenSourceOptions options);

  /// A source whose I/O runs on `executor`. Throws as above.
  HttpTokenSource(boost::asio::any_io_executor executor, HttpTokenSourceOptions options);

  /// A fetcher for `TokenCredentialOptions::fetcher`. It runs on the credential's executor
  /// without blocking it, honours `FetchContext::cancellation_slot()` (the transfer is
  /// aborted), and keeps this source's state alive. Token-only answers are read with the
  /// credential's `ParseOptions`.
  ///
  /// Clock skew: every response's `Date` header (any status) is reported to the credential
  /// (`FetchContext::report_service_time`), and relative expiries (`expires_in`, a fallback
  /// lifetime) count from that `Date`, else from `FetchContext::now()`, so the token's
  /// `expires_on` is in the service's clock. `async_fetch` uses the local clock, as before.
  Fetcher fetcher() const;

  /// Fetches one token.
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error, AccessToken token)`: `error` is null on success, else holds
  /// an `Error`. Any completion token works (callbacks, `use_future`, `use_awaitable`,
  /// `deferred`).
  ///
  /// @par Executor
  /// The handler runs on its associated executor (default: the source's executor), always
  /// posted, never inline. A source built without an executor does its I/O on the first
  /// executor it is used with.
  ///
  /// @par Cancellation
  /// Honours the handler's cancellation slot (any cancellation type): the transfer is aborted
  /// and the handler gets `errc::cancelled`. Emit the signal from the handler's executor.
  ///
  /// @par Errors
  /// As the class comment lists; every message but `cancelled`'s starts with the method and URL.
  ///
  /// @par Thread safety
  /// May be called from any thread, concurrently.
  ///
  /// @par Lifetimes
  /// The operation holds the source's state: the source may be destroyed before the handler
  /// runs. The handler's executor must outlive the operation.
  ///
  /// @par Preconditions
  /// None (the options were checked by the constructor).
  template <typename CompletionToken>
  auto async_fetch(CompletionToken&& token) const {
    return boost::asio::async_initiate<CompletionToken, HttpFetchSignature>(
        [](auto handler, std::shared_ptr<const State> state) {
          boost::asio::any_io_executor executor = boost::asio::get_associated_executor(handler, default_executor(*state));
          initiate_fetch(std::move(state), std::move(executor),
                         boost::asio::any_completion_handler<HttpFetchSignature>(std::move(handler)));
        },
        token, std::shared_ptr<const State>(state_));
  }

  /// The options the source was built with.
  const HttpTokenSourceOptions& options() const noexcept;

 private:
  struct State;
  static boost::asio::any_io_executor default_executor(const State& state);
  static void initiate_fetch(std::shared_ptr<const State> state, boost::asio::any_io_executor executor,
                             boost::asio::any_completion_handler<HttpFetchSignature> handler);
  std::shared_ptr<State> state_;
};

}  // namespace credkit
