// credkit detail — the one wrapper of OpenSSL's digests, MACs, CSPRNG and wiping (core, sources
// and caches).
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace credkit::detail {

/// SHA-256 of `data` (32 raw bytes). Throws Error(crypto_error) if OpenSSL fails.
std::string sha256(std::string_view data);

/// HMAC-SHA256 of `message` under `key` into `out`. Throws Error(crypto_error) if OpenSSL fails.
void hmac_sha256(std::span<const unsigned char> key, std::string_view message, std::span<unsigned char, 32> out);

/// HMAC-SHA256 of `message` under `key` (32 raw bytes). Throws Error(crypto_error) if OpenSSL fails.
std::string hmac_sha256(std::string_view key, std::string_view message);

/// Overwrites a string's whole buffer (capacity included) with OPENSSL_cleanse and empties it.
void wipe(std::string& secret) noexcept;

/// Fills `out` from the OpenSSL CSPRNG; throws `Error(crypto_error)` on failure.
void random_bytes(std::span<unsigned char> out);

}  // namespace credkit::detail
