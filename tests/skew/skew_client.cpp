// skew_client — the client half of the clock-skew integration test (tests/skew/run_skew_test.sh).
//
// Runs with its wall clock shifted by libfaketime (`faketime -f '+2h'`, monotonic clock not
// faked) against the real token_server in another, unshifted process. A proactive
// TokenCredential with an HttpTokenSource fetcher (POST /api/token, ACS-style answers) is asked
// for a token every 100 ms for --duration seconds of real time. The true service time is
// local wall clock - shift (the shift is given on the command line), so the client checks:
//   - every get_token succeeds (no token_expired_on_arrival or any other error);
//   - clock_offset() is -shift within 3 s (learned from the responses' Date headers);
//   - each proactive refresh starts refresh_before_expiry (10 min) before the token's expiry,
//     in service time (the default ACS policy), within 5 s; at least one happens;
//   - each token arrives with about --lifetime seconds left in service time;
//   - no handed-out token is expired in service time, or below the minimum validity.
// It prints its figures and exits 0, or 1 on any violation (2 on bad arguments).
//
//   skew_client --url http://127.0.0.1:PORT --shift SECONDS [--duration 34] [--lifetime 620]
//               [--no-correction]   (clock_skew_tolerance = max: shows what the checks catch)
#include <credkit/credkit.hpp>
#include <credkit/sources/http_token_source.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono;
using namespace std::chrono_literals;

namespace {

double secs(nanoseconds d) { return duration<double>(d).count(); }

struct Args {
  std::string url;
  long long shift_s = 0;
  long long duration_s = 34;
  long long lifetime_s = 620;
  bool no_correction = false;  // negative control: the credential ignores the service's clock
};

Args parse_args(int argc, char** argv) {
  Args a;
  bool have_shift = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--no-correction") {
      a.no_correction = true;
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
    const std::string value = argv[++i];
    if (arg == "--url") {
      a.url = value;
    } else if (arg == "--shift") {
      a.shift_s = std::stoll(value);
      have_shift = true;
    } else if (arg == "--duration") {
      a.duration_s = std::stoll(value);
    } else if (arg == "--lifetime") {
      a.lifetime_s = std::stoll(value);
    } else {
      throw std::invalid_argument("unknown option " + arg);
    }
  }
  if (a.url.empty() || !have_shift) throw std::invalid_argument("--url and --shift are required");
  if (a.duration_s < 25 || a.duration_s > 300) throw std::invalid_argument("--duration must be 25 to 300 s");
  if (a.lifetime_s <= 600 || a.lifetime_s > 3600) throw std::invalid_argument("--lifetime must be 601 to 3600 s");
  return a;
}

// What the credential did, recorded by its listeners and the fetcher wrapper (they run on the
// credential's thread) and by the main thread's hand-outs.
struct Record {
  std::mutex mutex;
  std::map<std::string, int> fetches;           // by reason
  std::vector<double> refresh_leads;            // will_expire: expiry - service now, seconds
  std::vector<double> arrival_lifetimes;        // refreshed: expiry - service now, seconds
  std::vector<double> refresh_after_issue;      // will_expire: seconds since that token arrived
  std::vector<std::string> failures;            // refresh_failed messages
  std::map<std::string, system_clock::time_point> arrived;  // token -> service time of arrival
};

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "skew_client: " << e.what()
              << "\nusage: skew_client --url http://127.0.0.1:PORT --shift SECONDS [--duration S] [--lifetime S]\n";
    return 2;
  }
  const seconds shift(args.shift_s);
  // The token service's clock: this process's (shifted) wall clock minus the shift.
  auto service_now = [shift] { return system_clock::now() - shift; };
  const std::string tag = std::string("skew_client[") + (args.shift_s >= 0 ? "+" : "") +
                          std::to_string(args.shift_s) + " s]";

  Record rec;
  std::vector<std::string> violations;
  // Declared first, destroyed last: the source's HTTP client binds to it on first use.
  boost::asio::io_context io;

  credkit::HttpTokenSourceOptions so;
  so.method = "POST";
  so.url = args.url + "/api/token";
  so.body = R"({"user":"skew-client"})";
  so.headers = {{"Content-Type", "application/json"}};
  so.response = credkit::HttpTokenResponse::acs();
  credkit::HttpTokenSource source(so);

  credkit::TokenCredentialOptions co;  // proactive, default (ACS) policy: refresh 10 min before expiry
  if (args.no_correction) co.policy.clock_skew_tolerance = credkit::RefreshPolicy::duration::max();
  co.fetcher = credkit::Fetcher::async(
      [inner = source.fetcher(), &rec](credkit::FetchContext ctx, credkit::FetchCompletion done) {
        {
          std::lock_guard lock(rec.mutex);
          ++rec.fetches[std::string(credkit::to_string(ctx.reason()))];
        }
        inner(std::move(ctx), std::move(done));
      });

  auto work = boost::asio::make_work_guard(io);
  auto credential = credkit::TokenCredential::create(io.get_executor(), co);
  auto on_will_expire = credential->on_token_will_expire([&](credkit::TokenCredential&, const credkit::TokenEvent& e) {
    if (!e.token) return;
    const auto now = service_now();
    std::lock_guard lock(rec.mutex);
    rec.refresh_leads.push_back(secs(e.token.expires_on() - now));
    if (auto it = rec.arrived.find(e.token.token()); it != rec.arrived.end()) {
      rec.refresh_after_issue.push_back(secs(now - it->second));
    }
  });
  auto on_refreshed = credential->on_token_refreshed([&](credkit::TokenCredential&, const credkit::TokenEvent& e) {
    if (!e.token) return;
    const auto now = service_now();
    std::lock_guard lock(rec.mutex);
    rec.arrival_lifetimes.push_back(secs(e.token.expires_on() - now));
    rec.arrived[e.token.token()] = now;
  });
  auto on_failed = credential->on_refresh_failed([&](credkit::TokenCredential&, const credkit::TokenEvent& e) {
    std::lock_guard lock(rec.mutex);
    rec.failures.push_back(credkit::message_of(e.error));
  });
  std::thread runner([&io] { io.run(); });

  // Hand-outs: every 100 ms for the duration (real time: the monotonic clock is not shifted).
  int handouts = 0, errors = 0, expired_in_service_time = 0, below_min_validity = 0;
  std::map<std::string, int> error_codes;
  double min_left = 1e18;
  const auto start = steady_clock::now();
  const auto end = start + seconds(args.duration_s);
  while (steady_clock::now() < end) {
    try {
      const auto token = credential->get_token(15s);
      const double left = secs(token.expires_on() - service_now());
      ++handouts;
      min_left = std::min(min_left, left);
      if (left <= 0) ++expired_in_service_time;
      if (left < 110) ++below_min_validity;  // R3: handed out only with > min(2 min, L/2) left (1 s Date rounding)
    } catch (const credkit::Error& e) {
      ++errors;
      ++error_codes[e.code().message()];
      if (errors <= 3) std::cerr << tag << ": get_token failed: " << e.what() << "\n";
    }
    std::this_thread::sleep_for(100ms);
  }
  const auto offset = credential->clock_offset();
  credential->close();
  work.reset();
  runner.join();

  std::lock_guard lock(rec.mutex);
  int fetches = 0;
  for (auto& [reason, n] : rec.fetches) fetches += n;
  const int proactive = rec.fetches.count("proactive") ? rec.fetches["proactive"] : 0;

  // ---- figures ----
  std::printf("%s: local clock shifted by %+lld s; service time = local - shift\n", tag.c_str(), args.shift_s);
  std::printf("%s: clock_offset %+.1f s (expected %+lld s +- 3)\n", tag.c_str(), secs(offset), -args.shift_s);
  std::printf("%s: fetches %d (", tag.c_str(), fetches);
  bool first = true;
  for (auto& [reason, n] : rec.fetches) {
    std::printf("%s%s %d", first ? "" : ", ", reason.c_str(), n);
    first = false;
  }
  std::printf("), hand-outs %d, get_token errors %d, refresh failures %zu\n", handouts, errors, rec.failures.size());
  for (auto& [code, n] : error_codes) std::printf("%s:   error '%s' x %d\n", tag.c_str(), code.c_str(), n);
  for (auto& f : rec.failures) std::printf("%s:   refresh failed: %s\n", tag.c_str(), f.c_str());
  std::printf("%s: token lifetime on arrival (service time):", tag.c_str());
  for (double d : rec.arrival_lifetimes) std::printf(" %.1f s", d);
  std::printf("\n%s: proactive refresh before expiry (service time):", tag.c_str());
  for (double d : rec.refresh_leads) std::printf(" %.1f s", d);
  std::printf(" (expected 600 s +- 5)\n%s: proactive refresh after arrival:", tag.c_str());
  for (double d : rec.refresh_after_issue) std::printf(" %.1f s", d);
  std::printf("\n%s: least validity left at hand-out %.1f s; expired-in-service-time hand-outs %d; "
              "below minimum validity %d\n",
              tag.c_str(), handouts ? min_left : 0.0, expired_in_service_time, below_min_validity);

  // ---- checks ----
  auto violate = [&](const std::string& what) { violations.push_back(what); };
  if (errors > 0) {
    violate(std::to_string(errors) + " get_token call(s) failed" +
            (error_codes.count(credkit::make_error_code(credkit::errc::token_expired_on_arrival).message())
                 ? " (token_expired_on_arrival: the token was judged by the shifted local clock)"
                 : ""));
  }
  if (!rec.failures.empty()) violate(std::to_string(rec.failures.size()) + " refresh(es) failed");
  if (std::abs(secs(offset) + static_cast<double>(args.shift_s)) > 3.0) {
    violate("clock_offset is " + std::to_string(secs(offset)) + " s, expected " + std::to_string(-args.shift_s) +
            " s (+- 3)");
  }
  if (handouts == 0) violate("no token was handed out");
  if (expired_in_service_time > 0) violate(std::to_string(expired_in_service_time) + " hand-out(s) expired in service time");
  if (below_min_validity > 0) violate(std::to_string(below_min_validity) + " hand-out(s) below the minimum validity");
  if (proactive < 1 || rec.refresh_leads.empty()) {
    violate("no proactive refresh in " + std::to_string(args.duration_s) +
            " s (expected one 10 min before expiry, about " + std::to_string(args.lifetime_s - 600) +
            " s after each token arrived)");
  }
  for (double lead : rec.refresh_leads) {
    if (std::abs(lead - 600.0) > 5.0) violate("a proactive refresh started " + std::to_string(lead) + " s before expiry, expected 600 +- 5");
  }
  for (double life : rec.arrival_lifetimes) {
    if (std::abs(life - static_cast<double>(args.lifetime_s)) > 5.0) {
      violate("a token arrived with " + std::to_string(life) + " s left in service time, expected " +
              std::to_string(args.lifetime_s) + " +- 5");
    }
  }
  // One initial fetch plus one per (lifetime - 600) s: no refresh storm.
  const long long expected_max = 2 + args.duration_s / std::max<long long>(1, args.lifetime_s - 600);
  if (fetches > expected_max) violate(std::to_string(fetches) + " fetches, expected at most " + std::to_string(expected_max));

  for (auto& v : violations) std::printf("%s: VIOLATION: %s\n", tag.c_str(), v.c_str());
  std::printf("%s: %s\n", tag.c_str(), violations.empty() ? "PASS" : "FAIL");
  std::fflush(stdout);  // before the destructors: a sanitizer report must not swallow the figures
  return violations.empty() ? 0 : 1;
}
