// The checks of SecretServiceKeyOptions and KernelKeyringKeyOptions.
#include <credkit/caches/keychain_key.hpp>
#include <credkit/core/error.hpp>

#include <algorithm>
#include <string_view>

namespace credkit {

namespace {

bool is_name_character(char c, bool allow_dot) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         (allow_dot && c == '.');
}

/// Throws "<options>::<field> must be 1 to <max> characters of <allowed>" unless `value` is such a name.
void check_name(std::string_view options, std::string_view field, std::string_view value, std::size_t max,
                bool allow_dot) {
  const bool ok = !value.empty() && value.size() <= max &&
                  std::all_of(value.begin(), value.end(), [&](char c) { return is_name_character(c, allow_dot); });
  if (ok) return;
  std::string message(options);
  message.append("::").append(field).append(" must be 1 to ").append(std::to_string(max));
  message.append(" characters of A-Z a-z 0-9 ").append(allow_dot ? ". _ -" : "_ -");
  throw_error(errc::invalid_argument, message);
}

void check_previous_keys(std::string_view options, std::size_t max_previous_keys) {
  if (max_previous_keys > max_keychain_previous_keys)
    throw_error(errc::invalid_argument, std::string(options) + "::max_previous_keys must be 0 to " +
                                            std::to_string(max_keychain_previous_keys));
}

}  // namespace

void SecretServiceKeyOptions::validate() const {
  constexpr std::string_view self = "SecretServiceKeyOptions";
  check_name(self, "application", application, 128, true);
  check_name(self, "name", name, 128, true);
  const bool label_ok = label.size() <= 256 && std::none_of(label.begin(), label.end(), [](char c) {
                          return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
                        });
  if (!label_ok)
    throw_error(errc::invalid_argument,
                "SecretServiceKeyOptions::label must be at most 256 bytes without control characters");
  check_name(self, "collection", collection, 64, false);
  check_previous_keys(self, max_previous_keys);
  if (timeout < std::chrono::milliseconds(1) || timeout > std::chrono::minutes(5))
    throw_error(errc::invalid_argument, "SecretServiceKeyOptions::timeout must be 1 ms to 5 min");
}

void KernelKeyringKeyOptions::validate() const {
  constexpr std::string_view self = "KernelKeyringKeyOptions";
  check_name(self, "application", application, 128, true);
  check_name(self, "name", name, 128, true);
  if (keyring != Keyring::session && keyring != Keyring::user)
    throw_error(errc::invalid_argument, "KernelKeyringKeyOptions::keyring must be Keyring::session or Keyring::user");
  check_previous_keys(self, max_previous_keys);
}

}  // namespace credkit
