#include <credkit/core/error.hpp>
#include <credkit/sources/entra_client_secret_source.hpp>

#include "core/strict_number.hpp"
#include "core/token_admission.hpp"
#include "core/completion.hpp"
#include "sources/common/crypto.hpp"
#include "sources/common/text.hpp"
#include "sources/entra/token_request.hpp"
#include "sources/common/fetch_completion.hpp"
#include "sources/http/service_call.hpp"

#include "core/saturating_time.hpp"
#include "core/secret_scrubber.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <optional>

namespace credkit::entra {
namespace detail {

using credkit::detail::HttpRequest;
using credkit::detail::HttpResponse;

void validate(const ClientSecretOptions& o) {
  auto require = [](const std::string& v, const char* name) {
    if (credkit::detail::trim(v).empty()) {
      throw_error(errc::invalid_argument, std::string("Entra client credentials: '") + name + "' is empty");
    }
  };
  require(o.tenant_id, "tenant_id");
  require(o.client_id, "client_id");
  require(o.client_secret, "client_secret");
  require(o.scope, "scope");
  for (char c : o.tenant_id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) {
      throw_error(errc::invalid_argument, "Entra client credentials: 'tenant_id' must be a tenant GUID or domain");
    }
  }
  auto url = credkit::detail::parse_url(o.authority);
  if (!url || (url->scheme != "https" && url->scheme != "http") || !url->query.empty()) {
    throw_error(errc::invalid_argument,
                "Entra client credentials: 'authority' must be an absolute https:// URL such as "
                "https://login.microsoftonline.com");
  }
}

HttpRequest make_token_request(const ClientSecretOptions& o) {
  std::string authority = o.authority;
  while (!authority.empty() && authority.back() == '/') authority.pop_back();
  HttpRequest req;
  req.method = "POST";
  req.url = authority + "/" + o.tenant_id + "/oauth2/v2.0/token";
  req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  req.headers.emplace_back("Accept", "application/json");
  req.body = credkit::detail::form_encode({{"grant_type", "client_credentials"},
                                           {"client_id", o.client_id},
                                           {"client_secret", o.client_secret},
                                           {"scope", o.scope}});
  return req;
}

AccessToken parse_token_response(const std::string& body, std::chrono::system_clock::time_point now) {
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    throw_error(errc::invalid_response, "Entra token response is not a JSON object");
  }
  auto token = json.find("access_token");
  if (token == json.end() || !token->is_string() || token->get_ref<const std::string&>().empty()) {
    throw_error(errc::invalid_response, "Entra token response has no 'access_token' string");
  }
  std::optional<long long> seconds;
  if (auto e = json.find("expires_in"); e != json.end()) {
    // A JSON integer or a string of decimal digits (strict_number.hpp), 1 s to 366 days.
    if (e->is_number_integer()) {
      seconds = e->get<long long>();
    } else if (e->is_string()) {
      seconds = credkit::detail::parse_integer(e->get_ref<const std::string&>(), 1, 366LL * 86400);
    }
  }
  if (!seconds || *seconds <= 0 || *seconds > 366LL * 86400) {
    throw_error(errc::invalid_response, "Entra token response has no valid 'expires_in' (seconds)");
  }
  credkit::detail::admit_token_text(token->get_ref<const std::string&>(), "Entra token response: 'access_token'");
  return AccessToken{token->get<std::string>(), credkit::detail::add_sat(now, std::chrono::seconds(*seconds))};
}

Error token_error(const HttpRequest& request, const HttpResponse& response, const ClientSecretOptions& o) {
  Error base = credkit::detail::http_error(request, response);
  auto json = nlohmann::json::parse(response.body, nullptr, false);
  if (json.is_discarded() || !json.is_object() || !json.contains("error") || !json["error"].is_string()) {
    return base;
  }
  std::string message = "Entra token request for client " + o.client_id + " in tenant " + o.tenant_id +
                        " failed with HTTP " + std::to_string(response.status) + ": " +
                        credkit::detail::redact_secrets(json["error"].get<std::string>(), {o.client_secret});
  if (auto codes = json.find("error_codes"); codes != json.end() && codes->is_array() && !codes->empty()) {
    message += " (AADSTS";
    bool first = true;
    for (const auto& c : *codes) {
      if (!c.is_number_integer()) continue;
      message += first ? " " : ", ";
      message += std::to_string(c.get<long long>());
      first = false;
    }
    message += ")";
  }
  if (auto d = json.find("error_description"); d != json.end() && d->is_string()) {
    std::string desc = d->get<std::string>();
    if (desc.size() > 400) desc = desc.substr(0, 400) + "...";
    message += ": " + credkit::detail::redact_secrets(desc, {o.client_secret});
  }
  return Error(base.code(), message, base.details());
}

struct ClientSecretSourceImpl : std::enable_shared_from_this<ClientSecretSourceImpl> {
  ClientSecretSourceImpl(boost::asio::any_io_executor ex, ClientSecretOptions o)
      : executor(ex), options(std::move(o)), http(ex, options.http) {}
  ~ClientSecretSourceImpl() { credkit::detail::wipe(options.client_secret); }

  // `done` runs on `completion_ex`. `fetch`: the credential's fetch this request serves, if
  // any: `expires_in` then counts from the response's Date (service time).
  void send(boost::asio::cancellation_slot slot, boost::asio::any_io_executor completion_ex,
            std::function<void(std::exception_ptr, AccessToken)> done, std::optional<FetchContext> fetch = std::nullopt) {
    credkit::detail::ServiceCall<AccessToken> reading;
    reading.parse = [](const HttpResponse& response, std::chrono::system_clock::time_point received) {
      return parse_token_response(response.body, received);
    };
    reading.status_error = [self = shared_from_this()](const HttpRequest& sent, const HttpResponse& response) {
      return token_error(sent, response, self->options);
    };
    credkit::detail::call_service<AccessToken>(http, make_token_request(options), slot, std::move(completion_ex),
                                               std::move(fetch), std::move(reading), std::move(done));
  }

  boost::asio::any_io_executor executor;
  ClientSecretOptions options;
  credkit::detail::HttpClient http;
};

}  // namespace detail

ClientSecretSource::ClientSecretSource(boost::asio::any_io_executor executor, ClientSecretOptions options) {
  detail::validate(options);
  credkit::detail::remember_secret(options.client_secret);
  impl_ = std::make_shared<Impl>(std::move(executor), std::move(options));
}

void ClientSecretSource::initiate(std::shared_ptr<Impl> impl,
                                  boost::asio::any_completion_handler<void(std::exception_ptr, AccessToken)> handler) {
  auto slot = boost::asio::get_associated_cancellation_slot(handler);
  impl->send(slot, impl->executor, credkit::detail::SharedCompleter<AccessToken>(impl->executor, std::move(handler)));
}

Fetcher ClientSecretSource::fetcher() const {
  return Fetcher::async([impl = impl_](FetchContext context, FetchCompletion completion) {
    impl->send(context.cancellation_slot(), context.executor(),
               credkit::detail::completing_fetch<AccessToken>(std::move(completion)), context);
  });
}

}  // namespace credkit::entra
