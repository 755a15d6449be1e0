// credkit — error codes and the exception type every credkit failure is reported with.
#pragma once

#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace credkit {

/// Error conditions reported by credkit. Every failure credkit reports is a
/// `std::error_code` in `credkit::category()` with one of these values.
enum class errc {
  // Tokens
  invalid_token = 1,         ///< The token string is empty, malformed or not a token at all.
  token_expired_on_arrival,  ///< A fetcher or `update_token` supplied a token that is already expired.
  no_token,                  ///< No token is cached and there is no fetcher or listener to obtain one.
  // Refresh
  fetch_failed,              ///< The fetcher failed; the exception's `cause()` holds what it threw.
  fetch_timeout,             ///< The fetcher (or a `token_will_expire` listener) did not deliver in time.
  fetcher_abandoned,         ///< An async fetcher dropped its completion without calling it.
  credential_closed,         ///< The credential was closed (or destroyed) before the operation finished.
  would_deadlock,            ///< A blocking call was made on the credential's own executor thread.
  cancelled,                 ///< The operation was cancelled through its cancellation slot.
  // Configuration
  invalid_argument,          ///< An option or argument is out of range; the message names it.
  invalid_connection_string, ///< A connection string is malformed or lacks a required part.
  insecure_url,              ///< Plain `http://` to a non-loopback host without explicit permission.
  // Network and services
  http_status,               ///< The service answered with a non-success HTTP status.
  rate_limited,              ///< The service answered 429; see `Error::retry_after()`.
  network_error,             ///< DNS, connect, reset or other transport failure.
  timeout,                   ///< A connect or total timeout elapsed.
  tls_error,                 ///< TLS handshake or certificate verification failed.
  invalid_response,          ///< The service's answer could not be understood.
  response_too_large,        ///< The service's answer exceeded the configured size cap.
  // Caches and crypto
  cache_corrupt,             ///< A cache record or file is truncated or damaged.
  cache_wrong_key,           ///< A cache record was encrypted with another key.
  cache_unavailable,         ///< The cache backend (e.g. Redis) cannot be reached.
  cache_io_error,            ///< Reading or writing the cache's storage failed.
  crypto_error,              ///< An OpenSSL primitive failed.
  // OS keychains
  keychain_unavailable,      ///< The OS keychain cannot be used (absent, locked, not answering, not built in).
  keychain_corrupt,          ///< A key stored in the OS keychain is not what credkit stores there.
};

/// The error category of all credkit error codes (name: "credkit").
const std::error_category& category() noexcept;

/// Makes an error code in credkit's category.
std::error_code make_error_code(errc e) noexcept;

/// The code's enumerator name, e.g. "fetch_timeout" (stable: fit for metric labels and log
/// fields); "unknown" for a value that names no enumerator.
std::string_view to_string(errc e) noexcept;

/// Extra facts an `Error` can carry beside its code and message.
struct ErrorDetails {
  /// What caused this error (for example the exception a fetcher threw).
  std::exception_ptr cause;
  /// Whether retrying the same operation later can succeed. Unset: derived from the code.
  std::optional<bool> retryable;
  /// A lower bound on when to retry, when the service said so (HTTP `Retry-After`).
  std::optional<std::chrono::milliseconds> retry_after;
  /// The HTTP status of the failed request, or 0.
  int http_status = 0;
};

/// The exception credkit throws and delivers to async completions.
///
/// `code()` is always in `credkit::category()`; `what()` is a message a user can act on and
/// never contains a token, key, password or connection string: every message is scrubbed
/// when the error is built (known secrets in any encoding, secret-shaped text and control
/// bytes are hidden; docs/security.md, "Diagnostics"). `cause()` is the underlying
/// exception as it was thrown: if your fetcher throws text containing a secret, that
/// exception still holds it, so log `what()` of the `Error`, not of its cause.
class Error : public std::system_error {
 public:
  /// Builds an error from a code, an actionable message and optional details.
  Error(errc code, const std::string& message, ErrorDetails details = {});
  /// Builds an error from an arbitrary code (kept as is) and a message.
  Error(std::error_code code, const std::string& message, ErrorDetails details = {});

  /// The exception that caused this one, or null.
  std::exception_ptr cause() const noexcept { return details_.cause; }
  /// Whether a later retry of the same operation may succeed.
  bool retryable() const noexcept;
  /// The delay the service asked for before retrying, if any.
  std::optional<std::chrono::milliseconds> retry_after() const noexcept { return details_.retry_after; }
  /// The HTTP status of the failed request, or 0.
  int http_status() const noexcept { return details_.http_status; }
  /// All details at once.
  const ErrorDetails& details() const noexcept { return details_; }
  /// The message given at construction (std::system_error would append the code's text).
  const char* what() const noexcept override { return message_.what(); }

 private:
  struct Scrubbed {};
  Error(std::error_code code, std::string scrubbed, ErrorDetails details, Scrubbed);
  std::runtime_error message_;  // copying it cannot throw
  ErrorDetails details_;
};

/// The credkit error code an exception stands for: `Error::code()`, a `std::system_error`'s
/// code, or `errc::fetch_failed` for any other exception. Null gives an empty code.
std::error_code error_code_of(const std::exception_ptr& e) noexcept;

/// The message of an exception (`what()`), or a fixed text for non-standard exceptions.
std::string message_of(const std::exception_ptr& e);

/// Whether an error is worth retrying later: `Error::retryable()` for credkit errors,
/// true for any other exception (an unknown failure may be transient).
bool is_retryable(const std::exception_ptr& e) noexcept;

/// Throws `Error(code, message, details)`. Supported API: a terse error path for fetchers
/// (an exception thrown by a fetcher fails the fetch with it: `details.retryable` and
/// `details.retry_after` steer the retry, and the `Error` itself reaches waiting callers and
/// `refresh_failed` listeners). The message is
/// scrubbed as every `Error` message is. Never returns; throws `std::bad_alloc` instead when
/// out of memory. Thread safety: may be called from any thread.
[[noreturn]] void throw_error(errc code, const std::string& message, ErrorDetails details = {});

}  // namespace credkit

/// @cond
template <>
struct std::is_error_code_enum<credkit::errc> : std::true_type {};
/// @endcond
