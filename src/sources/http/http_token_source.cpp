// HttpTokenSource: one HTTP request per fetch through the shared HttpClient, answer parsed per format.
#include <credkit/sources/http_token_source.hpp>

#include "sources/http/http_client.hpp"
#include "sources/common/fetch_completion.hpp"
#include "sources/http/service_call.hpp"
#include "sources/http/service_time.hpp"
#include "sources/http/token_response_parser.hpp"
#include "core/secret_scrubber.hpp"

#include <credkit/core/parse_token.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/system_executor.hpp>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <optional>

namespace credkit {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

void check_path(const std::string& path, const char* what) {
  if (path.empty() || path.front() == '.' || path.back() == '.' || path.find("..") != std::string::npos) {
    throw_error(errc::invalid_argument, std::string("HttpTokenSourceOptions::response.") + what + " '" + path +
                                            "' is not a dotted JSON path like 'accessToken.token'");
  }
}
}  // namespace

struct HttpTokenSource::State {
  HttpTokenSourceOptions options;
  detail::HttpRequest request;
  std::string what;  // "GET https://host/path" for messages
  mutable std::mutex mutex;
  mutable std::optional<detail::HttpClient> client;

  detail::HttpClient client_for(const boost::asio::any_io_executor& executor) const {
    std::lock_guard lock(mutex);
    if (!client) client.emplace(executor, options.http);
    return *client;
  }

  std::optional<boost::asio::any_io_executor> bound_executor() const {
    std::lock_guard lock(mutex);
    if (client) return client->get_executor();
    return std::nullopt;
  }

  // Sends the request; `done` runs on `completion_executor` with the token or an Error.
  // `fetch`: the credential's fetch this request serves (none for async_fetch). A token
  // string's expiry is read with the credential's ParseOptions in a fetch, a fallback lifetime
  // counting from receipt in service time; outside one with `options.parse`.
  static void start(const std::shared_ptr<const State>& self, const boost::asio::any_io_executor& completion_executor,
                    boost::asio::cancellation_slot slot, std::optional<FetchContext> fetch,
                    std::function<void(std::exception_ptr, AccessToken)> done) {
    detail::ServiceCall<AccessToken> reading;
    reading.what = self->what;
    // Everything the request carries is redacted from an error page's excerpt.
    reading.status_error = [self](const detail::HttpRequest&, const detail::HttpResponse& response) {
      return detail::http_error(self->request, response);
    };
    reading.parse = [self, fetch](const detail::HttpResponse& response, std::chrono::system_clock::time_point received) {
      detail::ParsedTokenResponse parsed;
      try {
        parsed = detail::parse_token_response(self->options.response, response.body, received);
      } catch (...) {
        std::rethrow_exception(detail::with_context(std::current_exception(), self->what));
      }
      if (parsed.expires_on) return AccessToken{std::move(parsed.token), *parsed.expires_on};
      if (fetch) return detail::parse_token_received(parsed.token, received, fetch);
      try {
        return parse_token(parsed.token, self->options.parse);
      } catch (...) {
        std::rethrow_exception(detail::with_context(std::current_exception(), self->what));
      }
    };
    detail::call_service<AccessToken>(self->client_for(completion_executor), self->request, slot, completion_executor,
                                      std::move(fetch), std::move(reading), std::move(done));
  }
};

HttpTokenSource::HttpTokenSource(HttpTokenSourceOptions options) : state_(std::make_shared<State>()) {
  auto& s = *state_;
  s.options = std::move(options);
  const auto& o = s.options;
  // What the request carries (an Authorization value, an API key, a form body) is secret.
  for (const auto& [name, value] : o.headers) {
    detail::remember_secret(value);
    if (auto sp = value.find(' '); sp != std::string::npos) detail::remember_secret(std::string_view(value).substr(sp + 1));
  }
  if (!o.body.empty()) detail::remember_secret(o.body);
  detail::check_request_url(o.url, o.http);
  if (o.method.empty() || !std::all_of(o.method.begin(), o.method.end(), [](unsigned char c) { return std::isupper(c); })) {
    throw_error(errc::invalid_argument, "HttpTokenSourceOptions::method must be an upper-case HTTP method like GET or POST");
  }
  bool has_accept = false;
  for (const auto& [name, value] : o.headers) {
    if (name.empty() || name.find_first_of(":\r\n") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      throw_error(errc::invalid_argument, "HttpTokenSourceOptions::headers: header '" + detail::redact_secrets(name) +
                                              "' has an invalid name or a line break in its value");
    }
    has_accept = has_accept || iequals(name, "Accept");
  }
  if (o.response.format == HttpTokenResponse::Format::json) {
    check_path(o.response.token_field, "token_field");
    if (o.response.expiry != HttpTokenResponse::Expiry::from_token) check_path(o.response.expiry_field, "expiry_field");
  }
  if (o.http.connect_timeout <= std::chrono::milliseconds::zero() ||
      o.http.total_timeout <= std::chrono::milliseconds::zero() || o.http.max_response_bytes == 0) {
    throw_error(errc::invalid_argument,
                "HttpTokenSourceOptions::http: timeouts and max_response_bytes must be positive");
  }
  s.request.method = o.method;
  s.request.url = o.url;
  s.request.headers = o.headers;
  if (!has_accept) {
    s.request.headers.emplace_back(
        "Accept", o.response.format == HttpTokenResponse::Format::json ? "application/json" : "text/plain, */*");
  }
  s.request.body = o.body;
  s.what = o.method + " " + detail::url_for_message(o.url);
}

HttpTokenSource::HttpTokenSource(boost::asio::any_io_executor executor, HttpTokenSourceOptions options)
    : HttpTokenSource(std::move(options)) {
  state_->client_for(executor);
}

const HttpTokenSourceOptions& HttpTokenSource::options() const noexcept { return state_->options; }

Fetcher HttpTokenSource::fetcher() const {
  return Fetcher::async([state = std::shared_ptr<const State>(state_)](FetchContext context, FetchCompletion done) {
    State::start(state, context.executor(), context.cancellation_slot(), context,
                 detail::completing_fetch<AccessToken>(std::move(done)));
  });
}

boost::asio::any_io_executor HttpTokenSource::default_executor(const State& state) {
  // Unbound and no associated executor: the system executor (its own threads) runs the I/O.
  return state.bound_executor().value_or(boost::asio::any_io_executor(boost::asio::system_executor()));
}

void HttpTokenSource::initiate_fetch(std::shared_ptr<const State> state, boost::asio::any_io_executor executor,
                                     boost::asio::any_completion_handler<HttpFetchSignature> handler) {
  const auto slot = boost::asio::get_associated_cancellation_slot(handler);
  // Outstanding work on the handler's executor until it has run (core/completion.hpp's rule).
  auto work = boost::asio::prefer(boost::asio::get_associated_executor(handler, executor),
                                  boost::asio::execution::outstanding_work.tracked);
  auto h = std::make_shared<boost::asio::any_completion_handler<HttpFetchSignature>>(std::move(handler));
  State::start(state, executor, slot, std::nullopt,
               [h, work = std::move(work)](std::exception_ptr error, AccessToken token) mutable {
                 (*h)(error, std::move(token));
                 work = {};
               });
}

}  // namespace credkit
