// credkit — catching secrets that leak into log lines, error messages and streamed output.
#pragma once

#include <cstddef>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace credkit::testing {

/// Watches every credkit log line (at any level, even ones below the log threshold) and every
/// `credkit::Error` message built while it lives, and reports any that contain a secret.
///
/// A secret is found when the text contains it (or, for secrets of 16+ characters, any
/// 16-character fragment of it at an 8-character step, so partial leaks of 24+ characters are
/// caught too), verbatim or in any encoding a peer may echo it in: JSON escapes (`\/`,
/// `\u0041`), percent-encoding, HTML character references, those stacked, and the secret's
/// base64 and hex forms. Secrets come from `register_secret` (process-wide: every capture checks them)
/// and `add_secret` (this capture only). With `detect_token_shapes` (default on) it also flags
/// anything shaped like a JWT (`eyJ….eyJ…`, two base64url segments of 10+ characters) or an
/// Agora AccessToken2 (`007` and 32+ base64 characters), which catches unregistered tokens;
/// `credkit::redact` output (6 characters and a length) never matches.
///
/// Use it in your own tests:
/// @code
///   credkit::testing::DiagnosticsCapture capture;
///   credkit::testing::DiagnosticsCapture::register_secret(client_secret, "client secret");
///   run_the_code_under_test();
///   capture.inspect_streamed("my type", my_value);  // operator<< output
///   CHECK(capture.leaks().empty());                 // or: INFO(capture.report())
/// @endcode
///
/// Reports never contain a secret: a leak is described by its label, `redact(secret)` and the
/// text with the secret replaced by `<secret:label>`.
///
/// Thread-safe; any number of captures may live at once (each sees every line).
class DiagnosticsCapture {
 public:
  /// What a capture looks for besides registered secrets.
  struct Options {
    /// Flag JWT- and Agora-token-shaped text even when nobody registered it.
    bool detect_token_shapes = true;
  };

  /// One leak: where the text came from and what it exposed.
  struct Leak {
    /// "log debug|info|warning|error", "Error", or the source given to `inspect`.
    std::string source;
    /// The label of the secret (or "JWT-shaped text" / "Agora-token-shaped text").
    std::string label;
    /// The text, with the secret replaced by `<secret:label>` (cut to 300 characters).
    std::string excerpt;
  };

  /// Starts watching log lines and Error messages.
  explicit DiagnosticsCapture(Options options);
  DiagnosticsCapture();
  /// Stops watching.
  ~DiagnosticsCapture();
  DiagnosticsCapture(const DiagnosticsCapture&) = delete;
  DiagnosticsCapture& operator=(const DiagnosticsCapture&) = delete;

  /// Registers a secret with every capture, present and future, for the rest of the process.
  /// Secrets shorter than 8 characters are ignored (they would match ordinary words).
  static void register_secret(std::string_view secret, std::string_view label = "secret");

  /// Adds a secret that only this capture looks for.
  void add_secret(std::string_view secret, std::string_view label = "secret");

  /// Checks a text the test produced itself (e.g. `operator<<` output); `source` names it.
  void inspect(std::string_view source, std::string_view text);

  /// Streams `value` with `operator<<` and checks the result.
  template <typename T>
  void inspect_streamed(std::string_view source, const T& value) {
    std::ostringstream os;
    os << value;
    inspect(source, os.str());
  }

  /// The leaks found so far.
  std::vector<Leak> leaks() const;
  /// A printable list of the leaks (empty string when there are none). Never contains a secret.
  std::string report() const;
  /// How many log lines, Error messages and inspected texts were checked.
  std::size_t texts_checked() const noexcept;
  /// Forgets the leaks found so far (secrets stay).
  void clear();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace credkit::testing
