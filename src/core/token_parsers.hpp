// credkit detail — parsers of vendor token formats that parse_token consults before JWT.
#pragma once

#include <credkit/core/access_token.hpp>

#include <optional>
#include <string_view>

namespace credkit::detail {

/// An Agora AccessToken2 ("007…"): its expiry (issue time + expire), or nullopt when the
/// string is not an Agora token. Throws `Error(invalid_token)` for a "007" token that is
/// damaged. Implemented by the Agora source.
std::optional<AccessToken> try_parse_agora_token(std::string_view token);

}  // namespace credkit::detail
