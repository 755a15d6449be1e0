// parse_token's hook for Agora AccessToken2 ("007…") tokens.
#include "core/token_parsers.hpp"
#include "sources/agora/access_token2.hpp"

namespace credkit::detail {

std::optional<AccessToken> try_parse_agora_token(std::string_view token) {
  if (token.size() < 3 || token.substr(0, 3) != "007") return std::nullopt;
  auto decoded = agora::detail::decode_access_token(token);  // throws Error(invalid_token) when damaged
  return AccessToken{std::string(token), decoded.info.expires_on, decoded.info.issued_at};
}

}  // namespace credkit::detail
