// credkit — cache encryption keys kept in the OS keychain: the desktop's Secret Service or the
// Linux kernel keyring. See docs/keychain.md.
#pragma once

#include <credkit/caches/cache_encryption_key.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace credkit {

/// Most previous keys a keychain entry keeps after rotations (`max_previous_keys`' upper bound).
inline constexpr std::size_t max_keychain_previous_keys = 16;

/// Where a key lives in the desktop's Secret Service (GNOME Keyring, KDE Wallet, KeePassXC),
/// reached through libsecret on the D-Bus session bus.
///
/// The item is found by its attributes: `application` and `credkit-key` as given here, and a
/// fixed `credkit-kind` = `cache-encryption-key` (schema `org.credkit.CacheEncryptionKey`).
/// The secret is the keys in hex, current first.
struct SecretServiceKeyOptions {
  /// The application the key belongs to (attribute `application`): 1 to 128 characters of
  /// `A-Z a-z 0-9 . _ -`.
  std::string application;
  /// Which of the application's keys (attribute `credkit-key`), same characters as `application`.
  std::string name = "cache";
  /// The item's label in keyring tools, at most 256 bytes without control characters. Empty:
  /// "credkit cache key <application>/<name>".
  std::string label;
  /// The collection alias the item is created in: 1 to 64 characters of `A-Z a-z 0-9 _ -`.
  /// "default" is the login keyring on GNOME.
  std::string collection = "default";
  /// Previous keys kept after a rotation, newest first: 0 to `max_keychain_previous_keys`.
  std::size_t max_previous_keys = 2;
  /// Longest one call may wait for the session bus and the Secret Service: 1 ms to 5 min. Past
  /// it the call fails with `keychain_unavailable` (a stuck bus never hangs the caller).
  std::chrono::milliseconds timeout = std::chrono::seconds(5);

  /// Throws `Error(errc::invalid_argument)` naming the first out-of-range field
  /// (`SecretServiceKeyOptions::<field> must be ...`).
  void validate() const;
};

/// Where a key lives in the Linux kernel keyring (keyctl(2)), for headless services: a `user`
/// key with the description `credkit:<application>:<name>`, searched in the chosen keyring and
/// the keyrings it links. The payload is the keys in hex, current first.
struct KernelKeyringKeyOptions {
  /// Which keyring holds the key.
  enum class Keyring {
    session,  ///< The session keyring (`@s`): gone when the login session ends.
    user,     ///< The user keyring (`@u`): shared by all of the user's processes until reboot.
  };
  /// The application the key belongs to: 1 to 128 characters of `A-Z a-z 0-9 . _ -`.
  std::string application;
  /// Which of the application's keys, same characters as `application`.
  std::string name = "cache";
  Keyring keyring = Keyring::session;
  /// Previous keys kept after a rotation, newest first: 0 to `max_keychain_previous_keys`.
  std::size_t max_previous_keys = 2;

  /// Throws `Error(errc::invalid_argument)` naming the first out-of-range field
  /// (`KernelKeyringKeyOptions::<field> must be ...`).
  void validate() const;
};

/// The keys of a Secret Service item, current first, then the previous ones (newest first, at
/// most `max_previous_keys`): what `EncryptedFileTokenCacheOptions::keys` and
/// `RedisTokenCacheOptions::keys` take. Creates the item with a fresh random 256-bit key on
/// first use.
///
/// Throws `Error`: `invalid_argument` (options), `keychain_unavailable` (no session bus, no
/// Secret Service, no such collection, a locked collection, no answer within `timeout`, or
/// credkit built without libsecret), `keychain_corrupt` (the stored secret is not what credkit
/// stores; it is never replaced silently). There is no plain-text fallback. Messages never
/// contain key material. Blocks the calling thread for at most about `timeout`.
///
/// Closing the session bus does not end the process: credkit turns GLib's exit-on-close off on
/// the shared session bus connection.
std::vector<CacheEncryptionKey> load_keychain_keys(const SecretServiceKeyOptions& options);

/// Stores a fresh random key as the current one and keeps the old current one (and earlier
/// ones, up to `max_previous_keys`) for decryption. Returns the new list, new key first. Creates
/// the item if it is absent. Throws as `load_keychain_keys`.
std::vector<CacheEncryptionKey> rotate_keychain_key(const SecretServiceKeyOptions& options);

/// The keys of a kernel keyring entry, current first; creates it on first use. Throws `Error`:
/// `invalid_argument`, `keychain_unavailable` (keyctl(2) missing or denied, e.g. by a container's
/// seccomp profile, or credkit built without libkeyutils), `keychain_corrupt`. Never blocks.
std::vector<CacheEncryptionKey> load_keychain_keys(const KernelKeyringKeyOptions& options);

/// Rotation in the kernel keyring, as `rotate_keychain_key(const SecretServiceKeyOptions&)`.
std::vector<CacheEncryptionKey> rotate_keychain_key(const KernelKeyringKeyOptions& options);

/// Whether credkit was built with libsecret (else the Secret Service functions always fail
/// with `keychain_unavailable`).
bool secret_service_compiled_in() noexcept;
/// Whether credkit was built with libkeyutils (else the kernel keyring functions always fail
/// with `keychain_unavailable`).
bool kernel_keyring_compiled_in() noexcept;

}  // namespace credkit
