// Turning HTTP answers into credkit errors: status classification, Retry-After, safe excerpts.
#include "core/strict_number.hpp"
#include "sources/http/http_client.hpp"

#include "core/saturating_time.hpp"
#include "core/secret_scrubber.hpp"
#include "sources/http/curl_url.hpp"
#include "sources/http/http_date.hpp"
#include "sources/http/service_time.hpp"

#include <credkit/core/log.hpp>

#include <algorithm>
#include <cctype>
#include <memory>

namespace credkit::detail {
namespace {

constexpr std::size_t max_excerpt = 256;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return v;
  }
  return {};
}

std::string url_for_message(std::string_view url) {
  const std::string copy(url);
  const auto u = parse_curl_url(copy);
  if (!u) {
    // Unparseable: keep what cannot be a secret (up to the first '?', '#' or '@').
    auto cut = copy.substr(0, std::min({copy.find('?'), copy.find('#'), copy.size()}));
    if (auto at = cut.find('@'); at != std::string::npos) cut = cut.substr(at + 1);
    return redact_secrets(cut.substr(0, 200));
  }
  // Scheme, host and port are not secrets; a path segment may be (hence the redaction).
  std::string out = url_part(u.get(), CURLUPART_SCHEME) + "://" + url_part(u.get(), CURLUPART_HOST);
  if (auto port = url_part(u.get(), CURLUPART_PORT); !port.empty()) out += ":" + port;
  return out + redact_secrets(url_part(u.get(), CURLUPART_PATH));
}

std::string redact_secrets(std::string_view text, const std::vector<std::string_view>& secrets) {
  return scrub(text, ScrubOptions{.extra_secrets = secrets, .untrusted = true});
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now) {
  using std::chrono::milliseconds;
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  constexpr long long max_seconds = 24 * 3600;  // a service asking for more than a day is capped
  constexpr milliseconds max_delay = std::chrono::seconds(max_seconds);
  if (auto seconds = parse_digits_saturating(value, max_seconds)) return std::chrono::seconds(*seconds);
  // An HTTP-date. One beyond what system_clock holds (year 2262 and later, up to 9999) is
  // still a valid date far in the future: capped, not refused nor read as "now".
  using namespace std::chrono;
  const int current_year = static_cast<int>(year_month_day{floor<days>(now)}.year());
  const auto when = parse_http_date_seconds(value, current_year);
  if (!when) return std::nullopt;
  if (*when > kMaxHttpDateSeconds) return max_delay;
  if (*when < 0) return milliseconds(0);  // before 1970: long past
  const system_clock::time_point at{duration_cast<system_clock::duration>(seconds(*when))};  // in range: no overflow
  const auto delta = sub_sat(at, now);
  if (delta <= std::chrono::system_clock::duration::zero()) return milliseconds(0);
  return std::min(saturate_cast<milliseconds>(delta), max_delay);
}

Error http_error(const HttpRequest& request, const HttpResponse& response) {
  ErrorDetails details;
  details.http_status = response.status;
  const auto retry_after_header = response.header("Retry-After");
  if (!retry_after_header.empty()) {
    // A date is measured against the service's own clock when the response shows it.
    details.retry_after =
        parse_retry_after(retry_after_header, response_date(response).value_or(std::chrono::system_clock::now()));
  }
  const errc code = response.status == 429 ? errc::rate_limited : errc::http_status;

  // Everything the request carried may come back in an echoing error page: hide it.
  std::vector<std::string_view> secrets;
  for (const auto& [name, value] : request.headers) {
    secrets.push_back(value);
    if (auto sp = value.find(' '); sp != std::string::npos) secrets.push_back(std::string_view(value).substr(sp + 1));
  }
  if (!request.body.empty()) {
    secrets.push_back(request.body);
    std::string_view body = request.body;
    while (!body.empty()) {
      const auto amp = body.find('&');
      auto field = body.substr(0, amp);
      if (auto eq = field.find('='); eq != std::string_view::npos) secrets.push_back(field.substr(eq + 1));
      if (amp == std::string_view::npos) break;
      body.remove_prefix(amp + 1);
    }
  }
  // Redact a generous prefix first, so a secret cut at the excerpt boundary is still hidden.
  auto excerpt = redact_secrets(std::string_view(response.body).substr(0, 4 * max_excerpt), secrets);
  bool truncated = response.body.size() > 4 * max_excerpt;
  if (excerpt.size() > max_excerpt) {
    std::size_t cut = max_excerpt;
    while (cut > 0 && (static_cast<unsigned char>(excerpt[cut]) & 0xC0) == 0x80) --cut;  // whole UTF-8 characters
    excerpt.resize(cut);
    truncated = true;
  }
  while (!excerpt.empty() && excerpt.back() == ' ') excerpt.pop_back();

  std::string message = request.method + " " + url_for_message(request.url) + " answered HTTP " +
                        std::to_string(response.status);
  if (details.retry_after) {
    message += " (Retry-After: " + std::to_string(details.retry_after->count()) + " ms)";
  }
  if (!excerpt.empty()) message += ": " + excerpt + (truncated ? "…" : "");
  return Error(code, message, std::move(details));
}

}  // namespace credkit::detail
