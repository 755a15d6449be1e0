#include <credkit/core/error.hpp>
#include <credkit/sources/acs_identity_client.hpp>

#include "core/token_admission.hpp"
#include "sources/acs/hmac_signer.hpp"
#include "sources/acs/identity_requests.hpp"
#include "core/completion.hpp"
#include "sources/common/text.hpp"
#include "sources/http/http_date.hpp"
#include "sources/common/fetch_completion.hpp"
#include "sources/http/service_call.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/post.hpp>

#include <optional>

#include <nlohmann/json.hpp>

namespace credkit::acs {
namespace detail {

using credkit::detail::HttpRequest;
using credkit::detail::HttpResponse;

void validate_token_request(const std::vector<TokenScope>& scopes, std::chrono::minutes lifetime) {
  if (scopes.empty()) throw_error(errc::invalid_argument, "ACS token request: give at least one scope (e.g. chat, voip)");
  if (lifetime < IdentityClient::min_token_lifetime || lifetime > IdentityClient::max_token_lifetime) {
    throw_error(errc::invalid_argument, "ACS token lifetime must be 60 to 1440 minutes, got " +
                                            std::to_string(lifetime.count()) + " minutes");
  }
}

void validate_user_id(const std::string& user_id) {
  if (user_id.empty()) throw_error(errc::invalid_argument, "ACS user id is empty");
  if (user_id.size() > 1024) throw_error(errc::invalid_argument, "ACS user id is longer than 1024 characters");
}

std::string token_request_body(const char* scopes_field, const std::vector<TokenScope>& scopes,
                               std::chrono::minutes lifetime) {
  nlohmann::json body;
  auto& list = body[scopes_field] = nlohmann::json::array();
  for (auto s : scopes) list.push_back(std::string(to_string(s)));
  body["expiresInMinutes"] = lifetime.count();
  return body.dump();
}

HttpRequest make_signed_request(const ConnectionString& cs, const std::string& api_version, std::string method,
                                const std::string& path, std::string body, std::chrono::system_clock::time_point now) {
  HttpRequest req;
  req.method = std::move(method);
  req.url = cs.endpoint() + path + "?api-version=" + credkit::detail::url_encode(api_version);
  auto url = credkit::detail::parse_url(req.url);
  if (!url) throw_error(errc::invalid_argument, "ACS request URL is malformed: " + cs.endpoint() + path);
  const std::string path_and_query = url->path + (url->query.empty() ? "" : "?" + url->query);
  auto signed_headers = sign_request(req.method, url->authority(), path_and_query, body,
                                     credkit::detail::format_http_date(now), cs.decoded_key());
  req.headers.emplace_back("x-ms-date", std::move(signed_headers.date));
  req.headers.emplace_back("x-ms-content-sha256", std::move(signed_headers.content_sha256));
  req.headers.emplace_back("Authorization", std::move(signed_headers.authorization));
  req.headers.emplace_back("Accept", "application/json");
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  req.body = std::move(body);
  return req;
}

nlohmann::json parse_json_body(const std::string& body, const char* operation) {
  auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    throw_error(errc::invalid_response, std::string("ACS ") + operation + ": the response is not a JSON object");
  }
  return json;
}

AccessToken parse_access_token(const nlohmann::json& json, const char* operation) {
  auto token = json.find("token");
  auto expires = json.find("expiresOn");
  if (token == json.end() || !token->is_string() || token->get_ref<const std::string&>().empty()) {
    throw_error(errc::invalid_response, std::string("ACS ") + operation + ": the response has no 'token' string");
  }
  if (expires == json.end() || !expires->is_string()) {
    throw_error(errc::invalid_response, std::string("ACS ") + operation + ": the response has no 'expiresOn' string");
  }
  auto when = credkit::detail::parse_iso8601(expires->get_ref<const std::string&>());
  if (!when) {
    throw_error(errc::invalid_response,
                std::string("ACS ") + operation + ": 'expiresOn' is not an ISO 8601 time");
  }
  credkit::detail::admit_token_text(token->get_ref<const std::string&>(), std::string("ACS ") + operation + ": 'token'");
  return AccessToken{token->get<std::string>(), *when};
}

UserAndToken parse_create_response(const std::string& body, bool with_token) {
  const char* op = with_token ? "create user and token" : "create user";
  auto json = parse_json_body(body, op);
  UserAndToken result;
  auto identity = json.find("identity");
  if (identity == json.end() || !identity->is_object() || !identity->contains("id") ||
      !(*identity)["id"].is_string() || (*identity)["id"].get_ref<const std::string&>().empty()) {
    throw_error(errc::invalid_response, std::string("ACS ") + op + ": the response has no 'identity.id' string");
  }
  result.user_id = (*identity)["id"].get<std::string>();
  if (with_token) {
    auto token = json.find("accessToken");
    if (token == json.end() || !token->is_object()) {
      throw_error(errc::invalid_response, std::string("ACS ") + op + ": the response has no 'accessToken' object");
    }
    result.token = parse_access_token(*token, op);
  }
  return result;
}

// An empty result for operations without one (signature void(std::exception_ptr)).
struct Nothing {};

// One REST call: what to send and how to read a 2xx answer.
template <typename Result>
struct Call {
  std::string method;
  std::string path;
  std::string body;
  std::function<Result(const HttpResponse&)> parse;
};

struct IdentityClientImpl {
  IdentityClientImpl(boost::asio::any_io_executor ex, ConnectionString cs, IdentityClientOptions opts)
      : executor(ex), connection_string(std::move(cs)), options(std::move(opts)), http(ex, options.http) {}

  // The x-ms-date to sign with: the options' clock when set; else, in a credential's fetch,
  // service time (so a skewed client authenticates once the credential learned the offset
  // from a response's Date); else the system clock.
  std::chrono::system_clock::time_point now(const std::optional<FetchContext>& fetch) const {
    return options.clock ? options.clock->now() : credkit::detail::signing_time(fetch);
  }

  // Sends a signed request; `call.parse` turns a 2xx response into the result (and may throw).
  // `done` runs on `completion_ex`, with the slot cleared first.
  // `fetch`: the credential's fetch this request serves, if any (signing time, Date reports).
  template <typename Result>
  void send(const Call<Result>& call, boost::asio::cancellation_slot slot, boost::asio::any_io_executor completion_ex,
            std::function<void(std::exception_ptr, Result)> done, std::optional<FetchContext> fetch = std::nullopt) {
    HttpRequest request;
    try {
      request = make_signed_request(connection_string, options.api_version, call.method, call.path, call.body,
                                    now(fetch));
    } catch (...) {
      boost::asio::post(completion_ex, [done = std::move(done), e = std::current_exception()] { done(e, Result{}); });
      return;
    }
    credkit::detail::ServiceCall<Result> reading;
    reading.parse = [parse = call.parse](const HttpResponse& response, auto) { return parse(response); };
    credkit::detail::call_service<Result>(http, std::move(request), slot, std::move(completion_ex), std::move(fetch),
                                          std::move(reading), std::move(done));
  }

  // Runs `call` for an Asio handler (posting its completion to the handler's executor).
  template <typename Result>
  void run(const Call<Result>& call, boost::asio::any_completion_handler<void(std::exception_ptr, Result)> h) {
    auto slot = boost::asio::get_associated_cancellation_slot(h);
    send<Result>(call, slot, executor, credkit::detail::SharedCompleter<Result>(executor, std::move(h)));
  }

  void run(const Call<Nothing>& call, boost::asio::any_completion_handler<void(std::exception_ptr)> h) {
    auto slot = boost::asio::get_associated_cancellation_slot(h);
    credkit::detail::SharedCompleter<> completer(executor, std::move(h));
    send<Nothing>(call, slot, executor, [completer](std::exception_ptr e, Nothing) { completer(std::move(e)); });
  }

  boost::asio::any_io_executor executor;
  ConnectionString connection_string;
  IdentityClientOptions options;
  credkit::detail::HttpClient http;
};

std::string identity_path(const std::string& user_id) { return "/identities/" + credkit::detail::url_encode(user_id); }

Call<AccessToken> issue_token_call(const std::string& user_id, const std::vector<TokenScope>& scopes,
                                   std::chrono::minutes lifetime) {
  validate_user_id(user_id);
  validate_token_request(scopes, lifetime);
  return {"POST", identity_path(user_id) + "/:issueAccessToken", token_request_body("scopes", scopes, lifetime),
          [](const HttpResponse& r) { return parse_access_token(parse_json_body(r.body, "issue token"), "issue token"); }};
}

}  // namespace detail

IdentityClient::IdentityClient(boost::asio::any_io_executor executor, ConnectionString connection_string,
                               IdentityClientOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(connection_string), std::move(options))) {}

const boost::asio::any_io_executor& IdentityClient::get_executor() const noexcept { return impl_->executor; }

void IdentityClient::initiate_create_user(std::shared_ptr<Impl> impl,
                                          boost::asio::any_completion_handler<void(std::exception_ptr, std::string)> h) {
  impl->run(detail::Call<std::string>{"POST", "/identities", "{}",
                                      [](const detail::HttpResponse& r) {
                                        return detail::parse_create_response(r.body, false).user_id;
                                      }},
            std::move(h));
}

void IdentityClient::initiate_issue_token(std::shared_ptr<Impl> impl, std::string user_id,
                                          std::vector<TokenScope> scopes, std::chrono::minutes lifetime,
                                          boost::asio::any_completion_handler<void(std::exception_ptr, AccessToken)> h) {
  detail::Call<AccessToken> call;
  try {
    call = detail::issue_token_call(user_id, scopes, lifetime);
  } catch (...) {
    return credkit::detail::post_failure(impl->executor, std::move(h), std::current_exception());
  }
  impl->run(call, std::move(h));
}

void IdentityClient::initiate_create_user_and_token(
    std::shared_ptr<Impl> impl, std::vector<TokenScope> scopes, std::chrono::minutes lifetime,
    boost::asio::any_completion_handler<void(std::exception_ptr, UserAndToken)> h) {
  std::string body;
  try {
    detail::validate_token_request(scopes, lifetime);
    body = detail::token_request_body("createTokenWithScopes", scopes, lifetime);
  } catch (...) {
    return credkit::detail::post_failure(impl->executor, std::move(h), std::current_exception());
  }
  impl->run(detail::Call<UserAndToken>{"POST", "/identities", std::move(body),
                                       [](const detail::HttpResponse& r) {
                                         return detail::parse_create_response(r.body, true);
                                       }},
            std::move(h));
}

namespace {
/// A call on one user's identity that answers nothing (revoke tokens, delete): the id is
/// checked before any I/O. (A template so that it can take the private Impl.)
template <typename Impl>
void run_user_call(Impl& impl, const std::string& user_id, const char* method, const std::string& suffix,
                   const char* body, boost::asio::any_completion_handler<void(std::exception_ptr)> h) {
  try {
    detail::validate_user_id(user_id);
  } catch (...) {
    return credkit::detail::post_completion(impl.executor, std::move(h), std::current_exception());
  }
  impl.run(detail::Call<detail::Nothing>{method, detail::identity_path(user_id) + suffix, body,
                                         [](const detail::HttpResponse&) { return detail::Nothing{}; }},
           std::move(h));
}
}  // namespace

void IdentityClient::initiate_revoke_tokens(std::shared_ptr<Impl> impl, std::string user_id,
                                            boost::asio::any_completion_handler<void(std::exception_ptr)> h) {
  run_user_call(*impl, user_id, "POST", "/:revokeAccessTokens", "{}", std::move(h));
}

void IdentityClient::initiate_delete_user(std::shared_ptr<Impl> impl, std::string user_id,
                                          boost::asio::any_completion_handler<void(std::exception_ptr)> h) {
  run_user_call(*impl, user_id, "DELETE", "", "", std::move(h));
}

void IdentityClient::initiate_exchange_teams_token(
    std::shared_ptr<Impl> impl, std::string entra_token, std::string client_id, std::string user_object_id,
    boost::asio::any_completion_handler<void(std::exception_ptr, AccessToken)> h) {
  if (entra_token.empty() || client_id.empty() || user_object_id.empty()) {
    return credkit::detail::post_failure(
        impl->executor, std::move(h),
        std::make_exception_ptr(Error(errc::invalid_argument,
                                      "ACS Teams token exchange needs a non-empty Entra token, client id and user "
                                      "object id")));
  }
  nlohmann::json body{{"token", std::move(entra_token)}, {"appId", std::move(client_id)},
                      {"userId", std::move(user_object_id)}};
  impl->run(detail::Call<AccessToken>{"POST", "/teamsUser/:exchangeAccessToken", body.dump(),
                                      [](const detail::HttpResponse& r) {
                                        return detail::parse_access_token(
                                            detail::parse_json_body(r.body, "Teams token exchange"),
                                            "Teams token exchange");
                                      }},
            std::move(h));
}

Fetcher IdentityClient::fetcher(std::string user_id, std::vector<TokenScope> scopes,
                                std::chrono::minutes lifetime) const {
  auto call = std::make_shared<const detail::Call<AccessToken>>(detail::issue_token_call(user_id, scopes, lifetime));
  return Fetcher::async([impl = impl_, call](FetchContext context, FetchCompletion completion) {
    impl->send<AccessToken>(*call, context.cancellation_slot(), context.executor(),
                            credkit::detail::completing_fetch<AccessToken>(std::move(completion)), context);
  });
}

}  // namespace credkit::acs
