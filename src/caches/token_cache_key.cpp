#include <credkit/caches/token_cache_key.hpp>

#include <algorithm>
#include <ostream>

namespace credkit {

namespace {
void normalize(std::vector<std::string>& scopes) {
  std::sort(scopes.begin(), scopes.end());
  scopes.erase(std::unique(scopes.begin(), scopes.end()), scopes.end());
}
void append_part(std::string& out, std::string_view part) {
  out += std::to_string(part.size());
  out += ':';
  out += part;
}
}  // namespace

TokenCacheKey::TokenCacheKey(std::string user_id, std::vector<std::string> scopes)
    : user_id_(std::move(user_id)), scopes_(std::move(scopes)) {
  normalize(scopes_);
}

TokenCacheKey::TokenCacheKey(std::string user_id, std::initializer_list<std::string_view> scopes)
    : user_id_(std::move(user_id)) {
  for (auto s : scopes) scopes_.emplace_back(s);
  normalize(scopes_);
}

std::string TokenCacheKey::str() const {
  std::string out = "v1:";
  append_part(out, user_id_);
  out += ':';
  out += std::to_string(scopes_.size());
  out += ':';
  for (std::size_t i = 0; i < scopes_.size(); ++i) {
    if (i) out += ',';
    append_part(out, scopes_[i]);
  }
  return out;
}

std::ostream& operator<<(std::ostream& os, const TokenCacheKey& key) {
  os << "TokenCacheKey{user=" << key.user_id() << ", scopes=[";
  for (std::size_t i = 0; i < key.scopes().size(); ++i) os << (i ? "," : "") << key.scopes()[i];
  return os << "]}";
}

}  // namespace credkit
