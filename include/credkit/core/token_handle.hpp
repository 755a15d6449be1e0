// credkit — a cheap, immutable, shareable reference to a token.
#pragma once

#include <credkit/core/access_token.hpp>

#include <chrono>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>

namespace credkit {

/// What `TokenCredential::get_token` hands out: an immutable token shared by reference.
///
/// Copying a handle copies a pointer, not the token bytes, so a client can take one per
/// request at no cost. The token it refers to never changes; a refresh produces a new
/// handle. An empty (default-constructed) handle holds no token.
///
/// Thread safety: distinct handles may be used concurrently; a handle is as thread-safe as
/// `std::shared_ptr`.
class TokenHandle {
 public:
  /// An empty handle.
  TokenHandle() noexcept = default;
  /// Wraps an existing shared token.
  explicit TokenHandle(std::shared_ptr<const AccessToken>&& token) noexcept : token_(std::move(token)) {}
  /// Shares an existing token (copied straight into place: this is the hot path's constructor).
  explicit TokenHandle(const std::shared_ptr<const AccessToken>& token) noexcept : token_(token) {}
  /// Makes a handle owning a copy of `token`.
  static TokenHandle make(AccessToken token);

  /// The token string. Precondition: the handle is not empty.
  const std::string& token() const noexcept { return token_->token; }
  /// When the token expires. Precondition: the handle is not empty.
  std::chrono::system_clock::time_point expires_on() const noexcept { return token_->expires_on; }
  /// The whole token. Precondition: the handle is not empty.
  const AccessToken& get() const noexcept { return *token_; }
  /// The whole token. Precondition: the handle is not empty.
  const AccessToken& operator*() const noexcept { return *token_; }
  /// Member access to the token. Precondition: the handle is not empty.
  const AccessToken* operator->() const noexcept { return token_.get(); }
  /// True when the handle holds a token.
  explicit operator bool() const noexcept { return token_ != nullptr; }
  /// The shared pointer behind the handle.
  const std::shared_ptr<const AccessToken>& shared() const noexcept { return token_; }

  /// Two handles are equal when both are empty or both hold equal tokens.
  friend bool operator==(const TokenHandle& a, const TokenHandle& b) noexcept {
    if (a.token_ == b.token_) return true;
    if (!a.token_ || !b.token_) return false;
    return *a.token_ == *b.token_;
  }

 private:
  std::shared_ptr<const AccessToken> token_;
};

/// Redacted, like `AccessToken`'s; an empty handle prints `TokenHandle{empty}`.
std::ostream& operator<<(std::ostream& os, const TokenHandle& token);

}  // namespace credkit
