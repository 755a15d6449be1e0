#include <credkit/core/error.hpp>
#include <credkit/core/parse_token.hpp>
#include <credkit/sources/webpubsub_connection_string.hpp>
#include <credkit/sources/webpubsub_service_client.hpp>
#include <credkit/sources/webpubsub_token_api_client.hpp>

#include "core/strict_number.hpp"
#include "core/completion.hpp"
#include "sources/common/crypto.hpp"
#include "sources/common/text.hpp"
#include "sources/common/fetch_completion.hpp"
#include "sources/http/service_call.hpp"
#include "sources/webpubsub/webpubsub_tokens.hpp"
#include "core/secret_scrubber.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>

#include <nlohmann/json.hpp>

#include <charconv>
#include <optional>
#include <ostream>

namespace credkit::webpubsub {

std::string_view path_prefix(ClientType type) noexcept {
  switch (type) {
    case ClientType::standard: return "/client/hubs";
    case ClientType::mqtt: return "/clients/mqtt/hubs";
    case ClientType::socketio: return "/clients/socketio/hubs";
  }
  return "/client/hubs";
}

// ---- connection string ----

struct ConnectionString::Data {
  std::string endpoint;
  credkit::detail::SecretString key;
};

namespace {
[[noreturn]] void bad(const std::string& what) {
  throw_error(errc::invalid_connection_string, "invalid Web PubSub connection string: " + what);
}

std::string normalize_endpoint(const std::string& text, const char* what) {
  auto url = credkit::detail::parse_url(credkit::detail::trim(text));
  if (!url || (url->scheme != "https" && url->scheme != "http")) return {};
  if (!url->query.empty() || (url->path != "/" && !url->path.empty())) return {};
  (void)what;
  return url->scheme + "://" + url->authority();
}
}  // namespace

ConnectionString ConnectionString::parse(std::string_view text) {
  auto parts = credkit::detail::split_connection_string(text);
  if (!parts) bad("expected 'Endpoint=https://...;AccessKey=...;Version=1.0;' (a part has no '=' or an empty name)");
  std::optional<std::string> endpoint, key, version, port;
  for (auto& part : *parts) {
    // Named members, not a structured binding: clang 14 cannot capture bindings in lambdas.
    const std::string& name = part.first;
    std::string& value = part.second;
    auto take = [&](std::optional<std::string>& slot, const char* label) {
      if (slot) bad(std::string("'") + label + "' appears twice");
      slot = value;
    };
    if (credkit::detail::iequals(name, "endpoint")) take(endpoint, "Endpoint");
    else if (credkit::detail::iequals(name, "accesskey")) take(key, "AccessKey");
    else if (credkit::detail::iequals(name, "version")) take(version, "Version");
    else if (credkit::detail::iequals(name, "port")) take(port, "Port");
    credkit::detail::wipe(value);
  }
  credkit::detail::SecretString secret(key ? std::move(*key) : std::string());
  if (key) credkit::detail::wipe(*key);
  if (!endpoint) bad("missing 'Endpoint=https://<name>.webpubsub.azure.com'");
  if (!key) bad("missing 'AccessKey=<key>' (resources with local auth disabled need TokenApiClient)");
  if (secret.empty()) bad("'AccessKey' is empty");
  if (version && *version != "1.0") bad("unsupported 'Version' (only 1.0 is known)");
  auto url = credkit::detail::parse_url(credkit::detail::trim(*endpoint));
  if (!url || (url->scheme != "https" && url->scheme != "http") || !url->query.empty() ||
      (url->path != "/" && !url->path.empty())) {
    bad("'Endpoint' must be an absolute https:// URL without a path, e.g. https://<name>.webpubsub.azure.com");
  }
  if (port) {
    const auto value = credkit::detail::parse_integer(*port, 1, 65535);
    if (!value) bad("'Port' must be a number from 1 to 65535");
    url->port = static_cast<std::uint16_t>(*value);
  }
  auto data = std::make_shared<Data>();
  data->endpoint = url->scheme + "://" + url->authority();
  data->key = std::move(secret);
  credkit::detail::remember_secret(data->key.get());
  ConnectionString cs;
  cs.data_ = std::move(data);
  return cs;
}

const std::string& ConnectionString::endpoint() const noexcept { return data_->endpoint; }
const std::string& ConnectionString::access_key() const noexcept { return data_->key.get(); }

std::ostream& operator<<(std::ostream& os, const ConnectionString& cs) {
  return os << "ConnectionString{endpoint=" << cs.endpoint() << ", accesskey=<redacted>}";
}

// ---- pure helpers ----

namespace detail {

void validate_hub(const std::string& hub) {
  bool ok = !hub.empty() && hub.size() <= 128 && std::isalpha(static_cast<unsigned char>(hub[0]));
  for (char c : hub) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (!ok) {
    throw_error(errc::invalid_argument,
                "Web PubSub hub name must be 1-128 letters, digits or '_' starting with a letter");
  }
}

void validate_lifetime(std::chrono::minutes lifetime) {
  if (lifetime < std::chrono::minutes(1) || lifetime > std::chrono::hours(24 * 365)) {
    throw_error(errc::invalid_argument, "Web PubSub token lifetime must be 1 minute to 365 days, got " +
                                            std::to_string(lifetime.count()) + " minutes");
  }
}

std::string audience(const std::string& endpoint, const std::string& hub, ClientType type) {
  return endpoint + std::string(path_prefix(type)) + "/" + hub;
}

std::string client_url(const std::string& endpoint, const std::string& hub, ClientType type,
                       const std::string& token) {
  std::string ws = endpoint;
  if (ws.rfind("https://", 0) == 0) {
    ws = "wss://" + ws.substr(8);
  } else if (ws.rfind("http://", 0) == 0) {
    ws = "ws://" + ws.substr(7);
  }
  return ws + std::string(path_prefix(type)) + "/" + hub + "?access_token=" + credkit::detail::url_encode(token);
}

ClientAccess parse_generate_token_response(const std::string& body, const std::string& endpoint,
                                           const std::string& hub, ClientType type,
                                           const std::function<AccessToken(const std::string&)>& read_token) {
  const auto json = nlohmann::json::parse(body, nullptr, false);
  const auto token = json.is_object() ? json.find("token") : json.end();
  if (json.is_discarded() || !json.is_object() || token == json.end() || !token->is_string()) {
    throw_error(errc::invalid_response, "Web PubSub :generateToken response has no 'token' string");
  }
  ClientAccess access;
  try {
    access.token = read_token ? read_token(token->get<std::string>()) : parse_token(token->get<std::string>());
  } catch (const Error& e) {
    throw_error(errc::invalid_response,
                std::string("Web PubSub :generateToken returned a token that is not a valid JWT: ") + e.what());
  }
  access.url = client_url(endpoint, hub, type, access.token.token);
  return access;
}

std::string make_client_token(const std::string& endpoint, const std::string& hub, const std::string& key,
                              const ClientTokenOptions& options, std::chrono::system_clock::time_point now) {
  validate_lifetime(options.lifetime);
  const auto iat = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  nlohmann::json payload;
  payload["aud"] = audience(endpoint, hub, options.client_type);
  payload["iat"] = iat;
  payload["exp"] = iat + std::chrono::duration_cast<std::chrono::seconds>(options.lifetime).count();
  if (!options.user_id.empty()) payload["sub"] = options.user_id;
  if (!options.roles.empty()) payload["role"] = options.roles;
  if (!options.groups.empty()) payload["webpubsub.group"] = options.groups;
  return credkit::detail::hs256_jwt(payload, key);
}

credkit::detail::HttpRequest make_generate_token_request(const std::string& endpoint, const std::string& hub,
                                                         const ClientTokenOptions& options) {
  validate_lifetime(options.lifetime);
  std::string url = endpoint + "/api/hubs/" + hub + "/:generateToken?api-version=2024-01-01";
  auto add = [&url](const char* name, const std::string& value) {
    url += "&";
    url += name;
    url += "=";
    url += credkit::detail::url_encode(value);
  };
  if (!options.user_id.empty()) add("userId", options.user_id);
  for (const auto& r : options.roles) add("role", r);
  add("minutesToExpire", std::to_string(options.lifetime.count()));
  for (const auto& g : options.groups) add("group", g);
  if (options.client_type == ClientType::mqtt) add("clientType", "mqtt");  // spelled as in the service docs
  if (options.client_type == ClientType::socketio) add("clientType", "socketio");
  credkit::detail::HttpRequest req;
  req.method = "POST";
  req.url = std::move(url);
  req.headers.emplace_back("Accept", "application/json");
  return req;
}

}  // namespace detail

// ---- ServiceClient ----

ServiceClient::ServiceClient(ConnectionString connection_string, std::string hub, std::shared_ptr<Clock> clock)
    : connection_string_(std::move(connection_string)), hub_(std::move(hub)),
      clock_(clock ? std::move(clock) : Clock::system()) {
  detail::validate_hub(hub_);
}

ClientAccess ServiceClient::client_access(const ClientTokenOptions& options) const {
  const auto now = clock_->now();
  std::string token =
      detail::make_client_token(connection_string_.endpoint(), hub_, connection_string_.access_key(), options, now);
  ClientAccess access;
  access.url = detail::client_url(connection_string_.endpoint(), hub_, options.client_type, token);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch());
  access.token = AccessToken{std::move(token), std::chrono::system_clock::time_point(secs) + options.lifetime};
  return access;
}

Fetcher ServiceClient::fetcher(ClientTokenOptions options) const {
  detail::validate_lifetime(options.lifetime);
  return credkit::detail::local_token_fetcher(
      [self = *this, options = std::move(options)] { return self.client_access(options).token; });
}

// ---- TokenApiClient ----

namespace detail {

struct TokenApiClientImpl : std::enable_shared_from_this<TokenApiClientImpl> {
  TokenApiClientImpl(boost::asio::any_io_executor ex, std::string ep, std::string h,
                     std::shared_ptr<TokenCredential> cred, HttpClientOptions http_options)
      : executor(ex), endpoint(std::move(ep)), hub(std::move(h)), entra(std::move(cred)), http(ex, std::move(http_options)) {}

  // `fetch`: the credential's fetch this request serves, if any (Date reports; an opaque
  // token's fallback lifetime counts from the response's Date, in service time).
  void generate(ClientTokenOptions options, boost::asio::cancellation_slot slot, boost::asio::any_io_executor ex,
                std::function<void(std::exception_ptr, ClientAccess)> done,
                std::optional<FetchContext> fetch = std::nullopt) {
    credkit::detail::HttpRequest request;
    try {
      request = make_generate_token_request(endpoint, hub, options);
    } catch (...) {
      boost::asio::post(ex, [done, e = std::current_exception()] { done(e, ClientAccess{}); });
      return;
    }
    entra->async_get_token(boost::asio::bind_cancellation_slot(
        slot, boost::asio::bind_executor(ex, [self = shared_from_this(), request = std::move(request), slot, ex,
                                              type = options.client_type, done,
                                              fetch](std::exception_ptr error, TokenHandle bearer) mutable {
          if (error) return done(error, ClientAccess{});
          request.headers.emplace_back("Authorization", "Bearer " + bearer.token());
          credkit::detail::ServiceCall<ClientAccess> reading;
          reading.parse = [self, type, fetch](const credkit::detail::HttpResponse& response,
                                              std::chrono::system_clock::time_point received) {
            return parse_generate_token_response(response.body, self->endpoint, self->hub, type,
                                                 [&](const std::string& token) {
                                                   return credkit::detail::parse_token_received(token, received, fetch);
                                                 });
          };
          credkit::detail::call_service<ClientAccess>(self->http, std::move(request), slot, ex, std::move(fetch),
                                                      std::move(reading), std::move(done));
        })));
  }

  boost::asio::any_io_executor executor;
  std::string endpoint;
  std::string hub;
  std::shared_ptr<TokenCredential> entra;
  credkit::detail::HttpClient http;
};

}  // namespace detail

TokenApiClient::TokenApiClient(boost::asio::any_io_executor executor, std::string endpoint, std::string hub,
                               std::shared_ptr<TokenCredential> entra_credential, HttpClientOptions http) {
  auto normalized = normalize_endpoint(endpoint, "endpoint");
  if (normalized.empty()) {
    throw_error(errc::invalid_argument,
                "Web PubSub endpoint must be an absolute https:// URL without a path, e.g. "
                "https://<name>.webpubsub.azure.com");
  }
  detail::validate_hub(hub);
  if (!entra_credential) throw_error(errc::invalid_argument, "Web PubSub TokenApiClient needs an Entra credential");
  impl_ = std::make_shared<Impl>(std::move(executor), std::move(normalized), std::move(hub),
                                 std::move(entra_credential), std::move(http));
}

void TokenApiClient::initiate(std::shared_ptr<Impl> impl, ClientTokenOptions options,
                              boost::asio::any_completion_handler<void(std::exception_ptr, ClientAccess)> handler) {
  auto slot = boost::asio::get_associated_cancellation_slot(handler);
  auto ex = impl->executor;
  impl->generate(std::move(options), slot, ex,
                 credkit::detail::SharedCompleter<ClientAccess>(ex, std::move(handler)));
}

Fetcher TokenApiClient::fetcher(ClientTokenOptions options) const {
  detail::validate_lifetime(options.lifetime);
  return Fetcher::async([impl = impl_, options = std::move(options)](FetchContext context, FetchCompletion completion) {
    impl->generate(options, context.cancellation_slot(), context.executor(),
                   credkit::detail::completing_fetch<ClientAccess>(
                       std::move(completion), [](ClientAccess access) { return std::move(access.token); }),
                   context);
  });
}

}  // namespace credkit::webpubsub
