// Placeholder until the Agora AccessToken2 parser lands: recognizes no token.
#include "core/token_parsers.hpp"

namespace credkit::detail {
std::optional<AccessToken> try_parse_agora_token(std::string_view) { return std::nullopt; }
}  // namespace credkit::detail
