// credkit — the result of creating an ACS user together with its first token.
#pragma once

#include <credkit/core/access_token.hpp>

#include <string>

namespace credkit::acs {

/// A new ACS identity and a user access token issued for it.
struct UserAndToken {
  /// The communication user id, e.g. `8:acs:<resource>_<guid>`.
  std::string user_id;
  /// The token and its expiry (`expiresOn` from the service).
  AccessToken token;
};

}  // namespace credkit::acs
