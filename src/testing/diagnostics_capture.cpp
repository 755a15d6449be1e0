#include <credkit/testing/diagnostics_capture.hpp>

#include <credkit/core/log.hpp>

#include "core/text_decoding.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <unordered_map>

namespace credkit::detail {
// Defined in src/core/log.cpp: called with every log line (kind 0-3 = LogLevel) and every
// Error message (kind 4) when set. Declared here rather than in a header so the core has no
// dependency on the testing helpers.
extern std::atomic<void (*)(int kind, std::string_view text)> diagnostics_observer;
}  // namespace credkit::detail

namespace credkit::testing {
namespace {

constexpr std::size_t window = 16;  // fragment length of long secrets
constexpr std::size_t step = 8;     // fragments start every `step` characters
constexpr std::size_t min_secret = 8;

bool is_b64url(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}
bool is_b64(char c) { return is_b64url(c) || c == '+' || c == '/' || c == '='; }
bool is_token_char(char c) { return is_b64(c) || c == '.' || c == '~' || c == '%'; }

/// Secrets indexed by 16-character fragment (long ones) or whole (short ones).
struct SecretSet {
  std::unordered_map<std::string, std::string> fragments;  // fragment -> label
  std::vector<std::pair<std::string, std::string>> short_secrets;

  // The secret and the forms a peer may re-encode it into (base64, hex).
  void add(std::string_view secret, std::string_view label) {
    add_one(secret, label);
    if (secret.size() <= 512) {
      for (const auto& form : detail::encoded_forms(secret)) add_one(form, label);
    }
  }

  void add_one(std::string_view secret, std::string_view label) {
    if (secret.size() < min_secret) return;
    if (secret.size() < window) {
      short_secrets.emplace_back(secret, label);
      return;
    }
    for (std::size_t i = 0; i + window <= secret.size(); i += step) fragments.emplace(secret.substr(i, window), label);
    fragments.emplace(secret.substr(secret.size() - window), label);
  }

  /// Finds the first secret in `text`: its position, length and label.
  bool find(std::string_view text, std::size_t& pos, std::size_t& len, std::string& label) const {
    if (!fragments.empty() && text.size() >= window) {
      std::string probe(window, '\0');
      for (std::size_t i = 0; i + window <= text.size(); ++i) {
        probe.assign(text.substr(i, window));
        if (auto it = fragments.find(probe); it != fragments.end()) {
          pos = i, len = window, label = it->second;
          return true;
        }
      }
    }
    for (auto& [s, l] : short_secrets) {
      if (auto p = text.find(s); p != std::string_view::npos) {
        pos = p, len = s.size(), label = l;
        return true;
      }
    }
    return false;
  }
};

/// A JWT (`eyJ` header, '.', 10+ payload characters) or Agora 007 token in `text`.
bool find_token_shape(std::string_view text, std::size_t& pos, std::size_t& len, std::string& label) {
  for (std::size_t p = text.find("eyJ"); p != std::string_view::npos; p = text.find("eyJ", p + 1)) {
    std::size_t i = p;
    while (i < text.size() && is_b64url(text[i])) ++i;
    if (i - p < 10 || i >= text.size() || text[i] != '.') continue;
    std::size_t j = i + 1;
    while (j < text.size() && is_b64url(text[j])) ++j;
    if (j - i - 1 >= 10) {
      pos = p, len = j - p, label = "JWT-shaped text";
      return true;
    }
  }
  for (std::size_t p = text.find("007"); p != std::string_view::npos; p = text.find("007", p + 1)) {
    std::size_t i = p + 3;
    while (i < text.size() && is_b64(text[i])) ++i;
    if (i - p - 3 >= 32) {
      pos = p, len = i - p, label = "Agora-token-shaped text";
      return true;
    }
  }
  return false;
}

struct Registry {
  std::mutex mutex;
  SecretSet global;
  // Live captures: their Impl and a function that checks a text against it.
  std::vector<std::pair<void*, void (*)(void*, int, std::string_view)>> captures;
};

Registry& registry() {
  static Registry* r = new Registry;  // leaked: log lines may come from static destructors
  return *r;
}

const char* source_name(int kind) {
  switch (kind) {
    case 0: return "log debug";
    case 1: return "log info";
    case 2: return "log warning";
    case 3: return "log error";
    case 4: return "Error";
  }
  return "?";
}

}  // namespace

struct DiagnosticsCapture::Impl {
  Options options;
  SecretSet own;  // guarded by registry().mutex
  std::vector<Leak> leaks;
  std::atomic<std::size_t> checked{0};

  // Called with registry().mutex held.
  void check_locked(std::string_view source, std::string_view text) {
    checked.fetch_add(1, std::memory_order_relaxed);
    std::string masked(text);
    bool leaked = false;
    std::string first_label;
    // Mask every finding (whole run of token characters around it) until none is left. Each
    // search runs on the text and on its decoded layers (JSON, URL and HTML escapes undone),
    // so an escaped or percent-encoded secret is found as surely as a verbatim one.
    for (int guard = 0; guard < 64; ++guard) {
      std::size_t b = 0, e = 0;
      std::string label;
      bool hit = false;
      for (const auto& layer : detail::decoded_layers(masked)) {
        std::size_t pos = 0, len = 0;
        hit = registry().global.find(layer.text, pos, len, label) || own.find(layer.text, pos, len, label) ||
              (options.detect_token_shapes && find_token_shape(layer.text, pos, len, label));
        if (hit) {
          b = layer.begin[pos], e = layer.end[pos + len - 1];
          break;
        }
      }
      if (!hit) break;
      while (b > 0 && (is_token_char(masked[b - 1]) || masked[b - 1] == '\\')) --b;
      while (e < masked.size() && (is_token_char(masked[e]) || masked[e] == '\\')) ++e;
      masked.replace(b, e - b, "<secret:" + label + ">");
      if (!leaked) first_label = label;
      leaked = true;
    }
    if (!leaked) return;
    if (masked.size() > 300) masked.resize(300);
    leaks.push_back(Leak{std::string(source), first_label, std::move(masked)});
  }
};

namespace {

void observe(int kind, std::string_view text) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  for (auto& [impl, check] : r.captures) check(impl, kind, text);
}

}  // namespace

DiagnosticsCapture::DiagnosticsCapture() : DiagnosticsCapture(Options{}) {}

DiagnosticsCapture::DiagnosticsCapture(Options options) : impl_(std::make_shared<Impl>()) {
  impl_->options = options;
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  r.captures.emplace_back(impl_.get(), [](void* impl, int kind, std::string_view text) {
    static_cast<Impl*>(impl)->check_locked(source_name(kind), text);
  });
  detail::diagnostics_observer.store(&observe, std::memory_order_release);
}

DiagnosticsCapture::~DiagnosticsCapture() {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  std::erase_if(r.captures, [this](const auto& c) { return c.first == impl_.get(); });
  // The observer stays installed (an idle observer costs one lock per line); clearing it
  // here could race with a line being reported on another thread.
}

void DiagnosticsCapture::register_secret(std::string_view secret, std::string_view label) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  r.global.add(secret, label);
}

void DiagnosticsCapture::add_secret(std::string_view secret, std::string_view label) {
  std::lock_guard lock(registry().mutex);
  impl_->own.add(secret, label);
}

void DiagnosticsCapture::inspect(std::string_view source, std::string_view text) {
  std::lock_guard lock(registry().mutex);
  impl_->check_locked(source, text);
}

std::vector<DiagnosticsCapture::Leak> DiagnosticsCapture::leaks() const {
  std::lock_guard lock(registry().mutex);
  return impl_->leaks;
}

std::string DiagnosticsCapture::report() const {
  std::string out;
  for (const auto& l : leaks()) out += l.source + ": " + l.label + " in: " + l.excerpt + "\n";
  return out;
}

std::size_t DiagnosticsCapture::texts_checked() const noexcept {
  return impl_->checked.load(std::memory_order_relaxed);
}

void DiagnosticsCapture::clear() {
  std::lock_guard lock(registry().mutex);
  impl_->leaks.clear();
}

}  // namespace credkit::testing
