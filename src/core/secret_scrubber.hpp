// credkit detail — the one scrub every diagnostic goes through.
//
// Trust boundary: text from outside (user callbacks' exceptions, response bodies, Redis
// replies, anything a peer echoes) may carry a secret. credkit remembers every secret it
// handles (tokens it admits, keys, passwords, connection strings, Authorization values) and
// log() and the Error constructor pass every line and message through scrub(), which hides
//   - any known secret, in any encoding text_decoding.hpp undoes (JSON, URL, HTML escapes,
//     stacked) and in its base64 and hex forms;
//   - secret-shaped text nobody registered: JWTs, Agora "006"/"007" tokens, key-like runs
//     (32+ base64 characters mixing cases and digits, 32+ hex digits), the value after an
//     Authorization scheme (`Bearer x`), after a sensitive key (`"access_token": "x"`,
//     `password=x`), and the arguments a Redis error echoes;
//   - control bytes (replaced by spaces, so a peer cannot forge log lines).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace credkit::detail {

/// Remembers a secret so every later diagnostic hides it (and its encoded forms). Only
/// fingerprints are kept; the secret itself waits (copied, in a bounded queue) only until the
/// next diagnostic fingerprints it, and is then wiped. The set is bounded (the oldest are
/// forgotten first: see secret_scrubber.cpp). Secrets shorter than 6 characters are not
/// matched literally (they would hide ordinary words); the context rules still catch them.
void remember_secret(std::string_view secret);

/// What scrub() hides beyond the remembered secrets.
struct ScrubOptions {
  /// Secrets known only for this text (e.g. the headers of the request whose answer is shown).
  std::vector<std::string_view> extra_secrets;
  /// Text written by a peer (a response body): every run of 24+ token characters is hidden,
  /// since an opaque token there has no recognisable shape.
  bool untrusted = false;
};

/// `text` with every secret hidden (replaced by "[redacted]") and control bytes replaced by spaces.
std::string scrub(std::string_view text, const ScrubOptions& options);
std::string scrub(std::string_view text);

}  // namespace credkit::detail
