// credkit — Azure Communication Services identity REST client (HMAC-SHA256 signed).
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/core/fetcher.hpp>
#include <credkit/sources/acs_connection_string.hpp>
#include <credkit/sources/acs_identity_client_options.hpp>
#include <credkit/sources/acs_token_scope.hpp>
#include <credkit/sources/acs_user_and_token.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace credkit::acs {

namespace detail {
struct IdentityClientImpl;
}

/// Talks to the ACS identity REST API (`api-version=2023-10-01` by default): creates and
/// deletes users, issues and revokes their user access tokens, and exchanges a Teams user's
/// Entra token for an ACS token. Every request is signed with the resource's access key
/// (ACS HMAC-SHA256: `x-ms-date`, `host`, `x-ms-content-sha256`).
///
/// Typical use on a trusted app server, or in a stateless bot as a credential's fetcher:
/// @code
/// acs::IdentityClient identity(io.get_executor(), acs::ConnectionString::parse(cs));
/// options.fetcher = identity.fetcher(user_id, {acs::TokenScope::chat});
/// auto credential = TokenCredential::create(io.get_executor(), std::move(options));
/// @endcode
///
/// Every async function below has these sections in common; each function gives its own
/// handler signature, preconditions and errors.
///
/// @par Executor
/// The handler runs on its associated executor (default: the client's), always posted,
/// never inline from the initiating call.
///
/// @par Cancellation
/// Honours the handler's cancellation slot (any type): the request is aborted and the handler
/// gets `errc::cancelled`. Emit the signal from the handler's executor.
///
/// @par Errors
/// Besides each function's own: `http_status` (4xx: not retryable, e.g. 401 for a bad key or
/// a skewed clock; 5xx: retryable), `rate_limited` (429, with `retry_after`),
/// `network_error`, `timeout`, `tls_error`, `invalid_response` (the service's JSON lacks the
/// expected fields). Messages name the operation and never contain the access key or a token.
///
/// @par Thread safety
/// All members may be called concurrently from any thread; copies share one state.
///
/// @par Lifetimes
/// The arguments are taken by value and the operation holds what it needs: the client may be
/// destroyed before the handler runs. The handler's executor must outlive the operation.
///
/// The decoded access key is wiped (OPENSSL_cleanse) when the last copy is destroyed.
class IdentityClient {
 public:
  /// Shortest token lifetime the service accepts (60 minutes).
  static constexpr std::chrono::minutes min_token_lifetime{60};
  /// Longest token lifetime the service accepts (24 hours).
  static constexpr std::chrono::minutes max_token_lifetime{1440};

  /// A client for the resource of `connection_string`, doing its I/O on `executor`.
  IdentityClient(boost::asio::any_io_executor executor, ConnectionString connection_string,
                 IdentityClientOptions options = {});

  /// The executor given at construction.
  const boost::asio::any_io_executor& get_executor() const noexcept;

  /// Creates a new identity (`POST /identities`).
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error, std::string user_id)`.
  ///
  /// @par Preconditions
  /// None.
  template <typename CompletionToken>
  auto async_create_user(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr, std::string)>(
        [impl = impl_](auto handler) {
          initiate_create_user(impl, boost::asio::any_completion_handler<void(std::exception_ptr, std::string)>(
                                         std::move(handler)));
        },
        token);
  }

  /// Issues a token for an existing user (`POST /identities/{id}/:issueAccessToken`).
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error, AccessToken token)`: the token with the service's
  /// `expiresOn`.
  ///
  /// @par Preconditions
  /// `user_id` non-empty and at most 1024 characters, at least one scope, `lifetime` from
  /// 60 to 1440 minutes; else the handler gets `invalid_argument` (no request is sent).
  template <typename CompletionToken>
  auto async_issue_token(std::string user_id, std::vector<TokenScope> scopes, std::chrono::minutes lifetime,
                         CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr, AccessToken)>(
        [impl = impl_](auto handler, std::string user_id, std::vector<TokenScope> scopes,
                       std::chrono::minutes lifetime) {
          initiate_issue_token(impl, std::move(user_id), std::move(scopes), lifetime,
                               boost::asio::any_completion_handler<void(std::exception_ptr, AccessToken)>(
                                   std::move(handler)));
        },
        token, std::move(user_id), std::move(scopes), lifetime);
  }

  /// Creates a user and issues its first token in one request (`POST /identities` with
  /// `createTokenWithScopes`).
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error, UserAndToken result)`.
  ///
  /// @par Preconditions
  /// At least one scope and `lifetime` from 60 to 1440 minutes; else the handler gets
  /// `invalid_argument` (no request is sent).
  template <typename CompletionToken>
  auto async_create_user_and_token(std::vector<TokenScope> scopes, std::chrono::minutes lifetime,
                                   CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr, UserAndToken)>(
        [impl = impl_](auto handler, std::vector<TokenScope> scopes, std::chrono::minutes lifetime) {
          initiate_create_user_and_token(
              impl, std::move(scopes), lifetime,
              boost::asio::any_completion_handler<void(std::exception_ptr, UserAndToken)>(std::move(handler)));
        },
        token, std::move(scopes), lifetime);
  }

  /// Revokes every token of a user (`POST /identities/{id}/:revokeAccessTokens`).
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error)`.
  ///
  /// @par Preconditions
  /// `user_id` non-empty and at most 1024 characters; else the handler gets
  /// `invalid_argument` (no request is sent).
  template <typename CompletionToken>
  auto async_revoke_tokens(std::string user_id, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
        [impl = impl_](auto handler, std::string user_id) {
          initiate_revoke_tokens(impl, std::move(user_id),
                                 boost::asio::any_completion_handler<void(std::exception_ptr)>(std::move(handler)));
        },
        token, std::move(user_id));
  }

  /// Deletes a user and revokes its tokens (`DELETE /identities/{id}`).
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error)`.
  ///
  /// @par Preconditions
  /// `user_id` non-empty and at most 1024 characters; else the handler gets
  /// `invalid_argument` (no request is sent).
  template <typename CompletionToken>
  auto async_delete_user(std::string user_id, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
        [impl = impl_](auto handler, std::string user_id) {
          initiate_delete_user(impl, std::move(user_id),
                               boost::asio::any_completion_handler<void(std::exception_ptr)>(std::move(handler)));
        },
        token, std::move(user_id));
  }

  /// Exchanges a Teams user's Microsoft Entra access token for an ACS token
  /// (`POST /teamsUser/:exchangeAccessToken`, "getTokenForTeamsUser"). `client_id`: the
  /// Entra application id; `user_object_id`: the Teams user's object id.
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error, AccessToken token)`.
  ///
  /// @par Preconditions
  /// `entra_token`, `client_id` and `user_object_id` non-empty; else the handler gets
  /// `invalid_argument` (no request is sent).
  template <typename CompletionToken>
  auto async_exchange_teams_token(std::string entra_token, std::string client_id, std::string user_object_id,
                                  CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr, AccessToken)>(
        [impl = impl_](auto handler, std::string entra_token, std::string client_id, std::string user_object_id) {
          initiate_exchange_teams_token(
              impl, std::move(entra_token), std::move(client_id), std::move(user_object_id),
              boost::asio::any_completion_handler<void(std::exception_ptr, AccessToken)>(std::move(handler)));
        },
        token, std::move(entra_token), std::move(client_id), std::move(user_object_id));
  }

  /// A fetcher that issues a fresh token for `user_id` on each fetch (for
  /// `TokenCredential`). Arguments are validated now (throws `Error(invalid_argument)`).
  /// The fetch honours `FetchContext::cancellation_slot()` and completes on the
  /// credential's executor. Keeps the client's state alive. Every response's `Date` is
  /// reported to the credential (`FetchContext::report_service_time`) and requests are signed
  /// with service time (`FetchContext::now()`, unless `IdentityClientOptions::clock` is set):
  /// on a skewed client the first request may get a 401 (x-ms-date outside the service's
  /// tolerance), whose `Date` teaches the credential the offset; the next fetch is signed in
  /// service time and succeeds.
  Fetcher fetcher(std::string user_id, std::vector<TokenScope> scopes,
                  std::chrono::minutes lifetime = min_token_lifetime) const;

 private:
  using Impl = detail::IdentityClientImpl;
  static void initiate_create_user(std::shared_ptr<Impl> impl,
                                   boost::asio::any_completion_handler<void(std::exception_ptr, std::string)> h);
  static void initiate_issue_token(std::shared_ptr<Impl> impl, std::string user_id, std::vector<TokenScope> scopes,
                                   std::chrono::minutes lifetime,
                                   boost::asio::any_completion_handler<void(std::exception_ptr, AccessToken)> h);
  static void initiate_create_user_and_token(
      std::shared_ptr<Impl> impl, std::vector<TokenScope> scopes, std::chrono::minutes lifetime,
      boost::asio::any_completion_handler<void(std::exception_ptr, UserAndToken)> h);
  static void initiate_revoke_tokens(std::shared_ptr<Impl> impl, std::string user_id,
                                     boost::asio::any_completion_handler<void(std::exception_ptr)> h);
  static void initiate_delete_user(std::shared_ptr<Impl> impl, std::string user_id,
                                   boost::asio::any_completion_handler<void(std::exception_ptr)> h);
  static void initiate_exchange_teams_token(
      std::shared_ptr<Impl> impl, std::string entra_token, std::string client_id, std::string user_object_id,
      boost::asio::any_completion_handler<void(std::exception_ptr, AccessToken)> h);

  std::shared_ptr<Impl> impl_;
};

}  // namespace credkit::acs
