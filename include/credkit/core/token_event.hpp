// credkit — what the credential tells its listeners.
#pragma once

#include <credkit/core/fetcher.hpp>
#include <credkit/core/token_handle.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <string_view>
#include <system_error>

namespace credkit {

/// The kinds of event a credential raises (the ACS / Agora vocabulary).
enum class TokenEventKind {
  will_expire,     ///< The will-expire point was reached; a refresh starts (or the app should call `update_token`).
  expired,         ///< The token expired without being renewed. Once per token.
  refreshed,       ///< A new token was installed (by the fetcher or `update_token`).
  refresh_failed,  ///< A refresh attempt failed; see `error`, `attempt`, `next_retry`.
};

/// The event's name, e.g. "will_expire".
std::string_view to_string(TokenEventKind kind) noexcept;

/// One event. Fields that do not apply to a kind are empty.
struct TokenEvent {
  /// Which event this is.
  TokenEventKind kind{};
  /// will_expire / expired: the token concerned (may be empty when there is none);
  /// refreshed: the new token.
  TokenHandle token;
  /// refreshed / refresh_failed / will_expire: why the refresh ran.
  FetchReason reason = FetchReason::proactive;
  /// refresh_failed: the error (an `Error`), and its code.
  std::exception_ptr error;
  /// refresh_failed: the error's code.
  std::error_code code;
  /// refresh_failed: consecutive failures so far (1 for the first).
  int attempt = 0;
  /// refresh_failed: when the credential retries by itself, if it does (local wall-clock time;
  /// token times such as `token.expires_on()` are the token service's, see R16).
  std::optional<std::chrono::system_clock::time_point> next_retry;
};

}  // namespace credkit
