// Keys in the Secret Service, against a real gnome-keyring-daemon on a private session bus:
// created once and found again (also by another process), one item per attribute set,
// rotation with a file cache, and every failure a clear error: no Secret Service, no bus, a
// stuck daemon (bounded by the timeout), a locked collection, a corrupted secret.
#include "caches/keychain_test_support.hpp"

#include <libsecret/secret.h>

using namespace credkit;
using namespace credkit::keychaintest;

namespace {

SecretServiceKeyOptions options_for(const std::string& application, const std::string& name = "cache") {
  SecretServiceKeyOptions options;
  options.application = application;
  options.name = name;
  return options;
}

/// The schema credkit's items have, written here as another tool would see it.
const SecretSchema* credkit_schema() {
  static const SecretSchema schema = [] {
    SecretSchema s{};
    s.name = "org.credkit.CacheEncryptionKey";
    s.attributes[0] = {"application", SECRET_SCHEMA_ATTRIBUTE_STRING};
    s.attributes[1] = {"credkit-key", SECRET_SCHEMA_ATTRIBUTE_STRING};
    s.attributes[2] = {"credkit-kind", SECRET_SCHEMA_ATTRIBUTE_STRING};
    return s;
  }();
  return &schema;
}

/// Replaces the secret of credkit's item for `application` (default collection) with `secret`.
void overwrite_secret(const std::string& application, const std::string& secret) {
  GError* error = nullptr;
  const gboolean stored = secret_password_store_sync(
      credkit_schema(), SECRET_COLLECTION_DEFAULT, "corrupted by the test", secret.c_str(), nullptr, &error,
      "application", application.c_str(), "credkit-key", "cache", "credkit-kind", "cache-encryption-key", nullptr);
  if (error) g_error_free(error);
  REQUIRE(stored);
}

/// The secret of credkit's item for `application`, or "<none>".
std::string stored_secret(const std::string& application) {
  gchar* secret = secret_password_lookup_sync(credkit_schema(), nullptr, nullptr, "application", application.c_str(),
                                              "credkit-key", "cache", "credkit-kind", "cache-encryption-key", nullptr);
  const std::string text = secret ? secret : "<none>";
  secret_password_free(secret);
  return text;
}

/// Locks the default collection through the Secret Service API, as a screen locker would.
void lock_default_collection() {
  GVariant* alias = bus_call("org.freedesktop.secrets", "/org/freedesktop/secrets", "org.freedesktop.Secret.Service",
                             "ReadAlias", g_variant_new("(s)", "default"), "(o)");
  REQUIRE(alias != nullptr);
  const char* path = nullptr;
  g_variant_get(alias, "(&o)", &path);
  GVariantBuilder objects;
  g_variant_builder_init(&objects, G_VARIANT_TYPE("ao"));
  g_variant_builder_add(&objects, "o", path);
  GVariant* locked = bus_call("org.freedesktop.secrets", "/org/freedesktop/secrets", "org.freedesktop.Secret.Service",
                              "Lock", g_variant_new("(ao)", &objects), "(aoo)");
  g_variant_unref(alias);
  REQUIRE(locked != nullptr);
  g_variant_unref(locked);
}

}  // namespace

TEST_CASE("secret service: a key is created on first use and found again, also by another process") {
  test::TempDir data;
  GnomeKeyring keyring(data.path);
  const auto options = options_for("credkit-first-use");
  const std::vector<CacheEncryptionKey> created = load_keychain_keys(options);
  REQUIRE(created.size() == 1);
  CHECK_FALSE(created[0].is_passphrase());
  CHECK(created[0].material().size() == 32);

  const std::vector<CacheEncryptionKey> again = load_keychain_keys(options);
  REQUIRE(again.size() == 1);
  CHECK(same_material(again[0], created[0]));

  const ChildOutcome child = run_child_role("secret-service", {{{"CREDKIT_KEYCHAIN_APP", options.application}}, {}});
  CHECK(child.output == keys_report(created) + "\n");
}

TEST_CASE("secret service: other attributes, other keys") {
  test::TempDir data;
  GnomeKeyring keyring(data.path);
  const auto a = load_keychain_keys(options_for("credkit-app-a"));
  const auto b = load_keychain_keys(options_for("credkit-app-b"));
  const auto a_other = load_keychain_keys(options_for("credkit-app-a", "other"));
  CHECK_FALSE(same_material(a[0], b[0]));
  CHECK_FALSE(same_material(a[0], a_other[0]));
  CHECK_FALSE(same_material(b[0], a_other[0]));
  CHECK(same_material(load_keychain_keys(options_for("credkit-app-a"))[0], a[0]));
  CHECK(same_material(load_keychain_keys(options_for("credkit-app-b"))[0], b[0]));

  auto elsewhere = options_for("credkit-app-a");  // a collection that does not exist is not created
  elsewhere.collection = "credkit_missing";
  check_load_and_rotate_fail(elsewhere, errc::keychain_unavailable,
                             "has no collection 'credkit_missing' (no collection has that alias)");
}

TEST_CASE("secret service: rotation puts a new key first and keeps the old one for reading") {
  test::TempDir data;
  GnomeKeyring keyring(data.path);
  auto options = options_for("credkit-rotation");
  check_rotation_against_file_cache([&] { return load_keychain_keys(options); },
                                    [&] { return rotate_keychain_key(options); });

  // Past max_previous_keys the oldest key goes.
  options.max_previous_keys = 1;
  const auto before = load_keychain_keys(options);
  const auto after = rotate_keychain_key(options);
  REQUIRE(after.size() == 2);
  CHECK(same_material(after[1], before[0]));
  CHECK(load_keychain_keys(options).size() == 2);
}

TEST_CASE("secret service: none on the bus fails at once with keychain_unavailable") {
  PrivateSessionBus::instance();  // a bus, but no gnome-keyring-daemon on it
  const auto start = SteadyClock::now();
  const auto [code, message] = failure_of([] { load_keychain_keys(options_for("credkit-no-service")); });
  CHECK(code == errc::keychain_unavailable);
  CHECK(message.find("no Secret Service") != std::string::npos);
  CHECK(SteadyClock::now() - start < 2s);
}

TEST_CASE("secret service: no session bus fails at once, whether the address is unset or leads nowhere") {
  test::TempDir empty_runtime;
  ChildEnvironment nowhere{{{"DBUS_SESSION_BUS_ADDRESS", "unix:path=" + (empty_runtime.path / "no-bus").string()},
                            {"CREDKIT_KEYCHAIN_APP", "credkit-no-bus"}},
                           {"DISPLAY"}};
  ChildEnvironment unset{{{"XDG_RUNTIME_DIR", empty_runtime.path.string()}, {"CREDKIT_KEYCHAIN_APP", "credkit-no-bus"}},
                         {"DBUS_SESSION_BUS_ADDRESS", "DISPLAY"}};
  const std::string unavailable = "error " + std::to_string(static_cast<int>(errc::keychain_unavailable));
  for (const auto& [environment, hint] : {std::pair{nowhere, "is set but does not answer"},
                                          std::pair{unset, "DBUS_SESSION_BUS_ADDRESS is unset"}}) {
    const ChildOutcome child = run_child_role("secret-service", environment);
    CAPTURE(child.output);
    CHECK(child.output.rfind(unavailable + " no D-Bus session bus", 0) == 0);
    CHECK(child.output.find(hint) != std::string::npos);
    CHECK(child.took < 2s);
  }
}

TEST_CASE("secret service: a stuck daemon costs the timeout, not a hang") {
  test::TempDir data;
  GnomeKeyring keyring(data.path);
  auto options = options_for("credkit-stuck");
  const auto created = load_keychain_keys(options);
  keyring.freeze();
  options.timeout = 300ms;
  const auto start = SteadyClock::now();
  const auto [code, message] = failure_of([&] { load_keychain_keys(options); });
  const auto took = SteadyClock::now() - start;
  CHECK(code == errc::keychain_unavailable);
  CHECK(message.find("did not answer within 300 ms") != std::string::npos);
  CHECK(took >= 300ms);
  CHECK(took < 1500ms);
}

TEST_CASE("secret service: a locked collection is a clear error, never a prompt") {
  test::TempDir data;
  GnomeKeyring keyring(data.path);
  const auto options = options_for("credkit-locked");
  load_keychain_keys(options);
  lock_default_collection();
  check_load_and_rotate_fail(options, errc::keychain_unavailable, "is locked");
  check_load_and_rotate_fail(options_for("credkit-locked-new"), errc::keychain_unavailable, "is locked");
}

TEST_CASE("secret service: a corrupted secret is keychain_corrupt and is left as it is") {
  test::TempDir data;
  GnomeKeyring keyring(data.path);
  const auto options = options_for("credkit-corrupt");
  const auto created = load_keychain_keys(options);
  const std::string valid(64, 'a');
  for (const std::string& corrupted :
       {std::string("not a key"), valid.substr(1), std::string(64, 'A'), valid + "  " + valid, valid + " ",
        std::string(64, 'g')}) {
    CAPTURE(corrupted);
    overwrite_secret(options.application, corrupted);
    check_load_and_rotate_fail(options, errc::keychain_corrupt, "credkit-corrupt");
    CHECK(stored_secret(options.application) == corrupted);
  }
}
