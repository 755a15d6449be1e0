#include "caches/keychain_material.hpp"

#include <credkit/caches/keychain_key.hpp>
#include <credkit/core/error.hpp>

#include <openssl/crypto.h>

#include <algorithm>
#include <cstddef>

namespace credkit::detail {

namespace {
constexpr std::size_t hex_digits_per_key = 64;
constexpr std::size_t max_stored_keys = 1 + max_keychain_previous_keys;

bool is_lower_hex(char c) noexcept { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
}  // namespace

SecretText::SecretText(std::size_t capacity) { text_.reserve(capacity); }

SecretText::SecretText(const char* data, std::size_t size) : SecretText(size) { append({data, size}); }

SecretText::~SecretText() { OPENSSL_cleanse(text_.data(), text_.capacity()); }

void SecretText::append(std::string_view more) {
  if (text_.size() + more.size() > text_.capacity())
    throw_error(errc::invalid_argument, "SecretText::append: beyond the reserved capacity");
  text_.append(more);
}

SecretText encode_keychain_keys(std::span<const CacheEncryptionKey> keys) {
  static constexpr char digits[] = "0123456789abcdef";
  SecretText text(keys.size() * (hex_digits_per_key + 1));
  for (const CacheEncryptionKey& key : keys) {
    if (key.is_passphrase() || key.material().size() != hex_digits_per_key / 2)
      throw_error(errc::invalid_argument, "a keychain entry holds raw 32-byte keys only");
    if (&key != keys.data()) text.append(" ");
    for (const unsigned char byte : key.material()) {
      const char pair[2] = {digits[byte >> 4], digits[byte & 0xf]};
      text.append({pair, 2});
    }
  }
  return text;
}

std::vector<CacheEncryptionKey> decode_keychain_keys(std::string_view text, std::size_t max_previous,
                                                     std::string_view where) {
  const auto corrupt = [&](std::string_view what) {
    throw_error(errc::keychain_corrupt,
                std::string(where) + " is not a credkit key list (" + std::string(what) +
                    "); credkit does not replace it: delete the entry to start over with a new key "
                    "(what the old one encrypted is then lost), or restore it");
  };
  if (text.empty()) corrupt("it is empty");
  if ((text.size() + 1) % (hex_digits_per_key + 1) != 0) corrupt("its length is not a whole number of keys");
  const std::size_t count = (text.size() + 1) / (hex_digits_per_key + 1);
  if (count > max_stored_keys) corrupt("it holds more than " + std::to_string(max_stored_keys) + " keys");
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool separator_place = (i + 1) % (hex_digits_per_key + 1) == 0;
    if (separator_place ? text[i] != ' ' : !is_lower_hex(text[i]))
      corrupt("a character at offset " + std::to_string(i) + " is not where a lowercase hex digit or a separator belongs");
  }
  std::vector<CacheEncryptionKey> keys;
  const std::size_t kept = std::min(count, 1 + max_previous);
  keys.reserve(kept);
  for (std::size_t i = 0; i < kept; ++i)
    keys.push_back(CacheEncryptionKey::from_hex(text.substr(i * (hex_digits_per_key + 1), hex_digits_per_key)));
  return keys;
}

std::vector<CacheEncryptionKey> rotated_keychain_keys(std::vector<CacheEncryptionKey> keys, std::size_t max_previous) {
  keys.insert(keys.begin(), CacheEncryptionKey::generate());
  if (keys.size() > 1 + max_previous) keys.erase(keys.begin() + static_cast<std::ptrdiff_t>(1 + max_previous), keys.end());
  return keys;
}

void keychain_not_built(std::string_view backend, std::string_view library, std::string_view package,
                        std::string_view pkg_config_module) {
  throw_error(errc::keychain_unavailable, "credkit was built without " + std::string(library) + ", so it cannot use " +
                                              std::string(backend) + ": install " + std::string(package) +
                                              " (pkg-config " + std::string(pkg_config_module) +
                                              ") and rebuild with CREDKIT_KEYCHAIN=ON");
}

}  // namespace credkit::detail
