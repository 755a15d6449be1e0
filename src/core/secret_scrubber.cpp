#include "core/secret_scrubber.hpp"

#include "core/crypto.hpp"
#include "core/fingerprint_table.hpp"
#include "core/text_decoding.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <deque>
#include <memory>
#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

namespace credkit::detail {
namespace {

using Hash = std::uint64_t;
using Span = std::pair<std::size_t, std::size_t>;  // [begin, end) in the original text

constexpr std::size_t kWindow = 16;   // long secrets are matched by 16-byte windows...
constexpr std::size_t kStep = 8;      // ...taken every 8 bytes: any 24-byte piece contains one
constexpr std::size_t kMinSecret = 6;
static_assert(kWindow == FingerprintTable::kClasses, "one length class per secret length below the window");
// Bounded: a fleet rotating many tokens forgets the oldest. Each secret costs ~its length/8
// fingerprints (x ~12 with its encoded forms, for secrets up to kMaxEncoded bytes).
constexpr std::size_t kMaxSecrets = 4096;
constexpr std::size_t kMaxEncoded = 512;
constexpr Hash kBase = 1099511628211ULL;
const std::string_view kRedacted = "[redacted]";

Hash hash_of(std::string_view s) {
  Hash h = 0;
  for (unsigned char c : s) h = h * kBase + c;
  return h;
}

Hash power(std::size_t n) {
  Hash p = 1;
  for (std::size_t i = 0; i < n; ++i) p *= kBase;
  return p;
}

// Calls f(position) for every window of `len` bytes of `text` whose hash is in `set`.
template <class Set, class F>
void scan(std::string_view text, std::size_t len, const Set& set, F&& f) {
  if (text.size() < len || set.empty()) return;
  const Hash top = power(len - 1);
  Hash h = hash_of(text.substr(0, len));
  for (std::size_t i = 0;; ++i) {
    if (set.count(h)) f(i);
    if (i + len >= text.size()) break;
    h = (h - top * static_cast<unsigned char>(text[i])) * kBase + static_cast<unsigned char>(text[i + len]);
  }
}

class Registry {
 public:
  // Remembering is cheap and fingerprinting is deferred to the next diagnostic: creating a
  // credential (which remembers its token) must not pay ~100 random table writes per token,
  // and most secrets of a large fleet are never near a diagnostic. The secret waits in a
  // bounded queue (the newest kMaxSecrets; older ones would be forgotten anyway) and is wiped
  // when it is fingerprinted or dropped.
  void add(std::string_view secret) {
    if (secret.size() < kMinSecret) return;
    std::lock_guard lock(pending_mutex_);
    pending_.emplace_back(secret);
    while (pending_.size() > kMaxSecrets) {
      wipe(pending_.front());
      pending_.pop_front();
    }
    has_pending_.store(true, std::memory_order_release);
  }

  // Fingerprints what add() queued; every scrub calls it first.
  void settle() {
    if (!has_pending_.load(std::memory_order_acquire)) return;
    std::deque<std::string> batch;
    {
      std::lock_guard lock(pending_mutex_);
      batch.swap(pending_);
      has_pending_.store(false, std::memory_order_release);
    }
    for (auto& secret : batch) {
      fingerprint(secret);
      wipe(secret);
    }
  }

 private:
  void fingerprint(std::string_view secret) {
    const Hash id = hash_of(secret) ^ secret.size();
    std::vector<Print> prints;
    auto add_form = [&](std::string_view form) {
      if (form.size() < kMinSecret) return;
      if (form.size() < kWindow) {
        prints.push_back(Print{hash_of(form), static_cast<std::uint32_t>(form.size())});
        return;
      }
      for (std::size_t i = 0; i + kWindow <= form.size(); i += kStep) prints.push_back(Print{hash_of(form.substr(i, kWindow)), 0});
      prints.push_back(Print{hash_of(form.substr(form.size() - kWindow)), 0});
    };
    const std::size_t windows = secret.size() < kWindow ? 1 : (secret.size() - kWindow) / kStep + 2;
    if (secret.size() <= kMaxEncoded) {
      const auto forms = encoded_forms(secret);
      prints.reserve(windows * (1 + forms.size()) * 2);  // forms may be longer than the secret
      add_form(secret);
      for (const auto& form : forms) add_form(form);
    } else {
      prints.reserve(windows);
      add_form(secret);
    }
    Entry entry{id, std::make_unique<Hash[]>(prints.size()), std::make_unique<std::uint8_t[]>(prints.size()),
                prints.size()};
    for (std::size_t i = 0; i < prints.size(); ++i) {
      entry.hashes[i] = prints[i].hash;
      entry.classes[i] = static_cast<std::uint8_t>(prints[i].cls);
    }
    std::unique_lock lock(mutex_);
    if (!ids_.insert(id).second) return;
    for (const auto& p : prints) table_.prefetch(p.cls, p.hash);  // overlap the cache misses
    for (const auto& p : prints) table_.add(p.cls, p.hash);
    order_.push_back(std::move(entry));
    while (order_.size() > kMaxSecrets) {
      const Entry& oldest = order_.front();
      for (std::size_t i = 0; i < oldest.count; ++i) table_.prefetch(oldest.classes[i], oldest.hashes[i]);
      for (std::size_t i = 0; i < oldest.count; ++i) table_.remove(oldest.classes[i], oldest.hashes[i]);
      ids_.erase(oldest.id);
      order_.pop_front();
    }
  }

 public:
  // Adds the spans of remembered secrets (and of `extra`) in `layer` to `out`.
  void find(const DecodedText& layer, const std::vector<std::unordered_map<Hash, unsigned>>& extra,
            std::vector<Span>& out) const {
    auto emit = [&](std::size_t i, std::size_t len) { out.emplace_back(layer.begin[i], layer.end[i + len - 1]); };
    std::shared_lock lock(mutex_);
    for (std::size_t cls = 0; cls < kWindow; ++cls) {
      if (cls != 0 && cls < kMinSecret) continue;
      const std::size_t len = cls == 0 ? kWindow : cls;
      scan(layer.text, len, ClassView{table_, cls}, [&](std::size_t i) { emit(i, len); });
      scan(layer.text, len, extra[cls], [&](std::size_t i) { emit(i, len); });
    }
  }

  static void add_extra(std::string_view secret, std::vector<std::unordered_map<Hash, unsigned>>& extra) {
    if (secret.size() < kMinSecret) return;
    if (secret.size() < kWindow) {
      ++extra[secret.size()][hash_of(secret)];
      return;
    }
    for (std::size_t i = 0; i + kWindow <= secret.size(); i += kStep) ++extra[0][hash_of(secret.substr(i, kWindow))];
    ++extra[0][hash_of(secret.substr(secret.size() - kWindow))];
  }

 private:
  // One fingerprint: cls 0 for a window of a long secret, else the whole secret's length.
  struct Print {
    Hash hash;
    std::uint32_t cls;
  };
  struct Entry {
    Hash id;
    // Kept as two exact-size arrays (9 B a fingerprint, not 16): thousands of secrets stay remembered.
    std::unique_ptr<Hash[]> hashes;
    std::unique_ptr<std::uint8_t[]> classes;
    std::size_t count;
  };
  // One length class of the table, as scan() asks a set.
  struct ClassView {
    const FingerprintTable& table;
    std::size_t cls;
    bool empty() const noexcept { return table.empty(cls); }
    std::size_t count(Hash h) const noexcept { return table.contains(cls, h) ? 1 : 0; }
  };

  std::mutex pending_mutex_;
  std::deque<std::string> pending_;  // remembered, not yet fingerprinted (newest last)
  std::atomic<bool> has_pending_{false};
  mutable std::shared_mutex mutex_;
  FingerprintTable table_;  // class 0: windows; class n: whole secrets of length n
  std::unordered_set<Hash> ids_;
  std::deque<Entry> order_;
};

Registry& registry() {
  static Registry* r = new Registry;  // leaked: diagnostics may come from static destructors
  return *r;
}

bool is_b64url(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }
bool is_b64(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '='; }
bool is_keyish(char c) { return is_b64url(c) || c == '+' || c == '/' || c == '='; }
bool is_secretish(char c) {  // what a redaction widens over in the original text
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' ||
         c == '/' || c == '=' || c == '%' || c == '\\';
}
bool is_token_char(char c) { return is_secretish(c) && c != '\\'; }
bool is_space(char c) { return c == ' ' || c == '\t'; }

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool ends_with_ci(std::string_view word, std::string_view suffix) {
  if (word.size() < suffix.size()) return false;
  for (std::size_t i = 0; i < suffix.size(); ++i) {
    if (lower(word[word.size() - suffix.size() + i]) != suffix[i]) return false;
  }
  return true;
}

bool equals_ci(std::string_view a, std::string_view b) { return a.size() == b.size() && ends_with_ci(a, b); }

// Shapes of secrets nobody registered, found in one (decoded) layer. Spans are layer positions.
void find_shapes(std::string_view t, bool untrusted, std::vector<Span>& out) {
  const std::size_t n = t.size();
  // JWT / JWE: "eyJ" + base64url, '.', base64url (and any further segments).
  for (auto p = t.find("eyJ"); p != std::string_view::npos; p = t.find("eyJ", p + 1)) {
    std::size_t i = p;
    while (i < n && is_b64url(t[i])) ++i;
    if (i - p < 10 || i + 1 >= n || t[i] != '.') continue;
    std::size_t j = i + 1;
    while (j < n && (is_b64url(t[j]) || t[j] == '.')) ++j;
    if (j - i - 1 >= 4) out.emplace_back(p, j);
  }
  // Agora AccessToken ("006"/"007" + base64).
  for (auto p = t.find("00"); p != std::string_view::npos; p = t.find("00", p + 1)) {
    if (p + 2 >= n || (t[p + 2] != '6' && t[p + 2] != '7')) continue;
    std::size_t i = p + 3;
    while (i < n && is_b64(t[i])) ++i;
    if (i - p - 3 >= 32) out.emplace_back(p, i);
  }
  // Key-like runs: 32+ base64 characters mixing upper, lower and digits (or padded), or 32+ hex digits;
  // in a peer's text (untrusted), any 24+ run of token characters.
  for (std::size_t i = 0; i < n;) {
    if (!is_keyish(t[i]) && !(untrusted && is_token_char(t[i]))) {
      ++i;
      continue;
    }
    std::size_t j = i, hex_streak = 0, longest_hex = 0, case_changes = 0;
    int last_case = 0;  // 1 upper, -1 lower: random base64 changes case every few characters
    bool up = false, lo = false, dig = false, padded = false;  // '=': base64 padding, encoded bytes
    while (j < n && (is_keyish(t[j]) || (untrusted && is_token_char(t[j])))) {
      const auto c = static_cast<unsigned char>(t[j]);
      up |= std::isupper(c) != 0, lo |= std::islower(c) != 0, dig |= std::isdigit(c) != 0, padded |= c == '=';
      hex_streak = std::isxdigit(c) ? hex_streak + 1 : 0;  // a hex key may run into a word
      if (const int cs = std::isupper(c) ? 1 : std::islower(c) ? -1 : 0; cs != 0) {
        case_changes += last_case != 0 && cs != last_case;
        last_case = cs;
      }
      longest_hex = std::max(longest_hex, hex_streak);
      ++j;
    }
    const std::size_t len = j - i;
    // Mixed case alone is not enough: a path or identifier ("/tmp/run-aB3xYz/cache") changes
    // case rarely, random base64 about every third character.
    const bool random_case = up && lo && case_changes * 8 >= len;
    if ((len >= 32 && random_case && (dig || padded)) || longest_hex >= 32 || (untrusted && len >= 24)) {
      out.emplace_back(i, j);
    }
    i = j;
  }
  // Authorization schemes: the credentials after the scheme name.
  static constexpr std::string_view schemes[] = {"bearer", "basic", "sharedaccesssignature", "sharedkey", "digest",
                                                 "negotiate", "token", "hmac-sha256"};
  for (std::size_t i = 0; i < n;) {
    if (!std::isalpha(static_cast<unsigned char>(t[i])) || (i > 0 && (is_b64url(t[i - 1])))) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < n && (is_b64url(t[j]))) ++j;
    const auto word = t.substr(i, j - i);
    bool scheme = false;
    for (auto s : schemes) scheme |= equals_ci(word, s);
    if (scheme && j < n && is_space(t[j])) {
      std::size_t v = j;
      while (v < n && is_space(t[v])) ++v;
      std::size_t e = v;
      while (e < n && !is_space(t[e]) && t[e] != '"' && t[e] != '\'' && t[e] != ',' && t[e] != '\r' && t[e] != '\n') ++e;
      // "token" is also an ordinary word: only a long, token-like value after it counts.
      const bool is_token_word = equals_ci(word, "token");
      if (e - v >= (is_token_word ? 16 : 4)) out.emplace_back(v, e);
    }
    i = j;
  }
  // Sensitive keys: `key=value`, `"key": "value"`, `key: value` (not after "...token:", prose).
  static constexpr std::string_view keys[] = {"token", "secret", "password", "passwd", "pwd", "key", "signature", "sig",
                                              "authorization", "credential", "credentials", "assertion", "cookie",
                                              "passphrase", "auth"};
  for (std::size_t i = 0; i < n;) {
    if (!is_b64url(t[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < n && is_b64url(t[j])) ++j;
    const auto word = t.substr(i, j - i);
    bool sensitive = false;
    for (auto k : keys) sensitive |= ends_with_ci(word, k);
    if (sensitive) {
      std::size_t k = j;
      const bool quoted_key = (i > 0 && (t[i - 1] == '"' || t[i - 1] == '\'')) && k < n && (t[k] == '"' || t[k] == '\'');
      if (quoted_key) ++k;
      while (k < n && is_space(t[k])) ++k;
      if (k < n && (t[k] == '=' || t[k] == ':')) {
        const bool colon = t[k] == ':';
        ++k;
        while (k < n && is_space(t[k])) ++k;
        const bool prose = colon && !quoted_key && (ends_with_ci(word, "token") || k == n || t[k] == '{' || t[k] == '[');
        if (!prose) {
          std::size_t v = k, e = k;
          if (v < n && (t[v] == '"' || t[v] == '\'')) {
            const char q = t[v];
            e = ++v;
            while (e < n && t[e] != q) e += (t[e] == '\\' && e + 1 < n) ? 2 : 1;
            e = std::min(e, n);
          } else {
            while (e < n && !is_space(t[e]) && t[e] != ';' && t[e] != '&' && t[e] != ',' && t[e] != '}' &&
                   t[e] != ']' && t[e] != '"' && t[e] != '\'' && t[e] != '\r' && t[e] != '\n')
              ++e;
          }
          if (e > v) out.emplace_back(v, e);
        }
      }
    }
    i = j;
  }
  // A Redis error echoing the command's arguments ("... with args beginning with: 'pw'").
  for (auto p = t.find("args beginning with"); p != std::string_view::npos; p = t.find("args beginning with", p + 1)) {
    std::size_t e = t.find_first_of("\r\n", p);
    if (e == std::string_view::npos) e = n;
    const std::size_t colon = t.find(':', p);
    if (colon != std::string_view::npos && colon < e) out.emplace_back(colon + 1, e);
  }
}

}  // namespace

void remember_secret(std::string_view secret) { registry().add(secret); }

std::string scrub(std::string_view text) { return scrub(text, ScrubOptions{}); }

std::string scrub(std::string_view text, const ScrubOptions& options) {
  std::vector<std::unordered_map<Hash, unsigned>> extra(kWindow);
  for (auto s : options.extra_secrets) {
    Registry::add_extra(s, extra);
    if (s.size() <= kMaxEncoded) {
      for (const auto& form : encoded_forms(s)) Registry::add_extra(form, extra);
    }
  }
  std::vector<Span> spans;
  registry().settle();
  for (const auto& layer : decoded_layers(text)) {
    registry().find(layer, extra, spans);
    std::vector<Span> shapes;
    find_shapes(layer.text, options.untrusted, shapes);
    for (auto [b, e] : shapes) {
      if (e > b) spans.emplace_back(layer.begin[b], layer.end[e - 1]);
    }
  }
  // Widen each finding to the run of secret-like characters around it (not back across '=',
  // which ends a key name: "accesskey=" stays readable), then merge.
  for (auto& [b, e] : spans) {
    while (b > 0 && is_secretish(text[b - 1]) && text[b - 1] != '=') --b;
    while (e < text.size() && is_secretish(text[e])) ++e;
  }
  std::sort(spans.begin(), spans.end());
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  for (std::size_t s = 0; s <= spans.size(); ++s) {
    const std::size_t stop = s < spans.size() ? spans[s].first : text.size();
    for (; i < stop; ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      out += (c < 0x20 || c == 0x7f) ? ' ' : static_cast<char>(c);
    }
    if (s == spans.size()) break;
    std::size_t end = spans[s].second;
    while (s + 1 < spans.size() && spans[s + 1].first <= end) end = std::max(end, spans[++s].second);
    if (end > i) {
      out += kRedacted;
      i = end;
    }
  }
  return out;
}

}  // namespace credkit::detail
