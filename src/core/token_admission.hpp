// credkit detail — the gate every token passes before credkit keeps, hands out or sends it.
//
// Whatever produced a token (a fetcher, update_token, an initial token, a source parsing a
// service's answer, a cache reading a record), it enters through admit_token_text: the one
// token-text rule (check_token_text: RFC 6750 b64token, length bounds), and remembering the
// token as a secret so no later diagnostic can show it (secret_scrubber.hpp).
#pragma once

#include "core/secret_scrubber.hpp"

#include <credkit/core/access_token.hpp>
#include <credkit/core/error.hpp>

#include <string>
#include <string_view>

namespace credkit::detail {

/// Empty when `token` may be used; else an `errc::invalid_token` Error naming `origin` and the
/// rule it broke (never the token). Remembers admitted tokens as secrets.
inline std::exception_ptr admission_error(std::string_view token, std::string_view origin) {
  std::string why;
  if (check_token_text(token, &why)) {
    return std::make_exception_ptr(Error(errc::invalid_token, std::string(origin) + " holds an invalid token: " + why));
  }
  remember_secret(token);
  return nullptr;
}

/// As admission_error, throwing the error.
inline void admit_token_text(std::string_view token, std::string_view origin) {
  if (auto e = admission_error(token, origin)) std::rethrow_exception(e);
}

}  // namespace credkit::detail
