#include "caches/record_crypto.hpp"

#include <credkit/core/error.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>

namespace credkit::detail {

namespace {

constexpr unsigned char record_version = 1;
constexpr std::string_view aad_label{"credkit-token-record\0", 21};

// Fetched once (and kept for the process): the implicit fetch behind EVP_aes_256_gcm() costs
// about a microsecond per record with OpenSSL 3, on every cache hit.
const EVP_CIPHER* aes_256_gcm() {
  static EVP_CIPHER* const fetched = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return fetched ? fetched : EVP_aes_256_gcm();
}

struct CipherCtx {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~CipherCtx() { EVP_CIPHER_CTX_free(ctx); }
};

std::string make_aad(const KeyId& id, std::string_view cache_key) {
  std::string aad(aad_label);
  aad += static_cast<char>(record_version);
  aad.append(reinterpret_cast<const char*>(id.data()), id.size());
  aad += cache_key;
  return aad;
}

}  // namespace

DerivedKey::~DerivedKey() {
  OPENSSL_cleanse(enc.data(), enc.size());
  OPENSSL_cleanse(mac.data(), mac.size());
}

std::string to_hex(std::span<const unsigned char> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (auto b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

Keyring::Keyring(const std::vector<CacheEncryptionKey>& keys, std::span<const unsigned char> salt) {
  if (keys.empty()) throw_error(errc::invalid_argument, "an encrypted cache needs at least one CacheEncryptionKey");
  for (const auto& k : keys) {
    std::array<unsigned char, 32> base{};
    if (k.is_passphrase()) {
      const auto m = k.material();
      if (PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(m.data()), static_cast<int>(m.size()), salt.data(),
                            static_cast<int>(salt.size()), static_cast<int>(k.iterations()), EVP_sha256(), 32,
                            base.data()) != 1)
        throw_error(errc::crypto_error, "PBKDF2-HMAC-SHA256 failed in OpenSSL");
    } else {
      std::memcpy(base.data(), k.material().data(), 32);
    }
    DerivedKey d;
    unsigned char id[32];
    try {
      hmac_sha256(base, "credkit/v1/enc", d.enc);
      hmac_sha256(base, "credkit/v1/lookup", d.mac);
      hmac_sha256(base, "credkit/v1/key-id", id);
    } catch (...) {
      OPENSSL_cleanse(base.data(), base.size());
      throw;
    }
    OPENSSL_cleanse(base.data(), base.size());
    std::memcpy(d.id.data(), id, d.id.size());
    keys_.push_back(d);
  }
}

const DerivedKey* Keyring::find(const KeyId& id) const noexcept {
  for (const auto& k : keys_)
    if (k.id == id) return &k;
  return nullptr;
}

Lookup Keyring::lookup(const DerivedKey& key, std::string_view cache_key) {
  unsigned char full[32];
  hmac_sha256(key.mac, cache_key, full);
  Lookup out;
  std::memcpy(out.data(), full, out.size());
  return out;
}

std::string Keyring::encrypt(std::string_view cache_key, const AccessToken& token) const {
  const auto& key = primary();
  std::string plain(8, '\0');
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(token.expires_on.time_since_epoch()).count();
  auto u = static_cast<std::uint64_t>(ms);
  for (int i = 7; i >= 0; --i, u >>= 8) plain[i] = static_cast<char>(u & 0xff);
  plain += token.token;

  std::string out(1 + 8 + 12 + plain.size() + 16, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  p[0] = record_version;
  std::memcpy(p + 1, key.id.data(), 8);
  random_bytes(std::span<unsigned char>(p + 9, 12));
  const auto aad = make_aad(key.id, cache_key);

  CipherCtx c;
  int len = 0;
  bool ok = c.ctx && EVP_EncryptInit_ex(c.ctx, aes_256_gcm(), nullptr, key.enc.data(), p + 9) == 1 &&
            EVP_EncryptUpdate(c.ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_EncryptUpdate(c.ctx, p + 21, &len, reinterpret_cast<const unsigned char*>(plain.data()),
                              static_cast<int>(plain.size())) == 1 &&
            EVP_EncryptFinal_ex(c.ctx, p + 21 + len, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, 16, p + 21 + plain.size()) == 1;
  OPENSSL_cleanse(plain.data(), plain.size());
  if (!ok) throw_error(errc::crypto_error, "AES-256-GCM encryption failed in OpenSSL");
  return out;
}

AccessToken Keyring::decrypt(std::string_view cache_key, std::string_view record) const {
  if (record.size() < record_overhead)
    throw_error(errc::cache_corrupt, "a cached token record is truncated (" + std::to_string(record.size()) +
                                         " bytes); it is ignored and will be replaced");
  const auto* p = reinterpret_cast<const unsigned char*>(record.data());
  if (p[0] != record_version)
    throw_error(errc::cache_corrupt,
                "a cached token record has unknown format version " + std::to_string(p[0]) + "; it is ignored");
  KeyId id;
  std::memcpy(id.data(), p + 1, 8);
  const DerivedKey* key = find(id);
  if (!key)
    throw_error(errc::cache_wrong_key,
                "a cached token was encrypted with a key this cache was not given (key id " + to_hex(id) +
                    "); after a rotation keep the old key in the list until its tokens expire");
  const std::size_t ct_len = record.size() - 1 - 8 - 12 - 16;
  const auto aad = make_aad(id, cache_key);
  std::string plain(ct_len, '\0');
  CipherCtx c;
  int len = 0;
  std::array<unsigned char, 16> tag;
  std::memcpy(tag.data(), p + 21 + ct_len, 16);
  bool ok = c.ctx && EVP_DecryptInit_ex(c.ctx, aes_256_gcm(), nullptr, key->enc.data(), p + 9) == 1 &&
            EVP_DecryptUpdate(c.ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(c.ctx, reinterpret_cast<unsigned char*>(plain.data()), &len, p + 21,
                              static_cast<int>(ct_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1;
  if (!ok) {
    OPENSSL_cleanse(plain.data(), plain.size());
    throw_error(errc::crypto_error, "AES-256-GCM decryption failed in OpenSSL");
  }
  if (EVP_DecryptFinal_ex(c.ctx, reinterpret_cast<unsigned char*>(plain.data()) + len, &len) != 1) {
    OPENSSL_cleanse(plain.data(), plain.size());
    throw_error(errc::cache_corrupt,
                "a cached token record failed authentication (damaged, or not stored under this key); it is ignored");
  }
  std::uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<unsigned char>(plain[i]);
  // Authenticated, so written with this key; still, an expiry past system_clock's range
  // (year 2262) would overflow the conversion below.
  using ms = std::chrono::milliseconds;
  constexpr auto max_ms = std::chrono::duration_cast<ms>(std::chrono::system_clock::duration::max()).count();
  constexpr auto min_ms = std::chrono::duration_cast<ms>(std::chrono::system_clock::duration::min()).count();
  const auto signed_ms = static_cast<std::int64_t>(u);
  if (signed_ms > max_ms || signed_ms < min_ms) {
    OPENSSL_cleanse(plain.data(), plain.size());
    throw_error(errc::cache_corrupt, "a cached token record holds an expiry outside 1677-2262; it is ignored");
  }
  AccessToken token;
  token.expires_on = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::milliseconds(signed_ms)));
  token.token.assign(plain.data() + 8, plain.size() - 8);
  OPENSSL_cleanse(plain.data(), plain.size());
  return token;
}

}  // namespace credkit::detail
