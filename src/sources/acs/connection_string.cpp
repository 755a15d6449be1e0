#include <credkit/core/error.hpp>
#include <credkit/core/log.hpp>
#include <credkit/sources/acs_connection_string.hpp>
#include <credkit/sources/acs_token_scope.hpp>

#include "core/base64.hpp"
#include "sources/common/crypto.hpp"
#include "sources/common/text.hpp"
#include "core/secret_scrubber.hpp"

#include <ostream>

namespace credkit::acs {

struct ConnectionString::Data {
  std::string endpoint;
  credkit::detail::SecretString key;
};

namespace {

[[noreturn]] void bad(const std::string& what) {
  throw_error(errc::invalid_connection_string, "invalid ACS connection string: " + what);
}

std::string normalize_endpoint(std::string_view endpoint) {
  endpoint = credkit::detail::trim(endpoint);
  auto url = credkit::detail::parse_url(endpoint);
  if (!url || (url->scheme != "https" && url->scheme != "http")) {
    bad("'endpoint' must be an absolute https:// URL such as https://<resource>.communication.azure.com/");
  }
  if (!url->query.empty() || (url->path != "/" && !url->path.empty())) {
    bad("'endpoint' must not contain a path or query, only https://<host>[:port]/");
  }
  return url->scheme + "://" + url->authority();
}

credkit::detail::SecretString decode_key(std::string_view key) {
  key = credkit::detail::trim(key);
  if (key.empty()) bad("'accesskey' is empty");
  auto decoded = credkit::detail::base64_decode(key);
  if (!decoded || decoded->empty()) bad("'accesskey' is not valid base64 (copy the key from the resource's Keys page)");
  return credkit::detail::SecretString(std::move(*decoded));
}

}  // namespace

ConnectionString ConnectionString::parse(std::string_view text) {
  auto parts = credkit::detail::split_connection_string(text);
  if (!parts) bad("expected 'endpoint=https://...;accesskey=...' (a part has no '=' or an empty name)");
  const std::string* endpoint = nullptr;
  const std::string* key = nullptr;
  for (const auto& [name, value] : *parts) {
    if (credkit::detail::iequals(name, "endpoint")) {
      if (endpoint) bad("'endpoint' appears twice");
      endpoint = &value;
    } else if (credkit::detail::iequals(name, "accesskey")) {
      if (key) bad("'accesskey' appears twice");
      key = &value;
    }
  }
  if (!endpoint) bad("missing 'endpoint=https://<resource>.communication.azure.com/'");
  if (!key) bad("missing 'accesskey=<base64 key>'");
  ConnectionString cs(*endpoint, *key);
  for (auto& [name, value] : *parts) credkit::detail::wipe(value);
  return cs;
}

ConnectionString::ConnectionString(std::string_view endpoint, std::string_view access_key) {
  credkit::detail::remember_secret(access_key);  // no diagnostic may show it (secret_scrubber.hpp)
  auto data = std::make_shared<Data>();
  data->endpoint = normalize_endpoint(endpoint);
  data->key = decode_key(access_key);
  data_ = std::move(data);
}

const std::string& ConnectionString::endpoint() const noexcept { return data_->endpoint; }
const std::string& ConnectionString::decoded_key() const noexcept { return data_->key.get(); }

std::ostream& operator<<(std::ostream& os, const ConnectionString& cs) {
  return os << "ConnectionString{endpoint=" << cs.endpoint() << ", accesskey=<redacted, "
            << cs.decoded_key().size() << " bytes>}";
}

std::string_view to_string(TokenScope scope) noexcept {
  switch (scope) {
    case TokenScope::chat: return "chat";
    case TokenScope::voip: return "voip";
    case TokenScope::chat_join: return "chat.join";
    case TokenScope::chat_join_limited: return "chat.join.limited";
    case TokenScope::voip_join: return "voip.join";
  }
  return "unknown";
}

}  // namespace credkit::acs
