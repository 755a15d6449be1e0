// credkit — Microsoft Entra ID access tokens through the OAuth 2.0 client credentials grant.
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/core/fetcher.hpp>
#include <credkit/sources/entra_client_secret_options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <exception>
#include <memory>

namespace credkit::entra {

namespace detail {
struct ClientSecretSourceImpl;
}

/// Obtains app-only access tokens from Microsoft Entra ID: `POST {authority}/{tenant}/oauth2/v2.0/token`
/// with `grant_type=client_credentials`, the client id and secret and the scope (form-encoded).
///
/// The secret is wiped (OPENSSL_cleanse) when the last copy of the source goes away.
class ClientSecretSource {
 public:
  /// Validates `options` (throws `Error(errc::invalid_argument)` naming an empty required
  /// field or a malformed authority) and prepares a client that does its I/O on `executor`.
  ClientSecretSource(boost::asio::any_io_executor executor, ClientSecretOptions options);

  /// Requests a token.
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error, AccessToken token)`; the expiry is now + `expires_in`.
  ///
  /// @par Executor
  /// The handler runs on its associated executor (default: the source's), always posted,
  /// never inline.
  ///
  /// @par Cancellation
  /// The handler's cancellation slot (any type) aborts the request (`errc::cancelled`); emit
  /// it from the handler's executor.
  ///
  /// @par Errors
  /// An Entra error answer becomes `http_status` (not retryable for 400/401: e.g.
  /// `invalid_client`, whose message carries the `error`, the AADSTS `error_codes` and the
  /// `error_description`, with the secret redacted), `rate_limited` (429, with
  /// `retry_after`) or a retryable `http_status` (5xx); `invalid_response` when the answer
  /// lacks `access_token`/`expires_in`; transport errors as `HttpClientOptions` describes.
  ///
  /// @par Thread safety
  /// May be called from any thread, concurrently.
  ///
  /// @par Lifetimes
  /// The operation holds the source's state (and so its secret): the source may be destroyed
  /// before the handler runs. The handler's executor must outlive the operation.
  ///
  /// @par Preconditions
  /// None (the options were checked by the constructor).
  template <typename CompletionToken>
  auto async_get_token(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr, AccessToken)>(
        [impl = impl_](auto handler) {
          initiate(impl, boost::asio::any_completion_handler<void(std::exception_ptr, AccessToken)>(std::move(handler)));
        },
        token);
  }

  /// A fetcher requesting a token per fetch (for a `TokenCredential`), honouring
  /// `FetchContext::cancellation_slot()` and completing on the credential's executor. Every
  /// response's `Date` is reported to the credential (`FetchContext::report_service_time`),
  /// and `expires_in` counts from that `Date` (else `FetchContext::now()`): service time.
  Fetcher fetcher() const;

 private:
  using Impl = detail::ClientSecretSourceImpl;
  static void initiate(std::shared_ptr<Impl> impl,
                       boost::asio::any_completion_handler<void(std::exception_ptr, AccessToken)> handler);
  std::shared_ptr<Impl> impl_;
};

}  // namespace credkit::entra
