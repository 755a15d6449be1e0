// credkit internal — the one way a source asks its token service and reads the answer (as
// gRPC's HttpTokenFetcher does): transport errors, the service's clock, the status, the body.
#pragma once

#include <credkit/core/error.hpp>
#include <credkit/core/fetcher.hpp>

#include "sources/http/http_client.hpp"
#include "sources/http/service_time.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace credkit::detail {

/// How a source reads its service's answers.
template <typename Result>
struct ServiceCall {
  /// Turns a 2xx response into the result; what it throws is delivered. `received`: when the
  /// response arrived (service time in a credential's fetch, see `service_time_of`).
  std::function<Result(const HttpResponse& response, std::chrono::system_clock::time_point received)> parse;
  /// The error a non-2xx response completes with; `sent` holds the request's method and URL
  /// only. Null: `http_error(sent, response)`.
  std::function<Error(const HttpRequest& sent, const HttpResponse& response)> status_error;
  /// Put before a transport error's message ("GET https://host/path"); empty: nothing.
  std::string what;
};

/// `error` with "`what`: " before its message, code and details kept; unchanged when it is no
/// `Error`, is `cancelled`, or already starts with `what`.
std::exception_ptr with_context(std::exception_ptr error, const std::string& what);

/// Sends `request` through `http`; `done` runs on `completion_executor` (the slot cleared
/// first) with a transport error, or, once the response's `Date` is reported (every status,
/// `service_time_of` with `fetch`), with `call.status_error` for a non-2xx status, else with
/// what `call.parse` returns or throws.
template <typename Result>
void call_service(HttpClient http, HttpRequest request, boost::asio::cancellation_slot slot,
                  boost::asio::any_io_executor completion_executor, std::optional<FetchContext> fetch,
                  ServiceCall<Result> call, std::function<void(std::exception_ptr, Result)> done) {
  HttpRequest sent;
  sent.method = request.method;
  sent.url = request.url;
  auto on_response = [sent = std::move(sent), fetch = std::move(fetch), call = std::move(call),
                      done = std::move(done)](std::exception_ptr error, HttpResponse response) {
    if (error) return done(call.what.empty() ? error : with_context(error, call.what), Result{});
    // Every response reports the service's clock (errors too), before anything completes.
    const auto received = service_time_of(response, fetch);
    if (response.status < 200 || response.status > 299) {
      auto status = call.status_error ? call.status_error(sent, response) : http_error(sent, response);
      return done(std::make_exception_ptr(std::move(status)), Result{});
    }
    Result result{};
    try {
      result = call.parse(response, received);
    } catch (...) {
      return done(std::current_exception(), Result{});
    }
    done(nullptr, std::move(result));
  };
  http.async_request(std::move(request), slot, std::move(on_response), std::move(completion_executor));
}

}  // namespace credkit::detail
