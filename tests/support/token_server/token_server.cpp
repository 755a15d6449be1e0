// The token server: one Beast translation unit. Its crypto is written against OpenSSL
// directly (not credkit's signer), so the tests compare two independent implementations.
#include "token_server.hpp"
#include "token_server_http.hpp"

#include <credkit/sources/agora_access_token.hpp>
#include <credkit/sources/webpubsub_connection_string.hpp>
#include <credkit/sources/webpubsub_service_client.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

namespace credkit::samples {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::system_clock;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// ---- small crypto and text helpers (independent of credkit's) ----

std::string b64(std::string_view bytes, bool url) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  if (url) {
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  return out;
}

std::optional<std::string> unb64(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  std::size_t pad = 0;
  if (text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::string hmac(std::string_view key, std::string_view msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  static const unsigned char empty = 0;
  HMAC(EVP_sha256(), key.empty() ? &empty : reinterpret_cast<const unsigned char*>(key.data()),
       static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string sha256(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

bool same(std::string_view a, std::string_view b) {
  return a.size() == b.size() && (a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0);
}

std::int64_t unix_seconds(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string iso(Clock::time_point t) {
  std::time_t tt = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// An RFC 7231 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") for the Date header. Names are
// spelled here, not by strftime, so no locale can change them.
std::string http_date(Clock::time_point t) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t tt = Clock::to_time_t(std::chrono::floor<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
                months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<Clock::time_point> parse_http_date(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  // Only dates system_clock's nanoseconds can hold (1970-2261): beyond, the conversion overflows
  // (found by fuzz_token_server_request: "Thu, 07 Jan 2427 08:00:00 GMT"). Such a date is no
  // valid request date anyway: the caller rejects it as outside the allowed skew.
  const std::time_t t = timegm(&tm);
  if (t < 0 || t > std::time_t{9'000'000'000}) return std::nullopt;
  return Clock::from_time_t(t);
}

std::string jwt(const nlohmann::json& payload, std::string_view key) {
  std::string input = b64(R"({"alg":"HS256","typ":"JWT"})", true) + "." + b64(payload.dump(), true);
  return input + "." + b64(hmac(key, input), true);
}

// Verifies an HS256 JWT and returns its payload.
std::optional<nlohmann::json> verify_jwt(std::string_view token, std::string_view key, Clock::time_point now) {
  auto d1 = token.find('.');
  auto d2 = token.rfind('.');
  if (d1 == std::string_view::npos || d1 == d2) return std::nullopt;
  if (!same(b64(hmac(key, token.substr(0, d2)), true), token.substr(d2 + 1))) return std::nullopt;
  std::string seg(token.substr(d1 + 1, d2 - d1 - 1));
  for (char& c : seg) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (seg.size() % 4) seg.push_back('=');
  auto bytes = unb64(seg);
  if (!bytes) return std::nullopt;
  auto json = nlohmann::json::parse(*bytes, nullptr, false);
  if (json.is_discarded() || !json.contains("exp") || !json["exp"].is_number()) return std::nullopt;
  if (json["exp"].get<std::int64_t>() <= unix_seconds(now)) return std::nullopt;
  return json;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Lenient percent-decoding: a malformed escape is kept as is (never throws).
std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view q) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto part = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    try {
      out.emplace_back(url_decode(part.substr(0, eq)),
                       eq == std::string_view::npos ? std::string() : url_decode(part.substr(eq + 1)));
    } catch (...) {
    }
  }
  return out;
}

// A decimal integer from a request, strictly: digits only (an optional '-'), whole text,
// within [lo, hi]. Anything else (spaces, '+', hex, overflow) is refused, never wrapped.
std::optional<long long> strict_integer(std::string_view text, long long lo, long long hi) {
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < lo || value > hi) {
    return std::nullopt;
  }
  return value;
}

std::string query_value(const std::vector<std::pair<std::string, std::string>>& q, std::string_view name) {
  for (auto& [k, v] : q) {
    if (k == name) return v;
  }
  return {};
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    auto slash = path.find('/');
    out.push_back(url_decode(path.substr(0, slash)));
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
  }
  return out;
}

}  // namespace

std::string_view to_string(FaultMode mode) noexcept {
  switch (mode) {
    case FaultMode::none: return "none";
    case FaultMode::server_error: return "5xx";
    case FaultMode::rate_limited: return "429";
    case FaultMode::slow: return "slow";
    case FaultMode::garbage: return "garbage";
    case FaultMode::expired: return "expired";
    case FaultMode::hang: return "hang";
  }
  return "none";
}

struct TokenServer::Impl : std::enable_shared_from_this<TokenServer::Impl> {
  explicit Impl(TokenServerOptions o) : options(std::move(o)), acceptor(ioc) {
    auto key = unb64(options.acs_access_key);
    if (!key) throw std::invalid_argument("TokenServerOptions::acs_access_key is not base64");
    acs_key = *key;
    fault = options.initial_fault;
  }
  ~Impl() { OPENSSL_cleanse(acs_key.data(), acs_key.size()); }

  Clock::time_point now() const { return options.now ? options.now() : Clock::now(); }

  // Every response carries the server's clock in a Date header (RFC 7231 §7.1.1.2), as every
  // real token service does: clients learn their clock's offset from it.
  void stamp(Response& res) const { res.set(http::field::date, http_date(now())); }

  void count(const std::string& name) {
    std::lock_guard lock(mutex);
    ++counters[name];
  }

  // Takes one request's worth of the current fault.
  Fault take_fault() {
    std::lock_guard lock(mutex);
    if (fault.mode == FaultMode::none || fault.count == 0) return Fault{FaultMode::none, 0};
    Fault f = fault;
    if (fault.count > 0 && --fault.count == 0) fault.mode = FaultMode::none;
    return f;
  }

  // ---- responses ----

  static Response json_response(const Request& req, http::status status, const nlohmann::json& body) {
    Response res{status, req.version()};
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = body.dump();
    res.prepare_payload();
    return res;
  }

  static Response empty_response(const Request& req, http::status status) {
    Response res{status, req.version()};
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
  }

  static Response acs_error(const Request& req, http::status status, const std::string& code, const std::string& msg) {
    return json_response(req, status, {{"error", {{"code", code}, {"message", msg}}}});
  }

  nlohmann::json app_token(const std::string& subject, bool expired) {
    const auto issued = now();
    const auto exp = expired ? issued - std::chrono::hours(1) : issued + options.token_lifetime;
    nlohmann::json payload{{"sub", subject}, {"iat", unix_seconds(issued)}, {"exp", unix_seconds(exp)},
                           {"iss", "credkit-token-server"}, {"scp", 1792}};
    return {{"token", jwt(payload, options.jwt_secret)}, {"expiresOn", iso(Clock::from_time_t(unix_seconds(exp)))}};
  }

  // ---- ACS identity ----

  std::optional<std::string> check_acs_signature(const Request& req) {
    auto date_it = req.find("x-ms-date");
    auto hash_it = req.find("x-ms-content-sha256");
    auto auth_it = req.find(http::field::authorization);
    auto host_it = req.find(http::field::host);
    if (date_it == req.end() || hash_it == req.end() || auth_it == req.end() || host_it == req.end()) {
      return "missing x-ms-date, x-ms-content-sha256, Host or Authorization";
    }
    const std::string date(date_it->value());
    auto when = parse_http_date(date);
    if (!when) return "x-ms-date is not an RFC 1123 date";
    const auto skew = now() - *when;
    if (skew > options.acs_max_clock_skew || -skew > options.acs_max_clock_skew) {
      return "x-ms-date is more than " + std::to_string(options.acs_max_clock_skew.count()) + " s from server time";
    }
    const std::string hash = b64(sha256(req.body()), false);
    if (!same(hash, std::string(hash_it->value()))) return "x-ms-content-sha256 does not match the body";
    const std::string prefix = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=";
    std::string auth(auth_it->value());
    if (auth.rfind(prefix, 0) != 0) return "Authorization is not an ACS HMAC-SHA256 header";
    const std::string to_sign = std::string(req.method_string()) + "\n" + std::string(req.target()) + "\n" + date +
                                ";" + std::string(host_it->value()) + ";" + hash;
    if (!same(b64(hmac(acs_key, to_sign), false), auth.substr(prefix.size()))) return "signature mismatch";
    return std::nullopt;
  }

  std::optional<std::pair<nlohmann::json, std::string>> acs_token_for(const nlohmann::json& body,
                                                                      const char* scopes_field,
                                                                      const std::string& user, bool expired) {
    if (!body.contains(scopes_field) || !body[scopes_field].is_array() || body[scopes_field].empty()) {
      return std::make_pair(nlohmann::json(), std::string("'") + scopes_field + "' must be a non-empty array");
    }
    std::int64_t minutes = 1440;
    if (body.contains("expiresInMinutes")) {
      if (!body["expiresInMinutes"].is_number_integer()) return std::make_pair(nlohmann::json(), std::string("bad expiresInMinutes"));
      minutes = body["expiresInMinutes"].get<std::int64_t>();
      if (minutes < 60 || minutes > 1440) {
        return std::make_pair(nlohmann::json(), std::string("expiresInMinutes must be 60 to 1440"));
      }
    }
    auto lifetime = options.acs_lifetime_override.count() > 0
                        ? options.acs_lifetime_override
                        : std::chrono::duration_cast<std::chrono::seconds>(std::chrono::minutes(minutes));
    const auto issued = now();
    const auto exp = expired ? issued - std::chrono::hours(1) : issued + lifetime;
    nlohmann::json payload{{"skypeid", user}, {"scp", 1792}, {"iat", unix_seconds(issued)},
                           {"exp", unix_seconds(exp)}, {"acsScope", (*(&body))[scopes_field]}};
    return std::make_pair(
        nlohmann::json{{"token", jwt(payload, options.jwt_secret)},
                       {"expiresOn", iso(Clock::from_time_t(unix_seconds(exp)))}},
        std::string());
  }

  Response handle_acs(const Request& req, const std::vector<std::string>& parts, bool expired) {
    const auto body_json = req.body().empty() ? nlohmann::json::object()
                                              : nlohmann::json::parse(req.body(), nullptr, false);
    std::string counter;
    if (parts[0] == "identities" && parts.size() == 1 && req.method() == http::verb::post) counter = "acs_create_user";
    else if (parts[0] == "identities" && parts.size() == 3 && parts[2] == ":issueAccessToken") counter = "acs_issue_token";
    else if (parts[0] == "identities" && parts.size() == 3 && parts[2] == ":revokeAccessTokens") counter = "acs_revoke_tokens";
    else if (parts[0] == "identities" && parts.size() == 2 && req.method() == http::verb::delete_) counter = "acs_delete_user";
    else if (parts[0] == "teamsUser" && parts.size() == 2 && parts[1] == ":exchangeAccessToken") counter = "acs_exchange_teams_token";
    else return acs_error(req, http::status::not_found, "NotFound", "no such ACS identity operation");
    if (auto problem = check_acs_signature(req)) {
      count("acs_unauthorized");
      return acs_error(req, http::status::unauthorized, "Denied", "Denied by the fake ACS identity service: " + *problem);
    }
    count(counter);
    if (body_json.is_discarded() || !body_json.is_object()) {
      return acs_error(req, http::status::bad_request, "BadRequest", "the body is not a JSON object");
    }
    if (counter == "acs_create_user") {
      std::string id;
      {
        std::lock_guard lock(mutex);
        id = "8:acs:fake-resource_" + std::to_string(++next_user);
        users.insert(id);
      }
      nlohmann::json out{{"identity", {{"id", id}}}};
      if (body_json.contains("createTokenWithScopes")) {
        auto token = acs_token_for(body_json, "createTokenWithScopes", id, expired);
        if (!token->second.empty()) return acs_error(req, http::status::bad_request, "BadRequest", token->second);
        out["accessToken"] = token->first;
      }
      return json_response(req, http::status::created, out);
    }
    if (counter == "acs_exchange_teams_token") {
      for (const char* f : {"token", "appId", "userId"}) {
        if (!body_json.contains(f) || !body_json[f].is_string() || body_json[f].get<std::string>().empty()) {
          return acs_error(req, http::status::bad_request, "BadRequest", std::string("missing '") + f + "'");
        }
      }
      auto token = acs_token_for(nlohmann::json{{"scopes", {"voip"}}}, "scopes",
                                 "teams:" + body_json["userId"].get<std::string>(), expired);
      return json_response(req, http::status::ok, token->first);
    }
    const std::string& user = parts[1];
    {
      std::lock_guard lock(mutex);
      if (!users.count(user)) return acs_error(req, http::status::not_found, "IdentityNotFound", "unknown identity");
      if (counter == "acs_delete_user") users.erase(user);
    }
    if (counter == "acs_issue_token") {
      auto token = acs_token_for(body_json, "scopes", user, expired);
      if (!token->second.empty()) return acs_error(req, http::status::bad_request, "BadRequest", token->second);
      return json_response(req, http::status::ok, token->first);
    }
    return empty_response(req, http::status::no_content);
  }

  // ---- Entra ----

  Response handle_entra(const Request& req, const std::string& tenant, bool expired) {
    count("entra_token");
    auto form = parse_query(req.body());
    auto err = [&](http::status s, const std::string& e, int code, const std::string& d) {
      return json_response(req, s,
                           {{"error", e},
                            {"error_description", "AADSTS" + std::to_string(code) + ": " + d},
                            {"error_codes", {code}},
                            {"timestamp", iso(now())},
                            {"trace_id", "00000000-0000-0000-0000-000000000000"}});
    };
    if (tenant != options.entra_tenant) {
      return err(http::status::bad_request, "invalid_request", 90002, "Tenant '" + tenant + "' not found.");
    }
    if (query_value(form, "grant_type") != "client_credentials") {
      return err(http::status::bad_request, "unsupported_grant_type", 70003,
                 "The app requested an unsupported grant type.");
    }
    if (query_value(form, "client_id") != options.entra_client_id) {
      return err(http::status::bad_request, "unauthorized_client", 700016, "Application not found in the directory.");
    }
    if (!same(query_value(form, "client_secret"), options.entra_client_secret)) {
      return err(http::status::unauthorized, "invalid_client", 7000215,
                 "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                 "value, not the client secret ID.");
    }
    const auto scope = query_value(form, "scope");
    if (scope.empty()) return err(http::status::bad_request, "invalid_scope", 1002012, "The scope is missing.");
    const auto issued = now();
    const auto exp = expired ? issued - std::chrono::hours(1) : issued + options.entra_token_lifetime;
    std::string aud = scope;
    if (auto pos = aud.rfind("/.default"); pos != std::string::npos) aud.resize(pos);
    nlohmann::json payload{{"aud", aud}, {"tid", tenant}, {"appid", options.entra_client_id},
                           {"iat", unix_seconds(issued)}, {"exp", unix_seconds(exp)}};
    return json_response(req, http::status::ok,
                         {{"token_type", "Bearer"},
                          {"expires_in", expired ? 0 : options.entra_token_lifetime.count()},
                          {"ext_expires_in", options.entra_token_lifetime.count()},
                          {"access_token", jwt(payload, options.jwt_secret + ":entra")}});
  }

  // ---- Web PubSub ----

  webpubsub::ServiceClient webpubsub_client() {
    return webpubsub::ServiceClient(webpubsub::ConnectionString::parse(webpubsub_cs()), options.webpubsub_hub,
                                    std::make_shared<ServerClock>(this));
  }

  // The server's clock (`TokenServerOptions::now`) as a credkit::Clock, for the clients it
  // uses to mint tokens (each lives for one request); they read the time only, so timers are
  // the system clock's.
  class ServerClock final : public credkit::Clock {
   public:
    explicit ServerClock(const Impl* server) : server_(server) {}
    time_point now() const noexcept override { return server_->now(); }
    std::unique_ptr<credkit::Timer> make_timer(const boost::asio::any_io_executor& executor) override {
      return credkit::Clock::system()->make_timer(executor);
    }

   private:
    const Impl* server_;
  };

  std::string webpubsub_cs() const {
    return "Endpoint=http://127.0.0.1:" + std::to_string(bound_port.load()) + ";AccessKey=" +
           options.webpubsub_access_key + ";Version=1.0;";
  }

  Response handle_generate_token(const Request& req, const std::string& hub, std::string_view query, bool expired) {
    count("webpubsub_generate_token");
    std::string auth(req[http::field::authorization]);
    if (auth.rfind("Bearer ", 0) != 0 || !verify_jwt(auth.substr(7), options.jwt_secret + ":entra", now())) {
      return json_response(req, http::status::unauthorized,
                           {{"code", "Unauthorized"}, {"message", "a valid Entra bearer token is required"}});
    }
    if (hub != options.webpubsub_hub) {
      return json_response(req, http::status::not_found, {{"code", "NotFound"}, {"message", "unknown hub"}});
    }
    auto q = parse_query(query);
    webpubsub::ClientTokenOptions o;
    o.user_id = query_value(q, "userId");
    for (auto& [k, v] : q) {
      if (k == "role") o.roles.push_back(v);
      if (k == "group") o.groups.push_back(v);
    }
    const auto minutes = query_value(q, "minutesToExpire");
    if (!minutes.empty()) {
      const auto m = strict_integer(minutes, 1, 1440);
      if (!m) {
        return json_response(req, http::status::bad_request,
                             {{"code", "InvalidRequest"}, {"message", "minutesToExpire must be 1 to 1440"}});
      }
      o.lifetime = std::chrono::minutes(*m);
    }
    std::string type = query_value(q, "clientType");
    for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (type == "mqtt") o.client_type = webpubsub::ClientType::mqtt;
    if (type == "socketio") o.client_type = webpubsub::ClientType::socketio;
    try {
      auto access = webpubsub_client().client_access(o);
      if (expired) return json_response(req, http::status::ok, {{"token", app_token("x", true)["token"]}});
      return json_response(req, http::status::ok, {{"token", access.token.token}});
    } catch (const std::exception& e) {
      return json_response(req, http::status::bad_request, {{"code", "BadRequest"}, {"message", e.what()}});
    }
  }

  // ---- dispatch ----

  // Returns nullopt for "hang".
  std::optional<Response> handle(const Request& req) {
    const std::string target(req.target());
    const auto qpos = target.find('?');
    const std::string path = target.substr(0, qpos);
    const std::string query = qpos == std::string::npos ? std::string() : target.substr(qpos + 1);
    const auto parts = split_path(path);

    if (!parts.empty() && parts[0] == "admin") {
      if (parts.size() == 2 && parts[1] == "stats" && req.method() == http::verb::get) {
        nlohmann::json j = nlohmann::json::object();
        std::lock_guard lock(mutex);
        for (auto& [k, v] : counters) j[k] = v;
        return json_response(req, http::status::ok, j);
      }
      if (parts.size() == 2 && parts[1] == "faults" && req.method() == http::verb::post) {
        auto j = nlohmann::json::parse(req.body(), nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("mode") || !j["mode"].is_string()) {
          return json_response(req, http::status::bad_request, {{"error", "expected {\"mode\": ..., \"count\": N}"}});
        }
        Fault f;
        const auto mode = j["mode"].get<std::string>();
        bool known = false;
        for (auto m : {FaultMode::none, FaultMode::server_error, FaultMode::rate_limited, FaultMode::slow,
                       FaultMode::garbage, FaultMode::expired, FaultMode::hang}) {
          if (to_string(m) == mode) {
            f.mode = m;
            known = true;
          }
        }
        if (!known) return json_response(req, http::status::bad_request, {{"error", "unknown mode"}});
        f.count = j.value("count", 1);
        f.delay = std::chrono::milliseconds(j.value("delay_ms", 2000));
        f.retry_after = std::chrono::seconds(j.value("retry_after", 1));
        {
          std::lock_guard lock(mutex);
          fault = f;
        }
        return json_response(req, http::status::ok, {{"mode", mode}, {"count", f.count}});
      }
      return json_response(req, http::status::not_found, {{"error", "unknown admin endpoint"}});
    }
    return std::nullopt;  // not admin: handled by handle_token (fault-aware)
  }

  Response handle_token(const Request& req, bool expired) {
    const std::string target(req.target());
    const auto qpos = target.find('?');
    const std::string path = target.substr(0, qpos);
    const std::string query = qpos == std::string::npos ? std::string() : target.substr(qpos + 1);
    const auto parts = split_path(path);
    const auto verb = req.method();
    try {
      if (verb == http::verb::get && parts.size() == 4 && parts[0] == "chat" && parts[1] == "user" &&
          parts[3] == "token") {
        count("chat_user_token");
        return json_response(req, http::status::ok, app_token(parts[2], expired));
      }
      if (verb == http::verb::post && parts.size() == 2 && parts[0] == "api" && parts[1] == "token") {
        count("api_token");
        auto body = nlohmann::json::parse(req.body().empty() ? "{}" : req.body(), nullptr, false);
        std::string user = "anonymous";
        if (!body.is_discarded() && body.is_object() && body.contains("user") && body["user"].is_string()) {
          user = body["user"].get<std::string>();
        }
        return json_response(req, http::status::ok, app_token(user, expired));
      }
      if (verb == http::verb::get && parts.size() == 3 && parts[0] == "api" && parts[1] == "webpubsub" &&
          parts[2] == "client-url") {
        count("webpubsub_client_url");
        webpubsub::ClientTokenOptions o;
        o.user_id = query_value(parse_query(query), "user");
        o.lifetime = std::max(std::chrono::minutes(1),
                              std::chrono::duration_cast<std::chrono::minutes>(options.token_lifetime));
        auto access = webpubsub_client().client_access(o);
        if (expired) access.token.token = app_token(o.user_id, true)["token"];
        return json_response(req, http::status::ok, {{"url", access.url}, {"token", access.token.token}});
      }
      if (verb == http::verb::get && parts.size() == 6 && parts[0] == "api" && parts[1] == "agora" &&
          parts[2] == "chat" && parts[3] == "user" && parts[5] == "token") {
        count("agora_chat_user_token");
        agora::AccessToken2 t(options.agora_app_id, options.agora_app_certificate,
                              std::max(std::chrono::seconds(1), options.token_lifetime));
        const auto issued = expired ? now() - std::chrono::hours(2) : now();
        t.issue_ts(static_cast<std::uint32_t>(unix_seconds(issued))).add_chat_user(parts[4], options.token_lifetime);
        return json_response(req, http::status::ok,
                             {{"token", t.build()}, {"expiresOn", iso(issued + options.token_lifetime)}});
      }
      if (!parts.empty() && (parts[0] == "identities" || parts[0] == "teamsUser")) {
        return handle_acs(req, parts, expired);
      }
      if (verb == http::verb::post && parts.size() == 4 && parts[1] == "oauth2" && parts[2] == "v2.0" &&
          parts[3] == "token") {
        return handle_entra(req, parts[0], expired);
      }
      if (verb == http::verb::post && parts.size() == 4 && parts[0] == "api" && parts[1] == "hubs" &&
          parts[3] == ":generateToken") {
        return handle_generate_token(req, parts[2], query, expired);
      }
    } catch (const std::exception& e) {
      return json_response(req, http::status::internal_server_error, {{"error", "internal"}, {"message", e.what()}});
    }
    count("not_found");
    return json_response(req, http::status::not_found, {{"error", "not found"}});
  }

  // What a connection does with one request: answer now, answer after `delay` (the session
  // mints it then), or never (`hang`). Takes one request's worth of the current fault.
  struct Reply {
    std::optional<Response> response;
    std::chrono::milliseconds delay{0};
    bool hang = false;
  };

  Reply respond(const Request& req) {
    if (auto admin = handle(req)) return {std::move(admin)};
    Fault f = take_fault();
    switch (f.mode) {
      case FaultMode::none:
      case FaultMode::expired: return {handle_token(req, f.mode == FaultMode::expired)};
      case FaultMode::server_error:
        count("fault_5xx");
        return {json_response(req, http::status::service_unavailable,
                              {{"error", {{"code", "ServiceUnavailable"}, {"message", "injected fault"}}}})};
      case FaultMode::rate_limited: {
        count("fault_429");
        auto res = json_response(req, http::status::too_many_requests,
                                 {{"error", {{"code", "TooManyRequests"}, {"message", "injected fault"}}}});
        res.set(http::field::retry_after, std::to_string(f.retry_after.count()));
        return {std::move(res)};
      }
      case FaultMode::garbage: {
        count("fault_garbage");
        Response res{http::status::ok, req.version()};
        res.set(http::field::content_type, "application/json");
        res.keep_alive(req.keep_alive());
        res.body() = "<html>this is not the JSON you are looking for";
        res.prepare_payload();
        return {std::move(res)};
      }
      case FaultMode::slow:
        count("fault_slow");
        return {std::nullopt, std::max(f.delay, std::chrono::milliseconds(1))};
      case FaultMode::hang:
        count("fault_hang");
        return {std::nullopt, {}, true};
    }
    return {handle_token(req, false)};
  }

  // ---- networking ----

  // Per-connection inbound bounds: a request's header block and body (beyond them the
  // connection is closed) and the idle/read timeout (60 s) below.
  static constexpr std::size_t max_header_bytes = 16 * 1024;
  static constexpr std::size_t max_body_bytes = 64 * 1024;
  static constexpr std::chrono::milliseconds accept_backoff{50};

  void accept() {
    acceptor.async_accept(asio::make_strand(ioc), [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
      if (ec) {
        if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;  // closed by stop()
        {
          std::lock_guard lock(self->mutex);
          if (self->stopping) return;
        }
        // Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), or a connection that
        // died in the queue (ECONNABORTED): never stop accepting. Resource errors back off
        // briefly (the pending connection stays queued, so retrying at once would spin).
        const bool resources = ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
                               ec == asio::error::no_memory || ec.value() == ENFILE;
        if (!resources) return self->accept();
        self->count("accept_backoff");  // visible in stats(): tests wait for it
        self->accept_timer.expires_after(accept_backoff);
        self->accept_timer.async_wait([self](beast::error_code wait_ec) {
          if (!wait_ec) self->accept();
        });
        return;
      }
      auto session = std::make_shared<Session>(self, std::move(s));
      {
        std::lock_guard lock(self->mutex);
        if (self->stopping) return;
        std::erase_if(self->sessions, [](const std::weak_ptr<Session>& w) { return w.expired(); });
        self->sessions.push_back(session);
      }
      session->read();
      self->accept();
    });
  }

  struct Session : std::enable_shared_from_this<Session> {
    Session(std::shared_ptr<Impl> i, tcp::socket s) : impl(std::move(i)), stream(std::move(s)), timer(stream.get_executor()) {}

    void read() {
      {
        std::lock_guard lock(impl->mutex);
        if (impl->stopping) return close();
      }
      parser.emplace();
      parser->header_limit(max_header_bytes);
      parser->body_limit(max_body_bytes);
      stream.expires_after(std::chrono::seconds(60));
      http::async_read(stream, buffer, *parser, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return self->close();
        self->req = self->parser->release();
        self->on_request();
      });
    }

    // Any exception a hostile request provokes becomes a 500 (never escapes into Asio).
    void on_request() {
      try {
        handle_request();
      } catch (const std::exception& e) {
        write(Impl::json_response(req, http::status::internal_server_error,
                                  {{"error", "internal"}, {"message", e.what()}}));
      }
    }

    void handle_request() {
      Reply r = impl->respond(req);
      if (r.hang) {
        stream.expires_never();
        // Keep the connection open without answering; notice when the client gives up.
        hang_buffer.resize(1);
        stream.socket().async_read_some(asio::buffer(hang_buffer),
                                        [self = shared_from_this()](beast::error_code, std::size_t) { self->close(); });
        return;
      }
      if (r.delay.count() == 0) return write(std::move(*r.response));
      // The token is minted when the delay ends, so its lifetime starts when it is sent.
      timer.expires_after(r.delay);
      timer.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (ec) return;
        self->write(self->impl->handle_token(self->req, false));
      });
    }

    void write(Response res) {
      impl->stamp(res);
      auto sp = std::make_shared<Response>(std::move(res));
      stream.expires_after(std::chrono::seconds(60));
      http::async_write(stream, *sp, [self = shared_from_this(), sp](beast::error_code ec, std::size_t) {
        if (ec || !sp->keep_alive()) return self->close();
        self->read();
      });
    }

    void close() {
      beast::error_code ec;
      timer.cancel();
      stream.socket().shutdown(tcp::socket::shutdown_send, ec);
      stream.socket().close(ec);
    }

    std::shared_ptr<Impl> impl;
    beast::tcp_stream stream;
    asio::steady_timer timer;
    beast::flat_buffer buffer{max_header_bytes + max_body_bytes};  // its max_size
    std::optional<http::request_parser<http::string_body>> parser;
    Request req;
    std::vector<char> hang_buffer;
  };

  TokenServerOptions options;
  std::string acs_key;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  asio::steady_timer accept_timer{ioc};
  std::thread thread;
  std::atomic<std::uint16_t> bound_port{0};
  mutable std::mutex mutex;
  std::map<std::string, std::uint64_t> counters;
  Fault fault;
  std::set<std::string> users;
  std::uint64_t next_user = 0;
  bool running = false;
  bool stopping = false;
  std::vector<std::weak_ptr<Session>> sessions;
};

struct TokenServerAccess {
  static TokenServer::Impl& impl(TokenServer& server) { return *server.impl_; }
};

std::optional<HttpResponse> handle_request(TokenServer& server, const HttpRequest& request) {
  auto& impl = TokenServerAccess::impl(server);
  std::optional<HttpResponse> out;
  try {
    auto reply = impl.respond(request);
    if (reply.hang) return std::nullopt;
    out = reply.response ? std::move(*reply.response) : impl.handle_token(request, false);  // slow: no wait
  } catch (const std::exception& e) {
    // The same answer a connection gives when a hostile request makes a handler throw.
    out = impl.json_response(request, http::status::internal_server_error,
                             {{"error", "internal"}, {"message", e.what()}});
  }
  impl.stamp(*out);
  return out;
}

TokenServer::TokenServer(TokenServerOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {}

TokenServer::~TokenServer() { stop(); }

void TokenServer::start() {
  if (impl_->running) return;
  tcp::endpoint ep(asio::ip::make_address(impl_->options.address), impl_->options.port);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  impl_->bound_port = impl_->acceptor.local_endpoint().port();
  impl_->running = true;
  impl_->accept();
  impl_->thread = std::thread([impl = impl_] { impl->ioc.run(); });
}

void TokenServer::stop() {
  if (!impl_->running) return;
  impl_->running = false;
  // Close the acceptor and every connection (hung ones included) on the server's thread; its
  // run() then returns once the aborted operations have completed, breaking every cycle.
  asio::post(impl_->ioc, [impl = impl_] {
    beast::error_code ec;
    impl->acceptor.close(ec);
    impl->accept_timer.cancel();
    std::vector<std::shared_ptr<Impl::Session>> open;
    {
      std::lock_guard lock(impl->mutex);
      impl->stopping = true;
      for (auto& w : impl->sessions) {
        if (auto s = w.lock()) open.push_back(std::move(s));
      }
      impl->sessions.clear();
    }
    for (auto& s : open) asio::post(s->stream.get_executor(), [s] { s->close(); });
  });
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t TokenServer::port() const noexcept { return impl_->bound_port; }

std::string TokenServer::base_url() const { return "http://127.0.0.1:" + std::to_string(port()); }

std::string TokenServer::acs_connection_string() const {
  return "endpoint=" + base_url() + "/;accesskey=" + impl_->options.acs_access_key;
}

std::string TokenServer::webpubsub_connection_string() const { return impl_->webpubsub_cs(); }

void TokenServer::inject_fault(Fault fault) {
  std::lock_guard lock(impl_->mutex);
  impl_->fault = fault;
}

std::map<std::string, std::uint64_t> TokenServer::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->counters;
}

bool TokenServer::wait_idle(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto open_sessions = [&] {
    std::lock_guard lock(impl_->mutex);
    return std::any_of(impl_->sessions.begin(), impl_->sessions.end(),
                       [](const std::weak_ptr<Impl::Session>& w) { return !w.expired(); });
  };
  while (std::chrono::steady_clock::now() < deadline) {
    if (!open_sessions()) {
      // A session expires while its last handler is still unwinding on the server's one
      // thread; a handler posted now runs only after that thread has returned from it.
      auto reached = std::make_shared<std::promise<void>>();
      auto future = reached->get_future();
      asio::post(impl_->ioc, [reached] { reached->set_value(); });
      if (future.wait_until(deadline) != std::future_status::ready) return false;
      if (!open_sessions()) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

std::uint64_t TokenServer::request_count(std::string_view endpoint) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->counters.find(std::string(endpoint));
  return it == impl_->counters.end() ? 0 : it->second;
}

const TokenServerOptions& TokenServer::options() const noexcept { return impl_->options; }

}  // namespace credkit::samples
