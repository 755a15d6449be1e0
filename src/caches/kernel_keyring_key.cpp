// Cache encryption keys in the Linux kernel keyring (libkeyutils): a `user` key whose payload is
// the key list of keychain_material.hpp.
#include <credkit/caches/keychain_key.hpp>
#include <credkit/core/error.hpp>

#include "caches/keychain_material.hpp"

#ifdef CREDKIT_HAVE_LIBKEYUTILS
#include <keyutils.h>
#include <openssl/crypto.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#endif

#include <string>

namespace credkit {

bool kernel_keyring_compiled_in() noexcept {
#ifdef CREDKIT_HAVE_LIBKEYUTILS
  return true;
#else
  return false;
#endif
}

#ifdef CREDKIT_HAVE_LIBKEYUTILS

namespace {

struct KernelEntry {
  key_serial_t keyring;
  std::string description;
  std::string where;  // for messages: which keyring and description
};

KernelEntry entry_of(const KernelKeyringKeyOptions& options) {
  options.validate();
  const bool session = options.keyring == KernelKeyringKeyOptions::Keyring::session;
  KernelEntry entry{session ? KEY_SPEC_SESSION_KEYRING : KEY_SPEC_USER_KEYRING,
                    "credkit:" + options.application + ":" + options.name, {}};
  entry.where = std::string("the kernel keyring entry '") + entry.description + "' (" +
                (session ? "session keyring @s" : "user keyring @u") + ")";
  return entry;
}

[[noreturn]] void fail_with_errno(const KernelEntry& entry, const char* step, int error) {
  std::string hint;
  if (error == ENOSYS || error == EPERM)
    hint = ": the kernel refuses keyctl(2) here (no CONFIG_KEYS, or a container's seccomp profile blocks it); "
           "use the Secret Service or give the key another way";
  else if (error == EACCES)
    hint = ": permission denied (the entry belongs to another user or its permissions were changed)";
  else if (error == EDQUOT)
    hint = ": the user's key quota is full (see /proc/sys/kernel/keys/maxkeys and maxbytes)";
  throw_error(errc::keychain_unavailable,
              std::string(step) + " " + entry.where + " failed: " + std::strerror(error) + hint);
}

/// The entry's key serial, or 0 when there is none.
key_serial_t find(const KernelEntry& entry) {
  const long found = keyctl_search(entry.keyring, "user", entry.description.c_str(), 0);
  if (found >= 0) return static_cast<key_serial_t>(found);
  const int error = errno;
  if (error == ENOKEY || error == EKEYEXPIRED || error == EKEYREVOKED) return 0;
  fail_with_errno(entry, "searching", error);
}

std::vector<CacheEncryptionKey> read(const KernelEntry& entry, key_serial_t key, std::size_t max_previous) {
  void* payload = nullptr;
  const int size = keyctl_read_alloc(key, &payload);
  if (size < 0) fail_with_errno(entry, "reading", errno);
  const detail::SecretText text(static_cast<const char*>(payload), static_cast<std::size_t>(size));
  OPENSSL_cleanse(payload, static_cast<std::size_t>(size));
  std::free(payload);
  return detail::decode_keychain_keys(text.view(), max_previous, entry.where);
}

/// Stores `keys` in the existing entry `key`, or in a new one when `key` is 0.
void write(const KernelEntry& entry, key_serial_t key, const std::vector<CacheEncryptionKey>& keys) {
  const detail::SecretText text = detail::encode_keychain_keys(keys);
  if (key != 0) {
    if (keyctl_update(key, text.view().data(), text.view().size()) < 0) fail_with_errno(entry, "updating", errno);
    return;
  }
  // A key added straight to @u may not be possessed (a session keyring that does not link @u),
  // and then its default permissions let this very process neither read nor change it. So it
  // is born in the process keyring (always possessed), opened to the user, then moved to @u.
  const key_serial_t birthplace = entry.keyring == KEY_SPEC_USER_KEYRING ? KEY_SPEC_PROCESS_KEYRING : entry.keyring;
  const key_serial_t created =
      add_key("user", entry.description.c_str(), text.view().data(), text.view().size(), birthplace);
  if (created < 0) fail_with_errno(entry, "creating", errno);
  // The user's other processes may use it without possessing it (another session reaching @u).
  if (keyctl_setperm(created, KEY_POS_ALL | KEY_USR_VIEW | KEY_USR_READ | KEY_USR_WRITE | KEY_USR_SEARCH) < 0)
    fail_with_errno(entry, "setting the permissions of", errno);
  if (birthplace != entry.keyring) {
    if (keyctl_link(created, entry.keyring) < 0) fail_with_errno(entry, "linking", errno);
    keyctl_unlink(created, birthplace);
  }
}

}  // namespace

std::vector<CacheEncryptionKey> load_keychain_keys(const KernelKeyringKeyOptions& options) {
  const KernelEntry entry = entry_of(options);
  if (const key_serial_t key = find(entry)) return read(entry, key, options.max_previous_keys);
  std::vector<CacheEncryptionKey> keys;
  keys.push_back(CacheEncryptionKey::generate());
  write(entry, 0, keys);
  return keys;
}

std::vector<CacheEncryptionKey> rotate_keychain_key(const KernelKeyringKeyOptions& options) {
  const KernelEntry entry = entry_of(options);
  const key_serial_t key = find(entry);
  std::vector<CacheEncryptionKey> keys =
      detail::rotated_keychain_keys(key ? read(entry, key, options.max_previous_keys) : std::vector<CacheEncryptionKey>{},
                                    options.max_previous_keys);
  write(entry, key, keys);
  return keys;
}

#else  // built without libkeyutils

std::vector<CacheEncryptionKey> load_keychain_keys(const KernelKeyringKeyOptions& options) {
  options.validate();
  detail::keychain_not_built("the kernel keyring", "libkeyutils", "libkeyutils-dev", "libkeyutils");
}
std::vector<CacheEncryptionKey> rotate_keychain_key(const KernelKeyringKeyOptions& options) { return load_keychain_keys(options); }

#endif

}  // namespace credkit
