// credkit detail — AccessToken2 byte layout: little-endian packing with bounded reads.
#pragma once

#include <credkit/sources/agora_token_info.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace credkit::agora::detail {

/// Largest token text accepted (Agora tokens are a few hundred characters).
inline constexpr std::size_t kMaxTokenChars = 16 * 1024;
/// Largest decompressed content accepted.
inline constexpr std::size_t kMaxContentBytes = 64 * 1024;

/// The decoded parts of a token: the signature and the signed content.
struct DecodedToken {
  std::string signature;
  std::string content;  ///< Everything after the packed signature (what the signature covers).
  TokenInfo info;
};

/// Decodes and parses a token; throws Error(invalid_token) naming the problem.
DecodedToken decode_access_token(std::string_view token);

/// The signing key: HMAC(pack_uint32(salt), HMAC(pack_uint32(issue_ts), app_certificate)).
std::string signing_key(std::string_view app_certificate, std::uint32_t issue_ts, std::uint32_t salt);

/// zlib-compresses with the default level (what Agora's builders use).
std::string zlib_compress(std::string_view data);

/// Inflates zlib data, refusing output beyond `max_output`; nullopt when damaged or too big.
std::optional<std::string> zlib_decompress(std::string_view data, std::size_t max_output);

}  // namespace credkit::agora::detail
