// What a keychain entry holds (caches/keychain_material.hpp): properties over generated keys
// and generated corruptions (RapidCheck, seeded from RC_PARAMS), and the options' checks.
#include <credkit/caches/keychain_key.hpp>
#include <credkit/core/error.hpp>

#include "caches/keychain_material.hpp"
#include "caches/keychain_test_support.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>

using namespace credkit;
using namespace credkit::keychaintest;

namespace {

std::vector<CacheEncryptionKey> keys_from(const std::vector<std::vector<unsigned char>>& raw) {
  std::vector<CacheEncryptionKey> keys;
  for (const auto& bytes : raw) keys.push_back(CacheEncryptionKey::from_raw(bytes));
  return keys;
}

/// 1 to 1 + max_keychain_previous_keys raw keys.
rc::Gen<std::vector<std::vector<unsigned char>>> raw_key_lists() {
  return rc::gen::mapcat(rc::gen::inRange<std::size_t>(1, max_keychain_previous_keys + 2), [](std::size_t count) {
    return rc::gen::container<std::vector<std::vector<unsigned char>>>(
        count, rc::gen::container<std::vector<unsigned char>>(32, rc::gen::arbitrary<unsigned char>()));
  });
}

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

errc decode_failure(std::string_view text) {
  try {
    detail::decode_keychain_keys(text, max_keychain_previous_keys, "the test entry");
  } catch (const Error& e) {
    return static_cast<errc>(e.code().value());
  }
  return errc{};
}

}  // namespace

TEST_CASE("keychain material: every key list round-trips, cut to 1 + max_previous") {
  CHECK(rc::check("round trip", [] {
    const auto raw = *raw_key_lists();
    const std::size_t max_previous = *rc::gen::inRange<std::size_t>(0, max_keychain_previous_keys + 1);
    const auto text = detail::encode_keychain_keys(keys_from(raw));
    RC_ASSERT(text.view().size() == raw.size() * 65 - 1);
    const auto decoded = detail::decode_keychain_keys(text.view(), max_previous, "the test entry");
    RC_ASSERT(decoded.size() == std::min(raw.size(), 1 + max_previous));
    for (std::size_t i = 0; i < decoded.size(); ++i)
      RC_ASSERT(std::equal(decoded[i].material().begin(), decoded[i].material().end(), raw[i].begin(), raw[i].end()));
  }));
}

TEST_CASE("keychain material: every corruption of a stored list is rejected as keychain_corrupt") {
  // A hex digit replaced by another, or a cut just after a whole key, is a different valid
  // list, not a detectable corruption; the corruptions here change the shape: a byte inserted,
  // removed or replaced by a byte that does not belong at its place, a cut inside a key or at a
  // separator, one key too many.
  CHECK(rc::check("corruptions", [] {
    const auto raw = *raw_key_lists();
    const auto encoded = detail::encode_keychain_keys(keys_from(raw));
    std::string text(encoded.view());
    const std::size_t at = *rc::gen::inRange<std::size_t>(0, text.size());
    switch (*rc::gen::inRange(0, 5)) {
      case 0:
        text.insert(at, 1, *rc::gen::arbitrary<char>());
        break;
      case 1:
        text.erase(at, 1);
        break;
      case 2: {
        const bool separator_place = (at + 1) % 65 == 0;
        const char replacement = *rc::gen::suchThat(rc::gen::arbitrary<char>(), [&](char c) {
          return separator_place ? c != ' ' : !is_lower_hex(c);
        });
        text[at] = replacement;
        break;
      }
      case 3:
        if (at % 65 == 64) RC_DISCARD("a cut after a whole key leaves a valid list");
        text.resize(at);
        break;
      default:
        if (raw.size() < max_keychain_previous_keys + 1) RC_DISCARD("room for another key");
        text += " " + std::string(64, '0');
    }
    RC_ASSERT(decode_failure(text) == errc::keychain_corrupt);
  }));
}

TEST_CASE("keychain material: a corrupt entry's message names the entry, never its bytes") {
  const std::string secretish = std::string(63, 'f') + "X";
  try {
    detail::decode_keychain_keys(secretish, 2, "the test entry");
    FAIL("decoded a corrupt entry");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("the test entry") != std::string::npos);
    CHECK(std::string(e.what()).find("fff") == std::string::npos);
  }
}

TEST_CASE("keychain options: validate names the field it rejects") {
  SecretServiceKeyOptions secret_service;
  secret_service.application = "app";
  secret_service.validate();
  KernelKeyringKeyOptions kernel;
  kernel.application = "app";
  kernel.validate();
  // `change` applied to a copy of `valid` makes validate() reject `field` first.
  const auto rejects = [](auto valid, auto change, const std::string& field) {
    change(valid);
    const std::string message = failure_of([&] { valid.validate(); }).second;
    CAPTURE(message);
    return message.rfind(field + " must be", 0) == 0;
  };
  using S = SecretServiceKeyOptions;
  CHECK(rejects(secret_service, [](S& o) { o.application = ""; }, "SecretServiceKeyOptions::application"));
  CHECK(rejects(secret_service, [](S& o) { o.name = "a:b"; }, "SecretServiceKeyOptions::name"));
  CHECK(rejects(secret_service, [](S& o) { o.label = "line\nbreak"; }, "SecretServiceKeyOptions::label"));
  CHECK(rejects(secret_service, [](S& o) { o.collection = "a.b"; }, "SecretServiceKeyOptions::collection"));
  CHECK(rejects(secret_service, [](S& o) { o.max_previous_keys = max_keychain_previous_keys + 1; },
                "SecretServiceKeyOptions::max_previous_keys"));
  CHECK(rejects(secret_service, [](S& o) { o.timeout = std::chrono::milliseconds(0); },
                "SecretServiceKeyOptions::timeout"));
  using K = KernelKeyringKeyOptions;
  CHECK(rejects(kernel, [](K& o) { o.application = std::string(129, 'a'); }, "KernelKeyringKeyOptions::application"));
  CHECK(rejects(kernel, [](K& o) { o.keyring = static_cast<K::Keyring>(7); }, "KernelKeyringKeyOptions::keyring"));
  CHECK(rejects(kernel, [](K& o) { o.max_previous_keys = max_keychain_previous_keys + 1; },
                "KernelKeyringKeyOptions::max_previous_keys"));
  // The options are checked before any keychain is touched.
  K invalid = kernel;
  invalid.name = "";
  CHECK(failure_of([&] { load_keychain_keys(invalid); }).first == errc::invalid_argument);
}
