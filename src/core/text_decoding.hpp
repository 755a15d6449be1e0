// credkit detail — undoing the encodings a secret can hide behind in diagnostic text.
//
// A secret echoed by a peer rarely comes back verbatim: JSON writers escape '/' as "\/" or
// every byte as "\u00XX", URLs percent-encode, HTML pages use character references, and
// layers stack ("%5Cu0041"). Matching a known secret against the *decoded* text, with each
// decoded byte mapped back to the span of original text it came from, catches every such
// form with one search. Used by the library's scrubber (secret_scrubber.hpp) and by the
// test-side testing::DiagnosticsCapture, so both see the same encodings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace credkit::detail {

/// Text after undoing escapes, with each byte's origin in the original text.
struct DecodedText {
  std::string text;
  /// For byte `i` of `text`: the original bytes `[begin[i], end[i])` it was decoded from.
  std::vector<std::uint32_t> begin, end;
};

/// Layer 0 is `text` itself; further layers undo escapes: backslash escapes (`\/`, `\\`,
/// `\"`, `\uXXXX`, `\xHH`), percent-encoding (`%HH`, either case), HTML character references
/// (`&#47;`, `&#x2F;`, `&quot;` …), each scheme alone and all at once, applied again to the
/// results up to `max_layers - 1` levels deep (stacked encodings such as "%5Cu0041"). Only
/// layers that differ are kept, at most 32. Input beyond `max_bytes` is not decoded.
std::vector<DecodedText> decoded_layers(std::string_view text, int max_layers = 4, std::size_t max_bytes = 64 * 1024);

/// Other spellings a secret takes when a peer re-encodes its bytes rather than escaping its
/// characters: base64 (standard and URL alphabets, at each of the three byte alignments it
/// can have inside a longer encoded string, unpadded) and hex in both cases. Each form is
/// only the part determined by the secret's bytes alone, so it is found wherever it sits.
std::vector<std::string> encoded_forms(std::string_view secret);

}  // namespace credkit::detail
