#include "jwt.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace desktop_chat {

std::string base64url(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (rest == 2) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;  // no '=' padding: JWTs never carry it
}

JwtMinter::JwtMinter() : key_(32) {
  if (RAND_bytes(key_.data(), static_cast<int>(key_.size())) != 1) throw std::runtime_error("RAND_bytes failed");
}

JwtMinter::JwtMinter(std::vector<unsigned char> key) : key_(std::move(key)) {
  if (key_.size() < 32) throw std::invalid_argument("a JwtMinter key needs at least 32 bytes");
}

JwtMinter::~JwtMinter() { OPENSSL_cleanse(key_.data(), key_.size()); }

std::string JwtMinter::sign(std::string_view signing_input) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (!HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
            reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac, &mac_len)) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return base64url(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
}

std::string JwtMinter::mint(std::string_view subject, std::chrono::seconds lifetime, std::uint64_t serial) const {
  using namespace std::chrono;
  const auto iat = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  const std::string payload = R"({"sub":")" + std::string(subject) + R"(","iat":)" + std::to_string(iat) +
                              R"(,"exp":)" + std::to_string(iat + lifetime.count()) + R"(,"jti":"demo-)" +
                              std::to_string(serial) + R"("})";
  std::string jwt = base64url(header) + '.' + base64url(payload);
  jwt += '.' + sign(jwt);
  return jwt;
}

bool JwtMinter::signature_ok(std::string_view jwt) const {
  const auto dot = jwt.rfind('.');
  if (dot == std::string_view::npos) return false;
  const std::string expected = sign(jwt.substr(0, dot));
  const std::string_view given = jwt.substr(dot + 1);
  return given.size() == expected.size() && CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
}

}  // namespace desktop_chat
