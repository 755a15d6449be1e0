// credkit — Web PubSub client tokens from the service's :generateToken REST API (Entra auth).
#pragma once

#include <credkit/core/fetcher.hpp>
#include <credkit/core/token_credential.hpp>
#include <credkit/sources/http_client_options.hpp>
#include <credkit/sources/webpubsub_client_access.hpp>
#include <credkit/sources/webpubsub_client_token_options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <exception>
#include <memory>
#include <string>

namespace credkit::webpubsub {

namespace detail {
struct TokenApiClientImpl;
}

/// Asks the service for client tokens: `POST {endpoint}/api/hubs/{hub}/:generateToken?api-version=2024-01-01`
/// with `userId`, `role`, `group`, `minutesToExpire` and `clientType`, authorized by a
/// Microsoft Entra bearer token (scope `https://webpubsub.azure.com/.default`) taken from
/// `entra_credential` (e.g. a `TokenCredential` fed by `entra::ClientSecretSource`).
/// Use it when local auth (access keys) is disabled on the resource.
class TokenApiClient {
 public:
  /// `endpoint`: `https://<name>.webpubsub.azure.com`; `hub` as for `ServiceClient`.
  /// Throws `Error(errc::invalid_argument)` for a malformed endpoint, bad hub or null credential.
  TokenApiClient(boost::asio::any_io_executor executor, std::string endpoint, std::string hub,
                 std::shared_ptr<TokenCredential> entra_credential, HttpClientOptions http = {});

  /// Generates a client token and URL.
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error, ClientAccess access)`; the token's expiry is read from the JWT.
  ///
  /// @par Executor
  /// The handler runs on its associated executor (default: the client's), always posted,
  /// never inline.
  ///
  /// @par Cancellation
  /// The handler's slot (any type) aborts the Entra token wait or the HTTP request
  /// (`errc::cancelled`); emit it from the handler's executor.
  ///
  /// @par Errors
  /// The Entra credential's errors; `http_status` / `rate_limited` from the service (401/403:
  /// not retryable); `invalid_response` when the answer has no valid `token`; transport errors.
  ///
  /// @par Thread safety
  /// May be called from any thread, concurrently.
  ///
  /// @par Lifetimes
  /// The operation holds the client's state and the Entra credential: the client may be
  /// destroyed before the handler runs. The handler's executor must outlive the operation.
  ///
  /// @par Preconditions
  /// `options.lifetime` from 1 minute to 365 days; else the handler gets `invalid_argument`
  /// (no request is sent).
  template <typename CompletionToken>
  auto async_generate_token(ClientTokenOptions options, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr, ClientAccess)>(
        [impl = impl_](auto handler, ClientTokenOptions options) {
          initiate(impl, std::move(options),
                   boost::asio::any_completion_handler<void(std::exception_ptr, ClientAccess)>(std::move(handler)));
        },
        token, std::move(options));
  }

  /// A fetcher generating a token per fetch through the REST API (honours the fetch's
  /// cancellation slot; completes on the credential's executor).
  Fetcher fetcher(ClientTokenOptions options = {}) const;

 private:
  using Impl = detail::TokenApiClientImpl;
  static void initiate(std::shared_ptr<Impl> impl, ClientTokenOptions options,
                       boost::asio::any_completion_handler<void(std::exception_ptr, ClientAccess)> handler);
  std::shared_ptr<Impl> impl_;
};

}  // namespace credkit::webpubsub
