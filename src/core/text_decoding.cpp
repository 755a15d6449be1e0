#include "core/text_decoding.hpp"

#include <algorithm>
#include <optional>

namespace credkit::detail {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads `digits` hex digits at s[i]; nullopt when any is missing.
std::optional<unsigned> hex_at(std::string_view s, std::size_t i, std::size_t digits) {
  if (i + digits > s.size()) return std::nullopt;
  unsigned v = 0;
  for (std::size_t k = 0; k < digits; ++k) {
    const int h = hex_value(s[i + k]);
    if (h < 0) return std::nullopt;
    v = v * 16 + static_cast<unsigned>(h);
  }
  return v;
}

// Appends a code point as UTF-8 (a lone surrogate or out-of-range value becomes '?').
void append_utf8(std::string& out, unsigned cp) {
  if (cp >= 0xD800 && cp <= 0xDFFF) cp = '?';
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp <= 0x10FFFF) {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += '?';
  }
}

// The escape schemes, decoded one per layer (and all at once) so that text mixing a raw
// byte of one scheme with escapes of another ("&#x2b;}\\7", a backslash in an HTML page)
// still yields a layer holding the secret.
enum Scheme : unsigned { backslash = 1, percent = 2, html = 4, all = 7 };

// One escape starting at s[i]: the decoded bytes and how many input bytes it used (0: none).
std::size_t decode_escape_at(std::string_view s, std::size_t i, std::string& decoded, unsigned schemes) {
  const char c = s[i];
  if (c == '\\' && i + 1 < s.size() && (schemes & backslash)) {
    const char n = s[i + 1];
    if (n == 'u') {
      if (auto cp = hex_at(s, i + 2, 4)) {
        append_utf8(decoded, *cp);
        return 6;
      }
      return 0;
    }
    if (n == 'x') {
      if (auto b = hex_at(s, i + 2, 2)) {
        decoded += static_cast<char>(*b);
        return 4;
      }
      return 0;
    }
    switch (n) {
      case 'n': decoded += '\n'; return 2;
      case 'r': decoded += '\r'; return 2;
      case 't': decoded += '\t'; return 2;
      case 'b': decoded += '\b'; return 2;
      case 'f': decoded += '\f'; return 2;
      case '0': decoded += '\0'; return 2;
      default:
        if (static_cast<unsigned char>(n) >= 0x20 && static_cast<unsigned char>(n) < 0x7f) {
          decoded += n;  // "\/", "\\", "\"", "\'" and any other escaped printable byte
          return 2;
        }
        return 0;
    }
  }
  if (c == '%' && (schemes & percent)) {
    if (auto b = hex_at(s, i + 1, 2)) {
      decoded += static_cast<char>(*b);
      return 3;
    }
    return 0;
  }
  if (c == '&' && (schemes & html)) {
    const auto semi = s.find(';', i + 1);
    if (semi == std::string_view::npos || semi - i > 12) return 0;
    const auto name = s.substr(i + 1, semi - i - 1);
    if (name.size() >= 2 && name[0] == '#') {
      const bool hex = name[1] == 'x' || name[1] == 'X';
      const auto digits = name.substr(hex ? 2 : 1);
      if (digits.empty() || digits.size() > 7) return 0;
      unsigned cp = 0;
      for (char d : digits) {
        const int v = hex ? hex_value(d) : (d >= '0' && d <= '9' ? d - '0' : -1);
        if (v < 0) return 0;
        cp = cp * (hex ? 16 : 10) + static_cast<unsigned>(v);
      }
      append_utf8(decoded, cp);
      return semi - i + 1;
    }
    static constexpr std::pair<std::string_view, char> named[] = {
        {"quot", '"'}, {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"apos", '\''}, {"sol", '/'}, {"equals", '='},
        {"plus", '+'}, {"period", '.'}, {"lowbar", '_'}, {"tilde", '~'}, {"hyphen", '-'}, {"dash", '-'}};
    for (const auto& [n, ch] : named) {
      if (name == n) {
        decoded += ch;
        return semi - i + 1;
      }
    }
  }
  return 0;
}

// Decodes one level of escapes of `in`; false when nothing changed.
bool decode_once(const DecodedText& in, DecodedText& out, unsigned schemes) {
  const std::string_view s = in.text;
  out.text.clear();
  out.begin.clear();
  out.end.clear();
  out.text.reserve(s.size());
  bool changed = false;
  std::string decoded;
  for (std::size_t i = 0; i < s.size();) {
    decoded.clear();
    const std::size_t used = decode_escape_at(s, i, decoded, schemes);
    if (used == 0) {
      out.text += s[i];
      out.begin.push_back(in.begin[i]);
      out.end.push_back(in.end[i]);
      ++i;
      continue;
    }
    changed = true;
    const auto b = in.begin[i], e = in.end[i + used - 1];
    for (char d : decoded) {
      out.text += d;
      out.begin.push_back(b);
      out.end.push_back(e);
    }
    i += used;
  }
  return changed;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_unpadded(std::string_view bytes, bool url) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char b : bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kB64[(acc >> bits) & 0x3F];
    }
  }
  if (bits > 0) out += kB64[(acc << (6 - bits)) & 0x3F];
  if (url) std::replace(out.begin(), out.end(), '+', '-'), std::replace(out.begin(), out.end(), '/', '_');
  return out;
}

}  // namespace

std::vector<DecodedText> decoded_layers(std::string_view text, int max_layers, std::size_t max_bytes) {
  std::vector<DecodedText> layers;
  layers.reserve(2);
  DecodedText first;
  first.text.assign(text);
  const auto n = static_cast<std::uint32_t>(std::min(text.size(), max_bytes));
  first.begin.resize(text.size());
  first.end.resize(text.size());
  for (std::uint32_t i = 0; i < text.size(); ++i) first.begin[i] = i, first.end[i] = i + 1;
  layers.push_back(std::move(first));
  if (n < text.size()) return layers;  // too long to decode: only the raw text is searched
  // Breadth first: each layer decoded by each scheme, up to `max_layers - 1` levels deep;
  // only layers that changed something, each distinct text once, at most kMaxLayers in all.
  constexpr std::size_t kMaxLayers = 32;
  std::size_t level_begin = 0;
  for (int depth = 1; depth < max_layers; ++depth) {
    const std::size_t level_end = layers.size();
    for (std::size_t l = level_begin; l < level_end; ++l) {
      for (unsigned scheme : {backslash, percent, html, all}) {
        if (layers.size() >= kMaxLayers) return layers;
        DecodedText next;
        if (!decode_once(layers[l], next, scheme)) continue;
        const bool seen = std::any_of(layers.begin(), layers.end(), [&](const DecodedText& d) { return d.text == next.text; });
        if (!seen) layers.push_back(std::move(next));
      }
    }
    if (layers.size() == level_end) break;
    level_begin = level_end;
  }
  return layers;
}

std::vector<std::string> encoded_forms(std::string_view secret) {
  std::vector<std::string> forms;
  const std::size_t n = secret.size();
  for (bool url : {false, true}) {
    for (std::size_t k = 0; k < 3; ++k) {
      // With k bytes before the secret, chars [ceil(4k/3), floor((8(k+n)-6)/6)] depend on it alone.
      std::string padded(k, '\0');
      padded.append(secret);
      const auto all = base64_unpadded(padded, url);
      const std::size_t first = (4 * k + 2) / 3;
      if (8 * (k + n) < 6) continue;
      const std::size_t last = (8 * (k + n) - 6) / 6;
      if (last < first) continue;
      forms.push_back(all.substr(first, last - first + 1));
    }
  }
  static constexpr char lower[] = "0123456789abcdef";
  static constexpr char upper[] = "0123456789ABCDEF";
  for (const char* digits : {lower, upper}) {
    std::string hex;
    hex.reserve(2 * n);
    for (unsigned char b : secret) hex += digits[b >> 4], hex += digits[b & 15];
    forms.push_back(std::move(hex));
  }
  return forms;
}

}  // namespace credkit::detail
