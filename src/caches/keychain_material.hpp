// credkit detail — the text a keychain entry holds (both backends): the keys in lowercase hex,
// current first, separated by one space; and the rotation of such a list.
#pragma once

#include <credkit/caches/cache_encryption_key.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace credkit::detail {

/// A string holding key material: wiped (OPENSSL_cleanse) when destroyed.
class SecretText {
 public:
  explicit SecretText(std::size_t capacity);
  SecretText(const char* data, std::size_t size);
  SecretText(SecretText&& other) noexcept : text_(std::move(other.text_)) {}
  SecretText(const SecretText&) = delete;
  SecretText& operator=(const SecretText&) = delete;
  ~SecretText();
  /// Appends without reallocating (the capacity is reserved up front, so no stale copy remains).
  void append(std::string_view more);
  std::string_view view() const noexcept { return text_; }

 private:
  std::string text_;
};

/// The text stored for `keys` (raw 32-byte keys only). Throws Error(invalid_argument) otherwise.
SecretText encode_keychain_keys(std::span<const CacheEncryptionKey> keys);

/// The keys in `text`, current first, at most `1 + max_previous` of them (older ones beyond
/// that are dropped). Throws Error(keychain_corrupt), naming `where` but no byte of the text,
/// unless the text is 1 to 1 + max_keychain_previous_keys keys of 64 lowercase hex digits
/// separated by single spaces.
std::vector<CacheEncryptionKey> decode_keychain_keys(std::string_view text, std::size_t max_previous,
                                                     std::string_view where);

/// A fresh random key followed by `keys`, cut to `1 + max_previous` keys.
std::vector<CacheEncryptionKey> rotated_keychain_keys(std::vector<CacheEncryptionKey> keys, std::size_t max_previous);

/// Fails a keychain call in a build without the backend's library: `keychain_unavailable`,
/// naming the Debian package and pkg-config module to install.
[[noreturn]] void keychain_not_built(std::string_view backend, std::string_view library, std::string_view package,
                                     std::string_view pkg_config_module);

}  // namespace credkit::detail
