// credkit — building Agora AccessToken2 ("007…") tokens, byte-compatible with Agora's builders.
#pragma once

#include <credkit/core/fetcher.hpp>
#include <credkit/sources/agora_service.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace credkit::agora {

/// Builds an AccessToken2: "007" + base64(zlib(pack(signature) + content)), where content
/// is the little-endian packed app id, issue time, expire, salt and services, and the
/// signature is HMAC-SHA256 over it with the key HMAC(salt, HMAC(issue_ts, app certificate)).
/// Same bytes as Agora's own AccessToken2 builders for the same inputs.
///
/// The app certificate is a secret: it is wiped (OPENSSL_cleanse) when the builder is
/// destroyed and never appears in an error message.
class AccessToken2 {
 public:
  /// A token for `app_id` signed with `app_certificate` (both 32 hex characters in Agora's
  /// console, but any non-empty string is accepted), valid for `expire` after issue time
  /// (1 s to 24 h). Throws `Error(errc::invalid_argument)` otherwise.
  AccessToken2(std::string app_id, std::string app_certificate, std::chrono::seconds expire);
  AccessToken2(const AccessToken2&) = delete;
  AccessToken2& operator=(const AccessToken2&) = delete;
  AccessToken2(AccessToken2&&) noexcept;
  AccessToken2& operator=(AccessToken2&&) noexcept;
  ~AccessToken2();

  /// Sets the issue time (seconds since the Unix epoch); default: now.
  AccessToken2& issue_ts(std::uint32_t seconds);
  /// Sets the salt; default: random in [1, 99999999].
  AccessToken2& salt(std::uint32_t salt);

  /// Grants the Chat user privilege to `user_uuid` for `privilege_expire` after issue.
  AccessToken2& add_chat_user(std::string user_uuid, std::chrono::seconds privilege_expire);
  /// Grants the Chat app privilege (an app token) for `privilege_expire` after issue.
  AccessToken2& add_chat_app(std::chrono::seconds privilege_expire);
  /// Grants RTC privileges in `channel_name` to `uid` ("" or "0": any uid).
  AccessToken2& add_rtc(std::string channel_name, std::string uid,
                        const std::map<RtcPrivilege, std::chrono::seconds>& privileges);
  /// Grants the RTM login privilege to `user_id`.
  AccessToken2& add_rtm(std::string user_id, std::chrono::seconds privilege_expire);

  /// The token string. Throws `Error(errc::invalid_argument)` when no service was added.
  std::string build() const;

 private:
  struct Data;
  std::unique_ptr<Data> data_;
};

/// A Chat user token for `user_uuid`, valid for `expire` (the privilege lasts as long).
std::string build_chat_user_token(std::string_view app_id, std::string_view app_certificate,
                                  std::string_view user_uuid, std::chrono::seconds expire);

/// A Chat app token, valid for `expire`.
std::string build_chat_app_token(std::string_view app_id, std::string_view app_certificate,
                                 std::chrono::seconds expire);

/// A fetcher minting a fresh Chat user token per fetch, locally (no I/O; completes inline):
/// for an app server or a test that holds the app certificate. Arguments are validated now
/// (throws `Error(errc::invalid_argument)`); the certificate is kept wiped-on-destruction.
Fetcher chat_user_token_fetcher(std::string app_id, std::string app_certificate, std::string user_uuid,
                                std::chrono::seconds expire);

/// As `chat_user_token_fetcher`, for Chat app tokens (REST API administration).
Fetcher chat_app_token_fetcher(std::string app_id, std::string app_certificate, std::chrono::seconds expire);

}  // namespace credkit::agora
