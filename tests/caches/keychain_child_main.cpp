// Child-process roles of keychain_tests: the binary re-executes itself with
// CREDKIT_KEYCHAIN_CHILD=<role> and CREDKIT_KEYCHAIN_APP=<application>; the role runs before
// doctest's main, prints one line ("keys <fingerprint>..." or "error <code> <message>") and exits.
#include "caches/keychain_test_support.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

int run_child(const char* role, const char* application) {
  using namespace credkit;
  try {
    std::vector<CacheEncryptionKey> keys;
    if (std::strcmp(role, "secret-service") == 0) {
      SecretServiceKeyOptions options;
      options.application = application;
      options.timeout = std::chrono::seconds(3);
      keys = load_keychain_keys(options);
    } else if (std::strcmp(role, "kernel-session") == 0) {
      KernelKeyringKeyOptions options;
      options.application = application;
      keys = load_keychain_keys(options);
    } else {
      std::printf("unknown role %s\n", role);
      return 2;
    }
    std::printf("%s\n", keychaintest::keys_report(keys).c_str());
  } catch (const Error& e) {
    std::printf("error %d %s\n", e.code().value(), e.what());
  }
  return 0;
}

[[maybe_unused]] const int child_dispatch = [] {
  if (const char* role = std::getenv("CREDKIT_KEYCHAIN_CHILD")) {
    const char* application = std::getenv("CREDKIT_KEYCHAIN_APP");
    const int rc = run_child(role, application ? application : "");
    std::fflush(nullptr);
    std::_Exit(rc);
  }
  return 0;
}();

}  // namespace
