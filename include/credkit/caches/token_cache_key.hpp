// credkit — the key a token is cached under: a user id and the scopes the token grants.
#pragma once

#include <initializer_list>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace credkit {

/// Identifies a cached token: whose it is (`user_id`) and what it grants (`scopes`).
///
/// A small value type. `str()` renders a stable string: the scopes are sorted and
/// de-duplicated, and every part is length-prefixed, so `{"a", {"x y"}}` and
/// `{"a x", {"y"}}` never collide and the same set of scopes in any order gives the same key.
/// Caches store tokens under `str()` (Redis and the encrypted file never store it in clear).
class TokenCacheKey {
 public:
  /// An empty key (no user, no scopes).
  TokenCacheKey() = default;
  /// A key for `user_id` with `scopes` (any order, duplicates ignored).
  TokenCacheKey(std::string user_id, std::vector<std::string> scopes = {});
  /// A key for `user_id` with `scopes` given as a list.
  TokenCacheKey(std::string user_id, std::initializer_list<std::string_view> scopes);

  /// The user (or identity) the token belongs to.
  const std::string& user_id() const noexcept { return user_id_; }
  /// The scopes, sorted and de-duplicated.
  const std::vector<std::string>& scopes() const noexcept { return scopes_; }
  /// The stable rendering, e.g. `v1:6:user-1:2:4:chat,4:voip` (lengths, then the parts).
  std::string str() const;

  /// Keys are equal when their user and scope sets are.
  friend bool operator==(const TokenCacheKey&, const TokenCacheKey&) = default;

 private:
  std::string user_id_;
  std::vector<std::string> scopes_;
};

/// Writes `TokenCacheKey{user=…, scopes=[…]}` (a user id is not a secret).
std::ostream& operator<<(std::ostream& os, const TokenCacheKey& key);

}  // namespace credkit
