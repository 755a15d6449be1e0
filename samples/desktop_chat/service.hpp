// desktop_chat — a stand-in for the chat / calling service: it checks each request's token
// the way a real service would (signature, expiry, revocation) and answers 200 or 401.
#pragma once

#include "jwt.hpp"

#include <credkit/core/parse_token.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace desktop_chat {

struct Response {
  int status = 200;
  std::string reason = "OK";
};

class SimulatedService {
 public:
  /// `keys`: the minter whose signatures to check; null when tokens come from elsewhere
  /// (--token-url), then only expiry and revocation are checked.
  explicit SimulatedService(std::shared_ptr<const JwtMinter> keys) : keys_(std::move(keys)) {}

  /// Handles one request carrying `token` in its Authorization header.
  Response handle(const std::string& token) const {
    if (keys_ && !keys_->signature_ok(token)) return {401, "bad signature"};
    std::error_code ec;
    const auto parsed = credkit::parse_token(token, ec);
    if (ec) return {401, "malformed token"};
    if (parsed.expires_on <= std::chrono::system_clock::now()) return {401, "token expired"};
    std::lock_guard lock(mutex_);
    if (revoked_.count(token)) return {401, "token revoked"};
    return {};
  }

  /// Revokes a token server-side (what an admin or a security event does in ACS).
  void revoke(const std::string& token) {
    std::lock_guard lock(mutex_);
    revoked_.insert(token);
  }

 private:
  std::shared_ptr<const JwtMinter> keys_;
  mutable std::mutex mutex_;
  std::set<std::string> revoked_;
};

}  // namespace desktop_chat
