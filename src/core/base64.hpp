// credkit detail — base64 and base64url (RFC 4648), strict decoding.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace credkit::detail {

/// Standard alphabet with padding.
std::string base64_encode(std::string_view bytes);
/// URL alphabet without padding (JWT segments).
std::string base64url_encode(std::string_view bytes);
/// Standard alphabet; padding optional. Nullopt on any invalid character or length.
std::optional<std::string> base64_decode(std::string_view text);
/// URL alphabet; padding optional. Nullopt on any invalid character or length.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace credkit::detail
