// Keys in the Linux kernel keyring, for real (keyctl(2)): each case runs in a fresh anonymous
// session keyring; keys it creates in the user keyring are unlinked at its end.
#include "caches/keychain_test_support.hpp"

#include <keyutils.h>

using namespace credkit;
using namespace credkit::keychaintest;

namespace {

/// Puts this process in a new, empty session keyring for the test case.
struct FreshSessionKeyring {
  FreshSessionKeyring() { REQUIRE(keyctl_join_session_keyring(nullptr) > 0); }
};

KernelKeyringKeyOptions options_for(const std::string& application, const std::string& name = "cache") {
  KernelKeyringKeyOptions options;
  options.application = application;
  options.name = name;
  return options;
}

/// The serial of credkit's entry for `options`, or -1.
key_serial_t entry_serial(const KernelKeyringKeyOptions& options) {
  const key_serial_t keyring = options.keyring == KernelKeyringKeyOptions::Keyring::session ? KEY_SPEC_SESSION_KEYRING
                                                                                            : KEY_SPEC_USER_KEYRING;
  return static_cast<key_serial_t>(
      keyctl_search(keyring, "user", ("credkit:" + options.application + ":" + options.name).c_str(), 0));
}

/// Creates the entry of `options` through credkit and returns its serial.
key_serial_t created_entry(const KernelKeyringKeyOptions& options) {
  load_keychain_keys(options);
  const key_serial_t key = entry_serial(options);
  REQUIRE(key > 0);
  return key;
}

/// Unlinks the user-keyring entry of `options` when the test case ends.
struct UserKeyringCleanup {
  KernelKeyringKeyOptions options;
  ~UserKeyringCleanup() {
    const key_serial_t key = entry_serial(options);
    if (key > 0) keyctl_unlink(key, KEY_SPEC_USER_KEYRING);
  }
};

}  // namespace

TEST_CASE("kernel keyring: a key is created on first use and found again, also by another process") {
  FreshSessionKeyring session;
  const auto options = options_for("credkit-first-use");
  CHECK(entry_serial(options) < 0);
  const auto created = load_keychain_keys(options);
  REQUIRE(created.size() == 1);
  CHECK(created[0].material().size() == 32);
  CHECK(entry_serial(options) > 0);
  CHECK(same_material(load_keychain_keys(options)[0], created[0]));
  // A child inherits the session keyring.
  const ChildOutcome child = run_child_role("kernel-session", {{{"CREDKIT_KEYCHAIN_APP", options.application}}, {}});
  CHECK(child.output == keys_report(created) + "\n");
}

TEST_CASE("kernel keyring: other descriptions and keyrings, other keys") {
  FreshSessionKeyring session;
  auto in_user = options_for(unique_application("credkit-user"));
  in_user.keyring = KernelKeyringKeyOptions::Keyring::user;
  UserKeyringCleanup cleanup{in_user};
  auto in_session = in_user;
  in_session.keyring = KernelKeyringKeyOptions::Keyring::session;

  const auto a = load_keychain_keys(options_for("credkit-app-a"));
  const auto a_other = load_keychain_keys(options_for("credkit-app-a", "other"));
  const auto user = load_keychain_keys(in_user);
  const auto session_key = load_keychain_keys(in_session);  // a fresh session keyring does not link @u
  CHECK_FALSE(same_material(a[0], a_other[0]));
  CHECK_FALSE(same_material(user[0], session_key[0]));
  CHECK(same_material(load_keychain_keys(in_user)[0], user[0]));
  CHECK(same_material(load_keychain_keys(options_for("credkit-app-a"))[0], a[0]));
}

TEST_CASE("kernel keyring: rotation puts a new key first and keeps the old one for reading") {
  FreshSessionKeyring session;
  auto options = options_for("credkit-rotation");
  check_rotation_against_file_cache([&] { return load_keychain_keys(options); },
                                    [&] { return rotate_keychain_key(options); });
  options.max_previous_keys = 0;
  const auto only_new = rotate_keychain_key(options);
  CHECK(only_new.size() == 1);
  CHECK(load_keychain_keys(options).size() == 1);
}

TEST_CASE("kernel keyring: a corrupted payload is keychain_corrupt and is left as it is") {
  FreshSessionKeyring session;
  const auto options = options_for("credkit-corrupt");
  const key_serial_t key = created_entry(options);
  const std::string corrupted = "0123456789abcdef not a key";
  REQUIRE(keyctl_update(key, corrupted.data(), corrupted.size()) == 0);
  check_load_and_rotate_fail(options, errc::keychain_corrupt, "credkit:credkit-corrupt:cache");
  void* payload = nullptr;
  const int size = keyctl_read_alloc(key, &payload);
  REQUIRE(size >= 0);
  CHECK(std::string(static_cast<const char*>(payload), static_cast<std::size_t>(size)) == corrupted);
  std::free(payload);
}

TEST_CASE("kernel keyring: an entry credkit may not read is keychain_unavailable, never replaced") {
  FreshSessionKeyring session;
  const auto options = options_for("credkit-denied");
  const key_serial_t key = created_entry(options);
  REQUIRE(keyctl_setperm(key, KEY_POS_VIEW) == 0);  // no search, read or write, for anyone
  check_load_and_rotate_fail(options, errc::keychain_unavailable, "permission denied");
  // The session keyring still holds that one entry, not a replacement beside it.
  void* links = nullptr;
  const int size = keyctl_read_alloc(KEY_SPEC_SESSION_KEYRING, &links);
  REQUIRE(size == static_cast<int>(sizeof(key_serial_t)));
  CHECK(*static_cast<key_serial_t*>(links) == key);
  std::free(links);
}
