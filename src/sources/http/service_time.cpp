// The token service's clock from HTTP responses: one helper every source's fetcher shares.
#include "sources/http/service_time.hpp"

#include "core/fetch_op.hpp"
#include "sources/http/http_date.hpp"

namespace credkit::detail {

std::optional<std::chrono::system_clock::time_point> response_date(const HttpResponse& response) noexcept {
  for (const auto& [name, value] : response.headers) {
    // The first Date header only: a response with two is malformed, and the first is the one
    // a proxy would have kept.
    if (name.size() == 4 && (name[0] == 'D' || name[0] == 'd') && (name[1] == 'A' || name[1] == 'a') &&
        (name[2] == 'T' || name[2] == 't') && (name[3] == 'E' || name[3] == 'e')) {
      return parse_http_date(value);
    }
  }
  return std::nullopt;
}

std::chrono::system_clock::time_point service_time_of(const HttpResponse& response,
                                                      const std::optional<FetchContext>& fetch) noexcept {
  if (!fetch) return std::chrono::system_clock::now();
  // The credential decides what a reading is worth (tolerance, max_clock_skew): relative
  // expiries count from its service time after the report, never from a Date it refused.
  if (const auto date = response_date(response)) fetch->report_service_time(*date);
  return fetch->now();
}

std::chrono::system_clock::time_point signing_time(const std::optional<FetchContext>& fetch) noexcept {
  return fetch ? fetch->now() : std::chrono::system_clock::now();
}

AccessToken parse_token_received(std::string_view token, std::chrono::system_clock::time_point received,
                                 const std::optional<FetchContext>& fetch, const ParseOptions& outside) {
  if (!fetch) return parse_token(token, outside);
  const auto& op = FetchOpAccess::of(*fetch);
  ParseOptions options = op ? op->parse : ParseOptions{};
  options.now = received;
  return parse_token(token, options);
}

}  // namespace credkit::detail
