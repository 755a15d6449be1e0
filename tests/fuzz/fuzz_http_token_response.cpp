// Fuzz target: the HTTP token source's answer parser (plain text and every JSON preset), its
// ISO 8601 timestamp reader, and the HTTP-date parser of Date and Retry-After headers. The
// first byte picks the response description.
#include <credkit/core/error.hpp>
#include <credkit/sources/http_token_response.hpp>

#include "sources/common/text.hpp"
#include "sources/http/http_client.hpp"
#include "sources/http/http_date.hpp"
#include "sources/http/token_response_parser.hpp"
#include "fuzz_expect.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  using credkit::HttpTokenResponse;
  const HttpTokenResponse formats[] = {
      HttpTokenResponse::plain_text(),
      HttpTokenResponse::acs(),
      HttpTokenResponse::oauth(),
      HttpTokenResponse::web_pubsub(),
      HttpTokenResponse::json("a.b.token", "a.exp", HttpTokenResponse::Expiry::timestamp),
      HttpTokenResponse::json("token", "expires_in", HttpTokenResponse::Expiry::seconds_from_now),
  };
  const auto& format = formats[data[0] % std::size(formats)];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  (void)credkit::detail::parse_iso8601(body);
  // An accepted HTTP-date is in system_clock's range and reads back the same once written.
  if (const auto date = credkit::detail::parse_http_date(body, 2026)) {
    if (*date < std::chrono::system_clock::time_point{} ||
        credkit::detail::parse_http_date(credkit::detail::format_http_date(*date), 2026) != date)
      __builtin_trap();
  }
  if (const auto delay = credkit::detail::parse_retry_after(body, now)) {
    if (delay->count() < 0 || *delay > std::chrono::hours(24)) __builtin_trap();
  }
  try {
    (void)credkit::detail::parse_token_response(format, body, now);
  } catch (const credkit::Error& e) {
    fuzz::expect_code_in(
        e, {credkit::errc::invalid_response, credkit::errc::invalid_token, credkit::errc::token_expired_on_arrival});
  }
  return 0;
}
