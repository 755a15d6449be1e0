// Clock skew in the sources (docs/refresh-semantics.md, R16): the one HTTP-date parser over
// generated valid and invalid dates, Retry-After dates measured against the response's Date,
// and every HTTP source's fetcher reporting the service's Date to its fetch and counting
// relative expiries from it — through a fetch harness and through a real TokenCredential
// against the sample token server with its clock 2 h ahead of or behind this process's.
#include <doctest/doctest.h>

#include <credkit/credkit.hpp>
#include <credkit/sources/acs_identity_client.hpp>
#include <credkit/sources/entra_client_secret_source.hpp>
#include <credkit/sources/http_token_source.hpp>
#include <credkit/sources/webpubsub_token_api_client.hpp>
#include <credkit/testing/manual_clock.hpp>

#include "core/fetch_op.hpp"
#include "sources/http/http_client.hpp"
#include "sources/http/http_date.hpp"
#include "sources/http/service_time.hpp"
#include "support/async_helpers.hpp"
#include "support/loopback_http_server.hpp"
#include "support/test_tokens.hpp"
#include "source_test_support.hpp"
#include "token_server.hpp"

#include <boost/asio/io_context.hpp>

#include <array>
#include <cstdio>
#include <random>

// Designated initializers leave the other reply fields at their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono_literals;
using std::chrono::system_clock;
using credkit::samples::TokenServer;
using credkit::samples::TokenServerOptions;

namespace {

// ---- an independent HTTP-date writer (std::chrono's calendar, not credkit's) ----

constexpr std::array<const char*, 7> kDay = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<const char*, 7> kLongDay = {"Sunday", "Monday", "Tuesday", "Wednesday",
                                                 "Thursday", "Friday", "Saturday"};
constexpr std::array<const char*, 12> kMon = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct Civil {
  int y;
  unsigned m, d;
  int hh = 0, mi = 0, ss = 0;
};

std::chrono::sys_days days_of(const Civil& c) {
  return std::chrono::sys_days{std::chrono::year{c.y} / std::chrono::month{c.m} / std::chrono::day{c.d}};
}
unsigned weekday_of(const Civil& c) { return std::chrono::weekday{days_of(c)}.c_encoding(); }
std::int64_t seconds_of(const Civil& c) {
  return static_cast<std::int64_t>(days_of(c).time_since_epoch().count()) * 86400 + c.hh * 3600 + c.mi * 60 + c.ss;
}

std::string fmt(const char* format, auto... args) {
  char buf[96];
  std::snprintf(buf, sizeof buf, format, args...);
  return buf;
}
std::string imf(const Civil& c, int weekday = -1) {
  return fmt("%s, %02u %s %04d %02d:%02d:%02d GMT", kDay[static_cast<std::size_t>(weekday < 0 ? weekday_of(c) : weekday)],
             c.d, kMon[c.m - 1], c.y, c.hh, c.mi, c.ss);
}
std::string rfc850(const Civil& c) {
  return fmt("%s, %02u-%s-%02d %02d:%02d:%02d GMT", kLongDay[weekday_of(c)], c.d, kMon[c.m - 1], c.y % 100, c.hh, c.mi,
             c.ss);
}
std::string asctime_form(const Civil& c) {
  return fmt("%s %s %2u %02d:%02d:%02d %04d", kDay[weekday_of(c)], kMon[c.m - 1], c.d, c.hh, c.mi, c.ss, c.y);
}

Civil civil_of(std::int64_t unix_seconds) {
  const auto t = std::chrono::sys_seconds{std::chrono::seconds{unix_seconds}};
  const auto dp = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{dp};
  const std::chrono::hh_mm_ss hms{t - dp};
  return {static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
          static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
          static_cast<int>(hms.seconds().count())};
}

system_clock::time_point at(std::int64_t unix_seconds) {
  return system_clock::time_point{std::chrono::seconds{unix_seconds}};
}

unsigned days_in(int y, unsigned m) {
  return static_cast<unsigned>((std::chrono::year{y} / std::chrono::month{m} / std::chrono::last).day());
}

// Anything the parser accepts must mean what a fresh parse of its own IMF-fixdate means, and
// an accepted IMF-fixdate must be written back exactly as it came.
void check_accepted_is_consistent(const std::string& text) {
  const auto secs = detail::parse_http_date_seconds(text, 2026);
  const auto t = detail::parse_http_date(text, 2026);
  if (t) {
    REQUIRE(secs);
    CHECK(*t == at(*secs));
    CHECK(*secs >= 0);
    CHECK(*secs <= detail::kMaxHttpDateSeconds);
  }
  if (!secs) return;
  const auto c = civil_of(*secs);
  CHECK(detail::parse_http_date_seconds(imf(c), 2026) == secs);
  const bool imf_shaped = text.size() == 29 && text[3] == ',';
  if (imf_shaped && text.find(":60 ") == std::string::npos) {
    CHECK(imf(c) == text);
    if (t) CHECK(detail::format_http_date(*t) == text);
  }
}

// ---- a fetch harness: runs a Fetcher once as a credential would ----

struct FetchRun {
  std::exception_ptr error;
  AccessToken token;
  std::vector<system_clock::time_point> reports;  // FetchContext::report_service_time calls
  std::size_t reports_before_completion = 0;
};

FetchRun run_fetch(boost::asio::io_context& io, const Fetcher& fetcher, std::function<system_clock::time_point()> now,
                   ParseOptions parse = {}) {
  auto run = std::make_shared<FetchRun>();
  bool done = false;
  auto op = std::make_shared<detail::FetchOp>();
  op->executor = io.get_executor();
  op->deadline = system_clock::now() + 30s;
  op->parse = parse;
  // Like a credential, the harness adopts a reported service time at once (no tolerance).
  op->service_now = [run, now = std::move(now)] { return run->reports.empty() ? now() : run->reports.back(); };
  op->on_service_time = [run](system_clock::time_point t) { run->reports.push_back(t); };
  op->on_done = [run, &done](std::exception_ptr e, AccessToken t) {
    run->error = e;
    run->token = std::move(t);
    run->reports_before_completion = run->reports.size();
    done = true;
  };
  detail::FetchOpAccess::invoke(fetcher, op);
  credkit::test::run_until_done(io, done);
  return *run;
}

system_clock::time_point whole_seconds(system_clock::time_point t) { return std::chrono::floor<std::chrono::seconds>(t); }

// A server clock `shift` away from this process's.
TokenServerOptions shifted_server(std::chrono::seconds shift, std::chrono::seconds lifetime = 620s) {
  TokenServerOptions o;
  o.now = [shift] { return system_clock::now() + shift; };
  o.token_lifetime = lifetime;
  return o;
}

// An ACS identity client of `server` signing with a clock `shift` ahead of ours.
acs::IdentityClient identity_client_ahead(boost::asio::io_context& io, const TokenServer& server,
                                           std::chrono::seconds shift) {
  acs::IdentityClientOptions options;
  options.clock = std::make_shared<credkit::testing::ManualClock>(system_clock::now() + shift);
  return acs::IdentityClient(io.get_executor(), acs::ConnectionString::parse(server.acs_connection_string()),
                             std::move(options));
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The parser

TEST_CASE("http date: every year 1970-9999 (1 Jan, 31 Dec), all three forms; the range ends at 2262") {
  int accepted = 0;
  for (int y = 1970; y <= 9999; ++y) {
    for (const Civil& c : {Civil{y, 1, 1, 0, 0, 0}, Civil{y, 12, 31, 23, 59, 59}}) {
      const auto expected = seconds_of(c);
      const auto s = imf(c);
      CAPTURE(s);
      REQUIRE(detail::parse_http_date_seconds(s, 2026) == expected);  // any valid year, exactly
      REQUIRE(detail::parse_http_date_seconds(asctime_form(c), 2026) == expected);
      const auto t = detail::parse_http_date(s, 2026);
      REQUIRE(t.has_value() == (expected <= detail::kMaxHttpDateSeconds));
      if (t) {
        ++accepted;
        REQUIRE(*t == at(expected));
        REQUIRE(detail::format_http_date(*t) == s);
        REQUIRE(detail::parse_http_date(asctime_form(c), 2026) == t);
      }
    }
  }
  CHECK(accepted == 2 * (2261 - 1970 + 1) + 1);  // 1970..2261 both days, 2262-01-01 only
  // RFC 850: a two-digit year is the one with those digits at most 50 years after now.
  for (int yy = 0; yy <= 99; ++yy) {
    const int year = 2000 + yy <= 2026 + 50 ? 2000 + yy : 1900 + yy;
    const Civil c{year, 11, 6, 8, 49, 37};
    CAPTURE(rfc850(c));
    CHECK(detail::parse_http_date_seconds(rfc850(c), 2026) == seconds_of(c));
  }
  CHECK(detail::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", 2026) == at(784111777));
  CHECK(detail::parse_http_date("Sun Nov  6 08:49:37 1994", 2026) == at(784111777));
  CHECK(detail::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", 2026) == at(784111777));
  CHECK(detail::parse_http_date(" \tSun, 06 Nov 1994 08:49:37 GMT\t ", 2026) == at(784111777));  // OWS
}

TEST_CASE("http date: the boundaries of system_clock and of the epoch") {
  CHECK(detail::parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT") == system_clock::time_point{});
  CHECK_FALSE(detail::parse_http_date("Wed, 31 Dec 1969 23:59:59 GMT"));
  CHECK(detail::parse_http_date_seconds("Wed, 31 Dec 1969 23:59:59 GMT", 2026) == -1);
  const Civil last = civil_of(detail::kMaxHttpDateSeconds);
  CHECK(imf(last) == "Fri, 11 Apr 2262 23:47:16 GMT");
  const auto t = detail::parse_http_date(imf(last));
  REQUIRE(t);
  CHECK(t->time_since_epoch().count() == 9'223'372'036'000'000'000);
  CHECK(system_clock::time_point::max() - *t < 1s);
  CHECK_FALSE(detail::parse_http_date("Fri, 11 Apr 2262 23:47:17 GMT"));
  CHECK_FALSE(detail::parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"));
  CHECK(detail::parse_http_date_seconds("Fri, 31 Dec 9999 23:59:59 GMT", 2026) == 253402300799);
  CHECK(detail::parse_http_date_seconds("Sat, 01 Jan 0000 00:00:00 GMT", 2026) == -62167219200);
  // The leap second 23:59:60 is valid and reads as 23:59:59 (POSIX time has none).
  CHECK(detail::parse_http_date("Wed, 31 Dec 2008 23:59:60 GMT") == detail::parse_http_date("Wed, 31 Dec 2008 23:59:59 GMT"));
  // The formatter covers the whole of system_clock.
  CHECK(detail::format_http_date(system_clock::time_point::max()) == "Fri, 11 Apr 2262 23:47:16 GMT");
  CHECK(detail::format_http_date(system_clock::time_point::min()) == "Tue, 21 Sep 1677 00:12:43 GMT");
  CHECK(detail::format_http_date(system_clock::time_point{} - 1ns) == "Wed, 31 Dec 1969 23:59:59 GMT");
}

TEST_CASE("http date: 200 000 generated dates round-trip exactly") {
  std::mt19937_64 rng(20261204);
  std::uniform_int_distribution<std::int64_t> any(0, detail::kMaxHttpDateSeconds);
  for (int i = 0; i < 200'000; ++i) {
    // Mostly anywhere in the range, some near the ends and around leap days.
    std::int64_t s = any(rng);
    if (i % 10 == 1) s = detail::kMaxHttpDateSeconds - static_cast<std::int64_t>(rng() % 100'000);
    if (i % 10 == 2) s = static_cast<std::int64_t>(rng() % 100'000);
    if (i % 10 == 3) s = seconds_of({static_cast<int>(1972 + 4 * (rng() % 72)), 2, 29}) + static_cast<std::int64_t>(rng() % 86400);
    const Civil c = civil_of(s);
    const auto text = imf(c);
    const auto t = detail::parse_http_date(text);
    REQUIRE_MESSAGE(t == at(s), text);
    // Any fraction of the second formats as that second (up to system_clock's last nanosecond).
    const auto room = (system_clock::time_point::max() - *t).count();
    const auto fraction = std::min<std::int64_t>(static_cast<std::int64_t>(rng() % 1'000'000'000), room);
    REQUIRE(detail::format_http_date(*t + std::chrono::nanoseconds(fraction)) == text);
    REQUIRE(detail::parse_http_date(asctime_form(c)) == t);
  }
}

TEST_CASE("http date: every field out of range, and every malformation, is refused") {
  std::vector<std::string> bad;
  // Days a month does not have (leap and common years, century rules), day 00.
  for (int y : {2023, 2024, 1900, 2000, 2100}) {
    for (unsigned m = 1; m <= 12; ++m) {
      const unsigned last = days_in(y, m);
      for (unsigned d = last + 1; d <= 31; ++d) {
        bad.push_back(fmt("Mon, %02u %s %04d 10:00:00 GMT", d, kMon[m - 1], y));  // any weekday: the day is wrong
      }
      for (unsigned d = 32; d <= 99; d += 13) bad.push_back(fmt("Mon, %02u %s %04d 10:00:00 GMT", d, kMon[m - 1], y));
      bad.push_back(fmt("Mon, 00 %s %04d 10:00:00 GMT", kMon[m - 1], y));
    }
  }
  const Civil ok{2026, 12, 4, 16, 30, 15};  // a Friday
  REQUIRE(detail::parse_http_date(imf(ok)));
  for (int h = 24; h <= 99; ++h) bad.push_back(imf({2026, 12, 4, h, 0, 0}, 5));
  for (int mi = 60; mi <= 99; ++mi) bad.push_back(imf({2026, 12, 4, 10, mi, 0}, 5));
  for (int s = 60; s <= 99; ++s) bad.push_back(imf({2026, 12, 4, 10, 0, s}, 5));  // 60 only at 23:59
  bad.push_back(imf({2026, 12, 4, 23, 58, 60}, 5));
  for (int wd = 0; wd < 7; ++wd) {
    if (wd != 5) bad.push_back(imf(ok, wd));  // a weekday that does not match the date
  }
  for (const char* s : {
           "", " ", "GMT", "Fri, 04 Dec 2026 16:30:15", "Fri, 04 Dec 2026 16:30:15 UTC", "Fri, 04 Dec 2026 16:30:15 gmt",
           "Fri, 04 Dec 2026 16:30:15 GMT+1", "Fri, 04 Dec 2026 16:30:15 +0000", "fri, 04 Dec 2026 16:30:15 GMT",
           "Fri, 04 dec 2026 16:30:15 GMT", "FRI, 04 DEC 2026 16:30:15 GMT", "Fri 04 Dec 2026 16:30:15 GMT",
           "Fri,  04 Dec 2026 16:30:15 GMT", "Fri, 4 Dec 2026 16:30:15 GMT", "Fri, 04 Dec 26 16:30:15 GMT",
           "Fri, 04 Dec 02026 16:30:15 GMT", "Fri, 04 Dec 2026 16:30 GMT", "Fri, 04 Dec 2026 6:30:15 GMT",
           "Fri, 04 Dec 2026 16:30:15.5 GMT", "Fri, 04 Dec 2026 16:30:15 GMT x", "Fri, 04\tDec 2026 16:30:15 GMT",
           "Fri, 04-Dec-2026 16:30:15 GMT", "Friday, 04 Dec 2026 16:30:15 GMT", "Fri, 04-Dec-26 16:30:15 GMT",
           "Friday, 04-Dec-2026 16:30:15 GMT", "Fri Dec 4 16:30:15 2026", "Fri Dec 04 16:30:15 26",
           "Fri Dec  4 16:30:15 2026 GMT", "Fri Dec  4 16:30:15  2026", "2026-12-04T16:30:15Z", "1796401815",
           "Fri, 04 Dec 2026 16:30:15 GMT, Fri, 04 Dec 2026 16:30:15 GMT", "Fri, +4 Dec 2026 16:30:15 GMT",
           "Fri, 04 Dec -026 16:30:15 GMT", "Fri, 04 Dec 2026 16:-0:15 GMT", "Fri, 04 Dec 2026 16:30:1  GMT"}) {
    bad.emplace_back(s);
  }
  bad.push_back(std::string("Fri, 04 Dec 2026 16:30:15 GMT\0", 30));
  bad.push_back(std::string(1000, 'A') + imf(ok));
  for (const auto& s : bad) {
    CAPTURE(s);
    CHECK_FALSE(detail::parse_http_date(s, 2026));
    CHECK_FALSE(detail::parse_http_date_seconds(s, 2026));
  }
}

TEST_CASE("http date: truncations, byte substitutions and random bytes never crash; what parses is consistent") {
  int accepted = 0;
  const Civil base{2026, 12, 4, 16, 30, 15};
  for (const auto& valid : {imf(base), rfc850(base), asctime_form(base), imf({1970, 1, 1}), imf(civil_of(detail::kMaxHttpDateSeconds))}) {
    for (std::size_t n = 0; n < valid.size(); ++n) {
      CHECK_FALSE(detail::parse_http_date_seconds(valid.substr(0, n), 2026));  // every truncation
    }
    for (std::size_t i = 0; i < valid.size(); ++i) {
      for (int b = 0; b < 256; ++b) {
        std::string s = valid;
        s[i] = static_cast<char>(b);
        if (detail::parse_http_date_seconds(s, 2026)) ++accepted;
        check_accepted_is_consistent(s);
      }
    }
  }
  CHECK(accepted > 5 * 29);  // at least the identity substitutions, and digit changes that stay valid

  std::mt19937_64 rng(77);
  const std::string alphabet = "0123456789 ,:-SunMonTueWedThuFriSatdayJanFebMarAprMayJunJulAugSepOctNovDecGMT\t";
  for (int i = 0; i < 100'000; ++i) {
    std::string s(rng() % 48, '\0');
    for (auto& ch : s) ch = static_cast<char>(i % 2 ? rng() % 256 : alphabet[rng() % alphabet.size()]);
    if (i % 4 == 0) {  // splice random bytes into a valid date
      s = imf(civil_of(static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(detail::kMaxHttpDateSeconds))));
      s[rng() % s.size()] = alphabet[rng() % alphabet.size()];
    }
    check_accepted_is_consistent(s);
  }
}

TEST_CASE("http date: the response's Date header") {
  detail::HttpResponse r;
  CHECK_FALSE(detail::response_date(r));
  r.headers = {{"Content-Type", "application/json"}, {"date", "Fri, 04 Dec 2026 16:30:15 GMT"},
               {"Date", "Sat, 05 Dec 2026 16:30:15 GMT"}};
  CHECK(detail::response_date(r) == at(seconds_of({2026, 12, 4, 16, 30, 15})));  // the first, any case
  r.headers = {{"DATE", "Fri, 31 Dec 9999 23:59:59 GMT"}};
  CHECK_FALSE(detail::response_date(r));
  r.headers = {{"Dates", "Fri, 04 Dec 2026 16:30:15 GMT"}, {"X-Date", "Fri, 04 Dec 2026 16:30:15 GMT"}};
  CHECK_FALSE(detail::response_date(r));
}

// ---------------------------------------------------------------------------------------
// Retry-After

TEST_CASE("retry-after: dates are capped at 24 h (9999 too), past dates are 0, garbage is none") {
  const auto now = at(seconds_of({2026, 11, 23, 10, 0, 0}));
  CHECK(detail::parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == std::chrono::milliseconds(24h));
  CHECK(detail::parse_retry_after("Sat, 12 Apr 2262 00:00:00 GMT", now) == std::chrono::milliseconds(24h));
  CHECK(detail::parse_retry_after("Fri, 11 Apr 2262 23:47:16 GMT", now) == std::chrono::milliseconds(24h));
  CHECK(detail::parse_retry_after("Fri, 11 Apr 2262 23:47:16 GMT", system_clock::time_point::min()) ==
        std::chrono::milliseconds(24h));
  CHECK(detail::parse_retry_after("Mon, 23 Nov 2026 10:01:30 GMT", now) == std::chrono::milliseconds(90s));
  CHECK(detail::parse_retry_after("Mon, 23 Nov 2026 10:01:30 GMT", now + 500ms) == std::chrono::milliseconds(89'500));
  CHECK(detail::parse_retry_after("Monday, 23-Nov-26 10:01:30 GMT", now) == std::chrono::milliseconds(90s));
  CHECK(detail::parse_retry_after("Mon Nov 23 10:01:30 2026", now) == std::chrono::milliseconds(90s));
  CHECK(detail::parse_retry_after("Mon, 23 Nov 2026 09:00:00 GMT", now) == std::chrono::milliseconds(0));
  CHECK(detail::parse_retry_after("Wed, 31 Dec 1969 23:59:59 GMT", now) == std::chrono::milliseconds(0));
  CHECK(detail::parse_retry_after("Sat, 01 Jan 0000 00:00:00 GMT", now) == std::chrono::milliseconds(0));
  CHECK(detail::parse_retry_after("Mon, 23 Nov 2026 10:01:30 GMT", system_clock::time_point::max()) ==
        std::chrono::milliseconds(0));
  CHECK_FALSE(detail::parse_retry_after("Mon, 32 Nov 2026 10:01:30 GMT", now));
  CHECK_FALSE(detail::parse_retry_after("Tue, 23 Nov 2026 10:01:30 GMT", now));  // wrong weekday
  CHECK_FALSE(detail::parse_retry_after("in a while", now));
  CHECK(detail::parse_retry_after("86401", now) == std::chrono::milliseconds(24h));
}

TEST_CASE("retry-after: a date is measured against the response's Date, else the local clock") {
  // The service's clock is 2 h behind ours: its Retry-After date is 120 s after its Date.
  const auto service_now = whole_seconds(system_clock::now() - 2h);
  detail::HttpRequest request{"POST", "http://127.0.0.1:1/token", {}, {}};
  detail::HttpResponse with_date{429, {{"Date", detail::format_http_date(service_now)},
                                       {"Retry-After", detail::format_http_date(service_now + 120s)}}, "slow down"};
  auto e = detail::http_error(request, with_date);
  CHECK(e.code() == make_error_code(errc::rate_limited));
  CHECK(e.retry_after() == std::chrono::milliseconds(120s));
  // Without a Date the local clock is all there is: that date is long past.
  detail::HttpResponse without_date{429, {{"Retry-After", detail::format_http_date(service_now + 120s)}}, ""};
  CHECK(detail::http_error(request, without_date).retry_after() == std::chrono::milliseconds(0));
  // A Date that is no valid date is ignored.
  detail::HttpResponse bad_date{503, {{"Date", "yesterday"}, {"Retry-After", detail::format_http_date(system_clock::now() + 1h)}}, ""};
  const auto r = detail::http_error(request, bad_date).retry_after();
  REQUIRE(r);
  CHECK(*r > std::chrono::milliseconds(59min));
  CHECK(*r <= std::chrono::milliseconds(1h));
  detail::HttpResponse far{503, {{"Date", detail::format_http_date(service_now)}, {"Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"}}, ""};
  CHECK(detail::http_error(request, far).retry_after() == std::chrono::milliseconds(24h));
}

// ---------------------------------------------------------------------------------------
// The fetchers report the service's clock and count relative expiries from it

TEST_CASE("skew: HttpTokenSource's fetcher reports Date (any status) and counts expires_in from it") {
  std::string date;  // the Date the server sends, "" for none
  int status = 200;
  std::string body = R"({"access_token":"opaque-access-token-000111222333","expires_in":600})";
  std::vector<std::pair<std::string, std::string>> extra;
  LoopbackHttpServer server([&](const HttpExchange&) {
    HttpReply r{.status = status, .body = body, .content_type = "application/json"};
    if (!date.empty()) r.headers.emplace_back("Date", date);
    for (auto& h : extra) r.headers.push_back(h);
    return r;
  });
  boost::asio::io_context io;
  HttpTokenSourceOptions o;
  o.url = server.url("/token");
  o.response = HttpTokenResponse::oauth();
  HttpTokenSource source(io.get_executor(), o);
  const auto credential_now = whole_seconds(system_clock::now()) + 1h + 250ms;  // FetchContext::now()
  auto fixed_now = [credential_now] { return credential_now; };

  for (auto shift : {2h, -2h}) {
    CAPTURE(shift.count());
    const auto service = whole_seconds(system_clock::now() + shift);
    date = detail::format_http_date(service);
    const auto r = run_fetch(io, source.fetcher(), fixed_now);
    REQUIRE_FALSE(r.error);
    REQUIRE(r.reports.size() == 1);
    CHECK(r.reports[0] == service);
    CHECK(r.reports_before_completion == 1);
    CHECK(r.token.expires_on == service + 600s);  // from Date, not from either local clock
  }
  SUBCASE("no Date, or an invalid one: nothing reported, expires_in counts from FetchContext::now()") {
    for (std::string d : {"", "yesterday", "Fri, 31 Dec 9999 23:59:59 GMT", "Sat, 04 Dec 2026 16:30:15 GMT"}) {
      date = d;
      const auto r = run_fetch(io, source.fetcher(), fixed_now);
      REQUIRE_FALSE(r.error);
      CHECK(r.reports.empty());
      CHECK(r.token.expires_on == credential_now + 600s);
    }
  }
  SUBCASE("an error response reports its Date too, before the fetch fails") {
    status = 503;
    body = R"({"error":"busy"})";
    const auto service = whole_seconds(system_clock::now() - 2h);
    date = detail::format_http_date(service);
    extra = {{"Retry-After", detail::format_http_date(service + 30s)}};
    const auto r = run_fetch(io, source.fetcher(), fixed_now);
    const auto e = as_error(r.error);
    CHECK(e.http_status() == 503);
    CHECK(e.retry_after() == std::chrono::milliseconds(30s));
    REQUIRE(r.reports.size() == 1);
    CHECK(r.reports[0] == service);
    CHECK(r.reports_before_completion == 1);
  }
  SUBCASE("an ACS-style absolute expiry 2 h behind the local clock is no expired token in service time") {
    const auto service = whole_seconds(system_clock::now() - 2h);
    date = detail::format_http_date(service);
    const auto exp = service + 10min;
    const std::time_t tt = system_clock::to_time_t(exp);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char iso[32];
    std::strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    body = std::string(R"({"token":"opaque-token-value-0123456789","expiresOn":")") + iso + "\"}";
    HttpTokenSourceOptions acs = o;
    acs.response = HttpTokenResponse::acs();
    HttpTokenSource acs_source(io.get_executor(), acs);
    const auto r = run_fetch(io, acs_source.fetcher(), fixed_now);
    REQUIRE_FALSE(r.error);
    CHECK(r.token.expires_on == exp);
    CHECK(r.reports == std::vector<system_clock::time_point>{service});
  }
  SUBCASE("an opaque token's fallback lifetime counts from Date, with the credential's ParseOptions") {
    body = "opaque-plain-text-token-0123456789";
    HttpTokenSourceOptions plain = o;
    plain.response = HttpTokenResponse::plain_text();
    HttpTokenSource plain_source(io.get_executor(), plain);
    const auto service = whole_seconds(system_clock::now() + 2h);
    date = detail::format_http_date(service);
    ParseOptions parse;
    parse.fallback_lifetime = 7min;
    const auto r = run_fetch(io, plain_source.fetcher(), fixed_now, parse);
    REQUIRE_FALSE(r.error);
    CHECK(r.token.expires_on == service + 7min);
    date.clear();
    CHECK(run_fetch(io, plain_source.fetcher(), fixed_now, parse).token.expires_on == credential_now + 7min);
  }
  SUBCASE("async_fetch (no credential) keeps the local clock") {
    date = detail::format_http_date(system_clock::now() + 2h);
    const auto before = system_clock::now();
    auto r = run_op<AccessToken>(io, [&](auto h) { source.async_fetch(std::move(h)); });
    REQUIRE_FALSE(r.error);
    CHECK(r.value.expires_on >= before + 600s);
    CHECK(r.value.expires_on <= system_clock::now() + 600s);
  }
}

TEST_CASE("skew: the Entra fetcher counts expires_in from the authority's Date") {
  TokenServer server(shifted_server(2h));
  server.start();
  boost::asio::io_context io;
  auto eo = entra_options_for(server);
  entra::ClientSecretSource source(io.get_executor(), eo);
  const auto r = run_fetch(io, source.fetcher(), [] { return system_clock::now(); });
  REQUIRE_FALSE(r.error);
  REQUIRE(r.reports.size() == 1);
  CHECK(std::chrono::abs(r.reports[0] - (system_clock::now() + 2h)) < 3s);
  CHECK(r.token.expires_on == r.reports[0] + server.options().entra_token_lifetime);

  eo.client_secret = "the-wrong-secret-value-XYZ";  // a 401 reports its Date as well
  entra::ClientSecretSource wrong(io.get_executor(), eo);
  const auto denied = run_fetch(io, wrong.fetcher(), [] { return system_clock::now(); });
  CHECK(as_error(denied.error).http_status() == 401);
  CHECK(denied.reports.size() == 1);
  CHECK(denied.reports_before_completion == 1);
}

TEST_CASE("skew: the ACS identity fetcher signs x-ms-date in service time and reports every Date") {
  TokenServer server(shifted_server(2h));  // the service's clock is 2 h ahead of ours
  server.start();
  boost::asio::io_context io;
  acs::IdentityClient client(io.get_executor(), acs::ConnectionString::parse(server.acs_connection_string()), {});
  auto setup = identity_client_ahead(io, server, 2h);
  auto user = run_op<std::string>(io, [&](auto h) { setup.async_create_user(std::move(h)); });
  REQUIRE_FALSE(user.error);
  const auto fetcher = client.fetcher(user.value, {acs::TokenScope::chat});

  // The offset is not known yet: signed with the local clock, the request is refused (its
  // x-ms-date is 2 h off), and the refusal's Date is reported before the fetch fails.
  const auto unknown = run_fetch(io, fetcher, [] { return system_clock::now(); });
  CHECK(as_error(unknown.error).http_status() == 401);
  REQUIRE(unknown.reports.size() == 1);
  CHECK(unknown.reports_before_completion == 1);
  CHECK(std::chrono::abs(unknown.reports[0] - (system_clock::now() + 2h)) < 3s);
  CHECK(server.request_count("acs_unauthorized") == 1);

  // Once the credential knows the offset, FetchContext::now() is service time: accepted.
  const auto known = run_fetch(io, fetcher, [] { return system_clock::now() + 2h; });
  REQUIRE_FALSE(known.error);
  CHECK(known.reports.size() == 1);
  CHECK(std::chrono::abs(known.token.expires_on - (known.reports[0] + 60min)) < 2s);
  CHECK(server.request_count("acs_issue_token") == 1);

  // IdentityClientOptions::clock, when set, is the signing clock in a fetch too.
  const auto explicit_clock = run_fetch(io, setup.fetcher(user.value, {acs::TokenScope::chat}),
                                        [] { return system_clock::now(); });
  CHECK_FALSE(explicit_clock.error);
  CHECK(server.request_count("acs_issue_token") == 2);
}

TEST_CASE("skew: the Web PubSub :generateToken fetcher reports the service's Date") {
  TokenServer server(shifted_server(-2h));
  server.start();
  boost::asio::io_context io;
  entra::ClientSecretSource entra_source(io.get_executor(), entra_options_for(server));
  auto entra_credential = on_demand_credential(io, entra_source.fetcher());
  webpubsub::TokenApiClient api(io.get_executor(), server.base_url(), "chat", entra_credential);
  webpubsub::ClientTokenOptions o;
  o.lifetime = 30min;
  const auto r = run_fetch(io, api.fetcher(o), [] { return system_clock::now(); });
  REQUIRE_FALSE(r.error);
  REQUIRE(r.reports.size() == 1);
  CHECK(std::chrono::abs(r.reports[0] - (system_clock::now() - 2h)) < 3s);
  CHECK(std::chrono::abs(r.token.expires_on - (r.reports[0] + 30min)) < 2s);  // the JWT's exp, service time
  entra_credential->close();
  io.restart();
  io.poll();
}

// ---------------------------------------------------------------------------------------
// Through a TokenCredential: the offset is learned and applied (R16)

namespace {

TokenHandle get_token(boost::asio::io_context& io, TokenCredential& credential, std::exception_ptr* error = nullptr) {
  std::exception_ptr e;
  TokenHandle token;
  bool done = false;
  credential.async_get_token([&](std::exception_ptr x, TokenHandle t) {
    e = x;
    token = std::move(t);
    done = true;
  });
  credkit::test::run_until_done(io, done);
  if (error) {
    *error = e;
  } else if (e) {
    FAIL(as_error(e).what());
  }
  return token;
}

}  // namespace

TEST_CASE("skew: a credential over HttpTokenSource learns a +-2 h offset from Date and judges tokens by it") {
  for (auto shift : {2h, -2h}) {
    CAPTURE(shift.count());
    TokenServer server(shifted_server(shift));  // 620 s tokens in the server's clock
    server.start();
    boost::asio::io_context io;
    HttpTokenSourceOptions o;
    o.method = "POST";
    o.url = server.base_url() + "/api/token";
    o.body = R"({"user":"alice"})";
    o.response = HttpTokenResponse::acs();
    HttpTokenSource source(o);
    TokenCredentialOptions co;
    co.fetcher = source.fetcher();
    auto credential = TokenCredential::create(io.get_executor(), co);
    const auto token = get_token(io, *credential);  // 2 h behind: no token_expired_on_arrival
    const auto offset = credential->clock_offset();
    CHECK(std::chrono::abs(offset - std::chrono::nanoseconds(shift)) < 3s);
    // In service time the token has its whole 620 s ahead.
    const auto left = token.expires_on() - (system_clock::now() + offset);
    CHECK(left > 615s);
    CHECK(left <= 621s);
    // A fresh cached token: no second fetch.
    get_token(io, *credential);
    CHECK(server.request_count("api_token") == 1);
    credential->close();
    io.restart();
    io.poll();
  }
}

TEST_CASE("skew: an ACS identity credential 2 h behind the service authenticates once the 401 taught it the offset") {
  TokenServer server(shifted_server(2h));
  server.start();
  boost::asio::io_context io;
  auto setup = identity_client_ahead(io, server, 2h);
  auto user = run_op<std::string>(io, [&](auto h) { setup.async_create_user(std::move(h)); });
  REQUIRE_FALSE(user.error);

  acs::IdentityClient client(io.get_executor(), acs::ConnectionString::parse(server.acs_connection_string()), {});
  TokenCredentialOptions co;
  co.mode = RefreshMode::on_demand;
  co.fetcher = client.fetcher(user.value, {acs::TokenScope::chat});
  auto credential = TokenCredential::create(io.get_executor(), co);
  std::exception_ptr error;
  get_token(io, *credential, &error);
  CHECK(as_error(error).http_status() == 401);  // signed before the offset was known
  CHECK(std::chrono::abs(credential->clock_offset() - std::chrono::nanoseconds(2h)) < 3s);
  // After the failure window (R10: min_refresh_interval, 1 s), the next caller's fetch is
  // signed in service time.
  std::this_thread::sleep_for(1100ms);
  const auto token = get_token(io, *credential);
  CHECK(static_cast<bool>(token));
  CHECK(server.request_count("acs_unauthorized") == 1);
  CHECK(server.request_count("acs_issue_token") == 1);
  credential->close();
  io.restart();
  io.poll();
}

TEST_CASE("skew: a Date the credential refuses as implausible is not the base of expires_in (R16)") {
  // A token service whose clock is 500 days behind (beyond max_clock_skew, 400 days): the
  // credential ignores its Date, and the Entra fetcher counts expires_in from the credential's
  // own service time. Counting from the refused Date made every token expire on arrival.
  TokenServer server(shifted_server(-std::chrono::hours(24 * 500)));
  server.start();
  boost::asio::io_context io;
  entra::ClientSecretSource source(io.get_executor(), entra_options_for(server));
  auto credential = on_demand_credential(io, source.fetcher());
  const auto token = get_token(io, *credential);  // before: token_expired_on_arrival
  CHECK(credential->clock_offset() == 0s);
  CHECK(token.expires_on() > system_clock::now() + server.options().entra_token_lifetime - 1min);
  credential->close();
}
