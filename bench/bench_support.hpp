// credkit bench — shared helpers: realistic token strings and memory readings.
#pragma once

#include <credkit/core/access_token.hpp>

#include <malloc.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>

namespace credkit::bench {

/// base64url without padding, as JWTs use.
inline std::string base64url(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8) |
                            std::uint8_t(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (const std::size_t rest = in.size() - i) {
    std::uint32_t v = std::uint32_t(std::uint8_t(in[i])) << 16;
    if (rest == 2) v |= std::uint32_t(std::uint8_t(in[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    if (rest == 2) out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

/// A JWT shaped like an Azure Communication Services user access token: RS256 header with
/// key id, the ACS claims (identity, scopes, resource), a real `exp`, and a 2048-bit
/// signature's worth of random bytes. About 1 KB, like the real thing. `user` varies the
/// identity so that many credentials hold distinct strings.
inline std::string make_acs_jwt(std::chrono::system_clock::time_point expires_on, std::uint64_t user = 0) {
  using namespace std::chrono;
  const auto exp = duration_cast<seconds>(expires_on.time_since_epoch()).count();
  const auto iat = exp - 24 * 3600;
  char id[40];
  std::snprintf(id, sizeof id, "%08llx-%04x-%04x-%04x-%012llx", static_cast<unsigned long long>(user & 0xffffffff),
                unsigned(user >> 32 & 0xffff), 0x4a1bu, 0x8c2du, static_cast<unsigned long long>(user * 2654435761u));
  const std::string resource = "3f1d2c5e-8b7a-4e21-9c44-0d6f5a7b2e19";
  const std::string header = R"({"alg":"RS256","kid":"5B17E1A4C2F03D8E7B6A9C1D0E2F3A4B5C6D7E8F_","x5t":"Wxfh8sLwPY57apwdDi86O8XG1n8","typ":"JWT"})";
  const std::string payload = std::string(R"({"skypeid":"acs:)") + resource + "_" + id + R"(","scp":1792,"csi":")" +
                              std::to_string(iat) + R"(","exp":)" + std::to_string(exp) +
                              R"(,"rgn":"amer","acsScope":"chat,voip","resourceId":")" + resource +
                              R"(","resourceLocation":"unitedstates","iss":"https://acscallautomation.communication.azure.com",)"
                              R"("aud":"https://communication.azure.com/chat","nbf":)" + std::to_string(iat) +
                              R"(,"iat":)" + std::to_string(iat) + "}";
  std::mt19937_64 rng(user ^ 0x9e3779b97f4a7c15ull);
  std::string signature(256, '\0');
  for (auto& c : signature) c = static_cast<char>(rng());
  return base64url(header) + "." + base64url(payload) + "." + base64url(signature);
}

/// A token that expires `lifetime` from now, as an AccessToken.
inline AccessToken make_token(std::chrono::system_clock::time_point expires_on, std::uint64_t user = 0) {
  return AccessToken{make_acs_jwt(expires_on, user), std::chrono::time_point_cast<std::chrono::system_clock::duration>(
                                                         std::chrono::floor<std::chrono::seconds>(expires_on))};
}

/// Bytes currently allocated through malloc (glibc's own accounting).
inline std::size_t heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

/// Resident set size in bytes, from /proc/self/statm.
inline std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * 4096ul : 0;
}

}  // namespace credkit::bench
