// Fuzz target: decrypting encrypted cache records (src/caches/record_crypto.hpp), as read
// from a damaged cache file or a hostile Redis. The first byte picks the cache key; half of
// the inputs are spliced onto a valid record header so the fuzzer reaches the AEAD check.
#include <credkit/caches/cache_encryption_key.hpp>
#include <credkit/core/error.hpp>

#include "caches/record_crypto.hpp"
#include "fuzz_expect.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace {

const credkit::detail::Keyring& keyring() {
  static const credkit::detail::Keyring ring = [] {
    std::array<unsigned char, 32> raw{};
    for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<unsigned char>(i * 7 + 1);
    const std::array<unsigned char, 16> salt{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    return credkit::detail::Keyring({credkit::CacheEncryptionKey::from_raw(raw)}, salt);
  }();
  return ring;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& ring = keyring();
  std::string record(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) {
    // A valid version byte and key id, then the fuzzer's bytes.
    std::string head(1, '\x01');
    head.append(reinterpret_cast<const char*>(ring.primary().id.data()), ring.primary().id.size());
    record.insert(0, head);
  }
  const std::string cache_key = (data[0] & 2) ? "user-1|chat" : "";
  try {
    const auto token = ring.decrypt(cache_key, record);
    (void)token;
  } catch (const credkit::Error& e) {
    fuzz::expect_code_in(e, {credkit::errc::cache_corrupt, credkit::errc::cache_wrong_key, credkit::errc::crypto_error});
  }
  return 0;
}
