// The data-driven conformance suite: runs every tests/conformance/*.json scenario (format:
// docs/conformance.md) against a TokenCredential in virtual time, one doctest subcase per file,
// and compares fetch starts, what every caller got, the events and the clock offset exactly.
#include <doctest/doctest.h>

#include <credkit/credkit.hpp>
#include <credkit/testing/manual_clock.hpp>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef CREDKIT_CONFORMANCE_DIR
#error "CREDKIT_CONFORMANCE_DIR must name the folder of the scenario files"
#endif

namespace {

namespace asio = boost::asio;
using json = nlohmann::json;
using ns = std::chrono::nanoseconds;
using ms = std::chrono::milliseconds;
using time_point = std::chrono::system_clock::time_point;
using credkit::errc;

// A scenario error (bad file), as opposed to a mismatch.
struct BadScenario : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The value of the two that `text` names; otherwise a BadScenario "<field>: <first> or <second>".
template <typename Enum>
Enum one_of(const std::string& text, const std::string& field, std::pair<const char*, Enum> first,
            std::pair<const char*, Enum> second) {
  if (text == first.first) return first.second;
  if (text == second.first) return second.second;
  throw BadScenario(field + ": " + first.first + " or " + second.first);
}

// ---------------------------------------------------------------------------------------
// Small helpers

ns ms_to_ns(double v) { return ns(static_cast<ns::rep>(std::llround(v * 1e6))); }

std::string fmt_ms(ns v) {
  // Whole milliseconds print as integers; anything finer with up to 6 decimals.
  const auto r = v.count();
  std::ostringstream os;
  if (r % 1'000'000 == 0) {
    os << r / 1'000'000;
  } else {
    os << std::fixed << std::setprecision(6) << static_cast<long double>(r) / 1e6L;
    std::string s = os.str();
    while (!s.empty() && s.back() == '0') s.pop_back();
    return s;
  }
  return os.str();
}

// A time expectation: a number (exact) or [min, max] (inclusive).
struct TimeSpec {
  ns lo{}, hi{};
  bool matches(ns v) const { return lo <= v && v <= hi; }
  std::string str() const { return lo == hi ? fmt_ms(lo) : "[" + fmt_ms(lo) + "," + fmt_ms(hi) + "]"; }
};

TimeSpec time_spec(const json& j, const std::string& what) {
  if (j.is_number()) {
    const ns v = ms_to_ns(j.get<double>());
    return {v, v};
  }
  if (j.is_array() && j.size() == 2 && j[0].is_number() && j[1].is_number()) {
    TimeSpec t{ms_to_ns(j[0].get<double>()), ms_to_ns(j[1].get<double>())};
    if (t.hi < t.lo) throw BadScenario(what + ": range [min,max] with max < min");
    return t;
  }
  throw BadScenario(what + ": expected a number of ms or [min,max]");
}

void check_keys(const json& j, std::initializer_list<const char*> allowed, const std::string& where) {
  if (!j.is_object()) throw BadScenario(where + ": expected an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return it.key() == a; })) {
      throw BadScenario(where + ": unknown field \"" + it.key() + "\"");
    }
  }
}

const std::map<std::string, errc>& errc_names() {
  static const std::map<std::string, errc> names = {
      {"invalid_token", errc::invalid_token},
      {"token_expired_on_arrival", errc::token_expired_on_arrival},
      {"no_token", errc::no_token},
      {"fetch_failed", errc::fetch_failed},
      {"fetch_timeout", errc::fetch_timeout},
      {"fetcher_abandoned", errc::fetcher_abandoned},
      {"credential_closed", errc::credential_closed},
      {"would_deadlock", errc::would_deadlock},
      {"cancelled", errc::cancelled},
      {"invalid_argument", errc::invalid_argument},
      {"invalid_connection_string", errc::invalid_connection_string},
      {"insecure_url", errc::insecure_url},
      {"http_status", errc::http_status},
      {"rate_limited", errc::rate_limited},
      {"network_error", errc::network_error},
      {"timeout", errc::timeout},
      {"tls_error", errc::tls_error},
      {"invalid_response", errc::invalid_response},
      {"response_too_large", errc::response_too_large},
      {"cache_corrupt", errc::cache_corrupt},
      {"cache_wrong_key", errc::cache_wrong_key},
      {"cache_unavailable", errc::cache_unavailable},
      {"cache_io_error", errc::cache_io_error},
      {"crypto_error", errc::crypto_error},
      {"keychain_unavailable", errc::keychain_unavailable},
      {"keychain_corrupt", errc::keychain_corrupt},
  };
  return names;
}

std::string code_name(const std::error_code& ec) {
  if (!ec) return "";
  if (ec.category() == credkit::category()) {
    for (const auto& [name, e] : errc_names()) {
      if (static_cast<int>(e) == ec.value()) return name;
    }
  }
  return ec.category().name() + std::string(":") + std::to_string(ec.value());
}

errc parse_errc(const json& j, const std::string& where) {
  const auto name = j.get<std::string>();
  const auto it = errc_names().find(name);
  if (it == errc_names().end()) throw BadScenario(where + ": unknown error code \"" + name + "\"");
  return it->second;
}

ms policy_ms(const json& j, const std::string& where) {
  if (j.is_string() && j.get<std::string>() == "max") return ms::max();
  if (j.is_number_integer()) return ms(j.get<std::int64_t>());
  throw BadScenario(where + ": expected whole milliseconds or \"max\"");
}

// ---------------------------------------------------------------------------------------
// The records of one run

struct FetchRecord {
  ns at{};
  std::string reason;
  int attempt = 0;
  std::optional<ns> cancelled_at;
};

struct ResultRecord {
  ns at{};
  std::string kind;   // "token", "error", "returned", "pending"
  std::string value;  // token id, error code name, returned value
  std::string str() const {
    if (kind == "pending") return "pending (never completed)";
    return kind + "=" + value + " at " + fmt_ms(at);
  }
};

struct EventRecord {
  ns at{};
  std::string kind, token, reason, code;
  int attempt = 0;
  std::optional<ns> next_retry;
  std::string str() const {
    std::string s = kind + " at " + fmt_ms(at);
    if (!token.empty()) s += " token=" + token;
    if (kind != "expired") s += " reason=" + reason;
    if (kind == "refresh_failed") {
      s += " code=" + code + " attempt=" + std::to_string(attempt) +
           " next_retry=" + (next_retry ? fmt_ms(*next_retry) : std::string("none"));
    }
    return s;
  }
};

// The state the fetcher, listeners and completions share with the runner.
struct Shared {
  std::shared_ptr<credkit::testing::ManualClock> clock;
  time_point t0{};
  ns jumped{0};          // total wall-clock jumps so far
  ns service_offset{0};  // the token service's clock minus the local wall clock
  bool recording = true;
  int harness_timers = 0;  // pending ManualClock waits that belong to the harness (fetch latencies)

  std::map<std::string, std::string> id_of_string;  // token string -> id
  std::map<std::string, credkit::AccessToken> token_of_id;

  std::vector<FetchRecord> fetches;
  std::map<std::string, ResultRecord> results;
  std::vector<std::string> call_order;  // callers in the order they acted
  std::vector<EventRecord> events;
  std::vector<std::string> problems;  // double completions and the like

  std::vector<std::shared_ptr<credkit::FetchCompletion>> held;  // hung fetches
  std::vector<std::unique_ptr<credkit::Timer>> timers;          // latency timers

  ns elapsed() const { return clock->elapsed(); }
  time_point service_now() const { return clock->now() + service_offset; }
  // A local wall-clock time expressed on the scenario timeline (elapsed time since start).
  ns timeline_of_local(time_point local) const { return local - t0 - jumped; }

  std::string id_of(const credkit::TokenHandle& h) const {
    if (!h) return "";
    const auto it = id_of_string.find(h.token());
    return it == id_of_string.end() ? "?" + h.token() : it->second;
  }
  void register_token(const std::string& id, const credkit::AccessToken& t) {
    id_of_string[t.token] = id;
    token_of_id[id] = t;
  }
  void record_result(const std::string& caller, ResultRecord r) {
    if (!recording) return;
    if (results.count(caller)) {
      problems.push_back("caller " + caller + " completed twice: " + results[caller].str() + ", then " + r.str());
      return;
    }
    results[caller] = std::move(r);
  }
};

// Builds a token as the token service would: expiry and issue time from the spec, counted on
// the service clock.
credkit::AccessToken make_token(const Shared& sh, const std::string& string, const json& spec,
                                const std::string& where) {
  credkit::AccessToken t;
  t.token = string + "-conformance";  // tokens are at least 16 characters (check_token_text)
  const time_point now = sh.service_now();
  const int forms = int(spec.contains("lifetime_ms")) + int(spec.contains("expires_at_ms")) +
                    int(spec.contains("expired_ms_ago")) + int(spec.contains("expires"));
  if (forms != 1) throw BadScenario(where + ": give exactly one of lifetime_ms, expires_at_ms, expired_ms_ago, expires");
  if (spec.contains("lifetime_ms")) t.expires_on = now + ms_to_ns(spec["lifetime_ms"].get<double>());
  if (spec.contains("expires_at_ms")) t.expires_on = sh.t0 + ms_to_ns(spec["expires_at_ms"].get<double>());
  if (spec.contains("expired_ms_ago")) t.expires_on = now - ms_to_ns(spec["expired_ms_ago"].get<double>());
  if (spec.contains("expires")) {
    if (spec["expires"] != "max") throw BadScenario(where + ": expires must be \"max\"");
    t.expires_on = time_point::max();
  }
  if (spec.contains("issued_ms_ago")) t.issued_at = now - ms_to_ns(spec["issued_ms_ago"].get<double>());
  if (spec.contains("issued_at_ms")) t.issued_at = sh.t0 + ms_to_ns(spec["issued_at_ms"].get<double>());
  return t;
}

// ---------------------------------------------------------------------------------------
// One scenario

class Scenario {
 public:
  Scenario(json s, std::string file) : s_(std::move(s)), file_(std::move(file)) {}

  // Runs the scenario; returns an empty string when everything matched, else the diff.
  std::string run() {
    validate_top();
    sh_ = std::make_shared<Shared>();
    sh_->clock = std::make_shared<credkit::testing::ManualClock>();
    sh_->t0 = sh_->clock->now();
    sh_->service_offset = ms_to_ns(s_.value("service_offset_ms", 0.0));
    script_ = s_.value("fetches", json::array());
    fetch_default_ = s_.value("fetch_default", json());

    auto options = make_options();
    const bool will_listener = s_["options"].value("will_expire_listener", static_cast<bool>(options.fetcher));
    cred_ = credkit::TokenCredential::create(io_.get_executor(), std::move(options));
    subscribe(will_listener);

    const auto steps = expand_steps();
    const ns end = ms_to_ns(s_.at("end_ms").get<double>());
    ns now{0};
    for (const auto& st : steps) {
      if (st.at < now) throw BadScenario("steps must not go back in time");
      sh_->clock->run_for(io_, st.at - now);
      now = st.at;
      perform(st);
      credkit::testing::ManualClock::drain(io_);
    }
    if (end < now) throw BadScenario("end_ms is before the last step");
    sh_->clock->run_for(io_, end - now);
    const ns offset = cred_->clock_offset();
    sh_->recording = false;

    std::string diff = compare(offset);

    // Tear down: close, let every completion run, drop hung fetches, drain again.
    cred_->close();
    credkit::testing::ManualClock::drain(io_);
    sh_->held.clear();
    credkit::testing::ManualClock::drain(io_);
    subs_.clear();
    cred_.reset();
    credkit::testing::ManualClock::drain(io_);
    sh_->timers.clear();
    return diff;
  }

 private:
  struct Step {
    ns at{};
    json spec;
    std::string caller;
    std::size_t order = 0;
  };

  void validate_top() {
    check_keys(s_,
               {"name", "rules", "description", "differs_from_acs", "options", "service_offset_ms", "fetches",
                "fetch_default", "steps", "end_ms", "expect"},
               "scenario");
    for (const char* k : {"name", "rules", "description", "options", "end_ms", "expect"}) {
      if (!s_.contains(k)) throw BadScenario(std::string("scenario: missing \"") + k + "\"");
    }
    const auto stem = std::filesystem::path(file_).stem().string();
    if (s_["name"] != stem) throw BadScenario("name \"" + s_["name"].get<std::string>() + "\" differs from the file name");
  }

  credkit::TokenCredentialOptions make_options() {
    const json& o = s_["options"];
    check_keys(o, {"mode", "fetcher", "will_expire_listener", "random_seed", "initial_token", "policy"}, "options");
    credkit::TokenCredentialOptions opt;
    opt.clock = sh_->clock;
    opt.random_seed = o.value("random_seed", std::uint64_t{7});
    opt.mode = one_of(o.value("mode", std::string("proactive")), "options.mode",
                      std::pair{"proactive", credkit::RefreshMode::proactive},
                      std::pair{"on_demand", credkit::RefreshMode::on_demand});
    if (o.contains("policy")) opt.policy = make_policy(o["policy"]);
    if (o.contains("initial_token")) {
      const json& it = o["initial_token"];
      check_keys(it, {"expires_in_ms", "expires_at_ms", "issued_ms_ago", "issued_at_ms"}, "options.initial_token");
      json spec = it;
      if (spec.contains("expires_in_ms")) {
        spec["lifetime_ms"] = spec["expires_in_ms"];
        spec.erase("expires_in_ms");
      }
      auto t = make_token(*sh_, "tok-initial", spec, "options.initial_token");
      sh_->register_token("initial", t);
      opt.initial_token = t;
    }
    if (o.value("fetcher", true)) opt.fetcher = make_fetcher();
    return opt;
  }

  static credkit::RefreshPolicy make_policy(const json& p) {
    check_keys(p,
               {"schedule", "refresh_before_expiry_ms", "lifetime_fraction", "min_refresh_interval_ms", "jitter",
                "min_validity_ms", "retry_initial_ms", "retry_max_ms", "wake_check_interval_ms", "fetch_timeout_ms",
                "clock_skew_tolerance_ms", "max_clock_skew_ms"},
               "options.policy");
    credkit::RefreshPolicy r;
    if (p.contains("schedule")) {
      r.schedule = one_of(p["schedule"].get<std::string>(), "policy.schedule",
                          std::pair{"before_expiry", credkit::RefreshSchedule::before_expiry},
                          std::pair{"lifetime_fraction", credkit::RefreshSchedule::lifetime_fraction});
    }
    auto dur = [&](const char* key, ms& field) {
      if (p.contains(key)) field = policy_ms(p[key], std::string("policy.") + key);
    };
    dur("refresh_before_expiry_ms", r.refresh_before_expiry);
    dur("min_refresh_interval_ms", r.min_refresh_interval);
    dur("min_validity_ms", r.min_validity);
    dur("retry_initial_ms", r.retry_initial);
    dur("retry_max_ms", r.retry_max);
    dur("wake_check_interval_ms", r.wake_check_interval);
    dur("fetch_timeout_ms", r.fetch_timeout);
    dur("clock_skew_tolerance_ms", r.clock_skew_tolerance);
    dur("max_clock_skew_ms", r.max_clock_skew);
    if (p.contains("lifetime_fraction")) r.lifetime_fraction = p["lifetime_fraction"].get<double>();
    if (p.contains("jitter")) r.jitter = p["jitter"].get<double>();
    return r;
  }

  json fetch_spec(std::size_t index) const {
    if (index < script_.size()) return script_[index];
    if (!fetch_default_.is_null()) return fetch_default_;
    // Unscripted: a plain 1 h token; the fetch list comparison reports the extra fetch.
    return json{{"outcome", "success"}, {"lifetime_ms", 3600000}};
  }

  credkit::Fetcher make_fetcher() {
    std::weak_ptr<Shared> weak = sh_;
    auto script = [this](std::size_t i) { return fetch_spec(i); };
    return credkit::Fetcher::async([weak, script, ex = io_.get_executor()](credkit::FetchContext ctx,
                                                                           credkit::FetchCompletion done) {
      auto sh = weak.lock();
      if (!sh) return;
      const std::size_t index = sh->fetches.size();
      const std::string id = "fetch" + std::to_string(index + 1);
      const std::string where = "fetches[" + std::to_string(index) + "]";
      sh->fetches.push_back({sh->elapsed(), std::string(credkit::to_string(ctx.reason())), ctx.attempt(), {}});
      ctx.cancellation_slot().assign([weak, index](asio::cancellation_type) {
        if (auto s = weak.lock()) {
          if (s->recording && !s->fetches[index].cancelled_at) s->fetches[index].cancelled_at = s->elapsed();
        }
      });
      const json spec = script(index);
      check_keys(spec,
                 {"latency_ms", "outcome", "lifetime_ms", "expires_at_ms", "expired_ms_ago", "expires", "issued_ms_ago",
                  "issued_at_ms", "same_as", "code", "retryable", "retry_after_ms", "http_status",
                  "service_time_offset_ms"},
                 where);
      auto completion = std::make_shared<credkit::FetchCompletion>(std::move(done));
      const std::string outcome = spec.value("outcome", std::string("success"));
      if (outcome == "hang") {
        sh->held.push_back(completion);
        return;
      }
      auto finish = [weak, ctx, completion, spec, id, where, outcome] {
        auto sh = weak.lock();
        if (!sh) return;
        if (spec.contains("service_time_offset_ms")) {
          ctx.report_service_time(sh->clock->now() + ms_to_ns(spec["service_time_offset_ms"].get<double>()));
        }
        if (outcome == "success") {
          auto t = make_token(*sh, "tok-" + id, spec, where);
          sh->register_token(id, t);
          completion->succeed(std::move(t));
        } else if (outcome == "same_token") {
          const auto ref = spec.at("same_as").get<std::string>();
          const auto it = sh->token_of_id.find(ref);
          if (it == sh->token_of_id.end()) throw BadScenario(where + ": same_as names no token seen so far: " + ref);
          completion->succeed(it->second);
        } else if (outcome == "expired") {
          json e = spec;
          if (!e.contains("expired_ms_ago")) e["expired_ms_ago"] = 0;
          auto t = make_token(*sh, "tok-" + id, e, where);
          sh->register_token(id, t);
          completion->succeed(std::move(t));
        } else if (outcome == "empty") {
          completion->succeed(credkit::AccessToken{"", sh->service_now() + std::chrono::hours(1), {}});
        } else if (outcome == "failure") {
          credkit::ErrorDetails details;
          const bool retryable = spec.value("retryable", true);
          details.retryable = retryable;
          if (spec.contains("retry_after_ms")) details.retry_after = ms(spec["retry_after_ms"].get<std::int64_t>());
          details.http_status = spec.value("http_status", 0);
          const errc code = spec.contains("code") ? parse_errc(spec["code"], where)
                                                  : (retryable ? errc::network_error : errc::http_status);
          completion->fail(std::make_exception_ptr(credkit::Error(code, "scripted failure of " + id, details)));
        } else {
          throw BadScenario(where + ": unknown outcome \"" + outcome + "\"");
        }
      };
      const ns latency = ms_to_ns(spec.value("latency_ms", 0.0));
      if (latency <= ns::zero()) {
        finish();
        return;
      }
      auto timer = sh->clock->make_timer(ex);
      ++sh->harness_timers;
      timer->async_wait_for(latency, [weak, finish](bool aborted) {
        if (auto s = weak.lock()) --s->harness_timers;
        if (!aborted) finish();
      });
      sh->timers.push_back(std::move(timer));
    });
  }

  void subscribe(bool will_listener) {
    std::weak_ptr<Shared> weak = sh_;
    auto rec = [weak](credkit::TokenCredential&, const credkit::TokenEvent& e) {
      auto sh = weak.lock();
      if (!sh || !sh->recording) return;
      EventRecord r;
      r.at = sh->elapsed();
      r.kind = std::string(credkit::to_string(e.kind));
      r.token = sh->id_of(e.token);
      r.reason = std::string(credkit::to_string(e.reason));
      if (e.kind == credkit::TokenEventKind::refresh_failed) {
        r.code = code_name(e.code);
        r.attempt = e.attempt;
        if (e.next_retry) r.next_retry = sh->timeline_of_local(*e.next_retry);
      }
      sh->events.push_back(std::move(r));
    };
    subs_.push_back(cred_->on_token_expired(rec));
    subs_.push_back(cred_->on_token_refreshed(rec));
    subs_.push_back(cred_->on_refresh_failed(rec));
    if (will_listener) subs_.push_back(cred_->on_token_will_expire(rec));
  }

  // Steps with repeat/every_ms expanded, in time order (file order within an instant).
  std::vector<Step> expand_steps() {
    std::vector<Step> out;
    std::set<std::string> callers;
    const json steps = s_.value("steps", json::array());
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const json& st = steps[i];
      const std::string where = "steps[" + std::to_string(i) + "]";
      check_keys(st,
                 {"at_ms", "do", "caller", "repeat", "every_ms", "token", "by_ms", "lifetime_ms", "expires_at_ms",
                  "expired_ms_ago", "issued_ms_ago", "issued_at_ms", "empty"},
                 where);
      if (!st.contains("at_ms") || !st.contains("do")) throw BadScenario(where + ": needs at_ms and do");
      const std::string what = st["do"].get<std::string>();
      static const std::set<std::string> kinds = {"get_token", "invalidate", "update_token", "close",
                                                  "jump",      "pending_timers", "clock_offset", "cached_token"};
      if (!kinds.count(what)) throw BadScenario(where + ": unknown action \"" + what + "\"");
      const bool needs_caller = what != "close" && what != "jump";
      if (needs_caller != st.contains("caller")) {
        throw BadScenario(where + (needs_caller ? ": needs a caller name" : ": takes no caller"));
      }
      const int repeat = st.value("repeat", 1);
      const double every = st.value("every_ms", 0.0);
      for (int k = 0; k < repeat; ++k) {
        Step s;
        s.at = ms_to_ns(st["at_ms"].get<double>() + every * k);
        s.spec = st;
        if (needs_caller) {
          s.caller = st["caller"].get<std::string>();
          if (st.contains("repeat")) s.caller += "#" + std::to_string(k + 1);
          if (!callers.insert(s.caller).second) throw BadScenario(where + ": caller name used twice: " + s.caller);
        }
        s.order = out.size();
        out.push_back(std::move(s));
      }
    }
    std::stable_sort(out.begin(), out.end(), [](const Step& a, const Step& b) { return a.at < b.at; });
    return out;
  }

  void perform(const Step& st) {
    const std::string what = st.spec["do"].get<std::string>();
    const ns now = sh_->elapsed();
    if (!st.caller.empty()) sh_->call_order.push_back(st.caller);
    if (what == "get_token") {
      std::weak_ptr<Shared> weak = sh_;
      cred_->async_get_token([weak, caller = st.caller](std::exception_ptr e, credkit::TokenHandle t) {
        auto sh = weak.lock();
        if (!sh) return;
        if (e) {
          sh->record_result(caller, {sh->elapsed(), "error", code_name(credkit::error_code_of(e))});
        } else {
          sh->record_result(caller, {sh->elapsed(), "token", sh->id_of(t)});
        }
      });
    } else if (what == "invalidate") {
      const std::string which = st.spec.value("token", std::string("current"));
      bool r;
      if (which == "current") {
        r = cred_->invalidate(cred_->cached_token());
      } else {
        const auto it = sh_->token_of_id.find(which);
        r = cred_->invalidate(std::string_view(it == sh_->token_of_id.end() ? "tok-" + which : it->second.token));
      }
      sh_->record_result(st.caller, {now, "returned", r ? "true" : "false"});
    } else if (what == "update_token") {
      credkit::AccessToken t;
      if (st.spec.value("empty", false)) {
        t = credkit::AccessToken{"", sh_->service_now() + std::chrono::hours(1), {}};
      } else {
        json spec;
        for (const char* k : {"lifetime_ms", "expires_at_ms", "expired_ms_ago", "issued_ms_ago", "issued_at_ms"}) {
          if (st.spec.contains(k)) spec[k] = st.spec[k];
        }
        t = make_token(*sh_, "tok-" + st.caller, spec, "update_token " + st.caller);
        sh_->register_token(st.caller, t);
      }
      try {
        cred_->update_token(t);
        sh_->record_result(st.caller, {now, "returned", "ok"});
      } catch (const credkit::Error& e) {
        sh_->record_result(st.caller, {now, "error", code_name(e.code())});
      }
    } else if (what == "close") {
      cred_->close();
    } else if (what == "jump") {
      const ns by = ms_to_ns(st.spec.at("by_ms").get<double>());
      sh_->clock->jump(by);
      sh_->jumped += by;
    } else if (what == "pending_timers") {
      const auto n = static_cast<long long>(sh_->clock->pending_timers()) - sh_->harness_timers;
      sh_->record_result(st.caller, {now, "returned", std::to_string(n)});
    } else if (what == "clock_offset") {
      sh_->record_result(st.caller, {now, "returned", fmt_ms(cred_->clock_offset())});
    } else if (what == "cached_token") {
      const auto id = sh_->id_of(cred_->cached_token());
      sh_->record_result(st.caller, {now, "returned", id.empty() ? "none" : id});
    }
  }

  // -------------------------------------------------------------------------------------
  // Comparison

  std::string compare(ns offset) {
    const json& ex = s_["expect"];
    check_keys(ex, {"fetches", "results", "events", "clock_offset_ms"}, "expect");
    if (!ex.contains("fetches")) throw BadScenario("expect.fetches is required");
    std::ostringstream out;
    compare_fetches(ex["fetches"], out);
    if (ex.contains("results")) compare_results(ex["results"], out);
    if (ex.contains("events")) compare_events(ex["events"], out);
    if (ex.contains("clock_offset_ms")) {
      const ns want = ms_to_ns(ex["clock_offset_ms"].get<double>());
      if (want != offset) out << "clock_offset: expected " << fmt_ms(want) << " ms, actual " << fmt_ms(offset) << " ms\n";
    }
    for (const auto& p : sh_->problems) out << p << "\n";
    return out.str();
  }

  void compare_fetches(const json& want, std::ostringstream& out) {
    const auto& got = sh_->fetches;
    bool bad = want.size() != got.size();
    std::vector<std::string> lines;
    for (std::size_t i = 0; i < std::max<std::size_t>(want.size(), got.size()); ++i) {
      std::string w = "-", g = "-";
      bool ok = i < want.size() && i < got.size();
      if (i < want.size()) {
        const json& f = want[i];
        const std::string where = "expect.fetches[" + std::to_string(i) + "]";
        check_keys(f, {"at_ms", "gap_ms", "reason", "attempt", "cancelled_at_ms"}, where);
        std::ostringstream ws;
        if (f.contains("at_ms")) ws << "at " << time_spec(f["at_ms"], where).str();
        if (f.contains("gap_ms")) ws << " gap " << time_spec(f["gap_ms"], where).str();
        if (f.contains("reason")) ws << " reason=" << f["reason"].get<std::string>();
        if (f.contains("attempt")) ws << " attempt=" << f["attempt"].get<int>();
        if (f.contains("cancelled_at_ms")) ws << " cancelled at " << time_spec(f["cancelled_at_ms"], where).str();
        w = ws.str();
        if (!f.contains("at_ms") && !f.contains("gap_ms")) throw BadScenario(where + ": needs at_ms or gap_ms");
        if (i < got.size()) {
          const auto& a = got[i];
          if (f.contains("at_ms") && !time_spec(f["at_ms"], where).matches(a.at)) ok = false;
          if (f.contains("gap_ms")) {
            const ns prev = i == 0 ? ns::zero() : got[i - 1].at;
            if (!time_spec(f["gap_ms"], where).matches(a.at - prev)) ok = false;
          }
          if (f.contains("reason") && f["reason"].get<std::string>() != a.reason) ok = false;
          if (f.contains("attempt") && f["attempt"].get<int>() != a.attempt) ok = false;
          if (f.contains("cancelled_at_ms")) {
            if (!a.cancelled_at || !time_spec(f["cancelled_at_ms"], where).matches(*a.cancelled_at)) ok = false;
          } else if (a.cancelled_at) {
            ok = false;
          }
        }
      }
      if (i < got.size()) {
        const auto& a = got[i];
        std::ostringstream gs;
        gs << "at " << fmt_ms(a.at) << " (gap " << fmt_ms(a.at - (i == 0 ? ns::zero() : got[i - 1].at))
           << ") reason=" << a.reason << " attempt=" << a.attempt;
        if (a.cancelled_at) gs << " cancelled at " << fmt_ms(*a.cancelled_at);
        g = gs.str();
      }
      bad |= !ok;
      lines.push_back((ok ? "    " : " >> ") + std::string("fetch ") + std::to_string(i + 1) + ": expected " + w +
                      " | actual " + g);
    }
    if (bad) {
      out << "fetch starts differ (expected " << want.size() << ", actual " << got.size() << "):\n";
      for (const auto& l : lines) out << l << "\n";
    }
  }

  struct WantResult {
    std::string caller;
    std::optional<TimeSpec> at;
    std::string kind, value;
  };

  std::vector<WantResult> expand_results(const json& want) {
    std::vector<WantResult> out;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const json& r = want[i];
      const std::string where = "expect.results[" + std::to_string(i) + "]";
      check_keys(r, {"caller", "at_ms", "token", "error", "returned", "pending", "repeat", "every_ms", "first_index"},
                 where);
      WantResult w;
      const int forms = int(r.contains("token")) + int(r.contains("error")) + int(r.contains("returned")) +
                        int(r.contains("pending"));
      if (forms != 1) throw BadScenario(where + ": give exactly one of token, error, returned, pending");
      if (r.contains("token")) w.kind = "token", w.value = r["token"].get<std::string>();
      if (r.contains("error")) {
        w.kind = "error", w.value = r["error"].get<std::string>();
        (void)parse_errc(r["error"], where);
      }
      if (r.contains("returned")) {
        w.kind = "returned";
        const json& v = r["returned"];
        if (v.is_boolean()) {
          w.value = v.get<bool>() ? "true" : "false";
        } else if (v.is_number()) {
          w.value = fmt_ms(ms_to_ns(v.get<double>()));
        } else if (v.is_string()) {
          w.value = v.get<std::string>();
        } else {
          throw BadScenario(where + ": returned must be a boolean, number or string");
        }
      }
      if (r.contains("pending")) w.kind = "pending";
      if (w.kind != "pending" && !r.contains("at_ms")) throw BadScenario(where + ": needs at_ms");
      const int repeat = r.value("repeat", 1);
      const int first = r.value("first_index", 1);
      const double every = r.value("every_ms", 0.0);
      for (int k = 0; k < repeat; ++k) {
        WantResult x = w;
        x.caller = r.at("caller").get<std::string>();
        if (r.contains("repeat") || r.contains("first_index")) x.caller += "#" + std::to_string(first + k);
        if (r.contains("at_ms")) {
          TimeSpec t = time_spec(r["at_ms"], where);
          t.lo += ms_to_ns(every * k);
          t.hi += ms_to_ns(every * k);
          x.at = t;
        }
        out.push_back(std::move(x));
      }
    }
    return out;
  }

  void compare_results(const json& want_json, std::ostringstream& out) {
    const auto want = expand_results(want_json);
    std::map<std::string, const WantResult*> by_caller;
    for (const auto& w : want) {
      if (!by_caller.emplace(w.caller, &w).second) throw BadScenario("expect.results: caller twice: " + w.caller);
    }
    std::vector<std::string> lines;
    bool bad = false;
    auto actual = [&](const std::string& c) -> ResultRecord {
      auto it = sh_->results.find(c);
      return it == sh_->results.end() ? ResultRecord{{}, "pending", ""} : it->second;
    };
    std::set<std::string> acted(sh_->call_order.begin(), sh_->call_order.end());
    for (const auto& c : sh_->call_order) {
      const ResultRecord a = actual(c);
      const auto it = by_caller.find(c);
      std::string w = "(not listed)";
      bool ok = false;
      if (it != by_caller.end()) {
        const auto& x = *it->second;
        w = x.kind == "pending" ? "pending" : x.kind + "=" + x.value + " at " + x.at->str();
        ok = a.kind == x.kind && (x.kind == "pending" || (a.value == x.value && x.at->matches(a.at)));
      }
      bad |= !ok;
      lines.push_back((ok ? "    " : " >> ") + c + ": expected " + w + " | actual " + a.str());
    }
    for (const auto& w : want) {
      if (!acted.count(w.caller)) {
        bad = true;
        lines.push_back(" >> " + w.caller + ": expected, but no step has this caller");
      }
    }
    if (bad) {
      out << "caller results differ:\n";
      for (const auto& l : lines) out << l << "\n";
    }
  }

  static bool event_matches(const json& e, const EventRecord& a, const std::string& where) {
    if (e.at("kind").get<std::string>() != a.kind) return false;
    if (!time_spec(e.at("at_ms"), where).matches(a.at)) return false;
    if (e.contains("token") && e["token"].get<std::string>() != a.token) return false;
    if (e.contains("reason") && e["reason"].get<std::string>() != a.reason) return false;
    if (e.contains("code") && e["code"].get<std::string>() != a.code) return false;
    if (e.contains("attempt") && e["attempt"].get<int>() != a.attempt) return false;
    if (e.contains("next_retry_ms")) {
      if (e["next_retry_ms"].is_null()) {
        if (a.next_retry) return false;
      } else if (!a.next_retry || !time_spec(e["next_retry_ms"], where).matches(*a.next_retry)) {
        return false;
      }
    }
    return true;
  }

  static std::string event_str(const json& e, const std::string& where) {
    std::string s = e.at("kind").get<std::string>() + " at " + time_spec(e.at("at_ms"), where).str();
    for (const char* k : {"token", "reason", "code"}) {
      if (e.contains(k)) s += std::string(" ") + k + "=" + e[k].get<std::string>();
    }
    if (e.contains("attempt")) s += " attempt=" + std::to_string(e["attempt"].get<int>());
    if (e.contains("next_retry_ms")) {
      s += " next_retry=" +
           (e["next_retry_ms"].is_null() ? std::string("none") : time_spec(e["next_retry_ms"], where).str());
    }
    return s;
  }

  void compare_events(const json& want, std::ostringstream& out) {
    // Events at the same instant compare as a multiset: the rules do not order them.
    std::vector<EventRecord> got = sh_->events;
    bool bad = want.size() != got.size();
    for (std::size_t i = 0; i < want.size(); ++i) {
      check_keys(want[i], {"kind", "at_ms", "token", "reason", "code", "attempt", "next_retry_ms"},
                 "expect.events[" + std::to_string(i) + "]");
    }
    for (std::size_t i = 0; i < std::min(want.size(), got.size()); ++i) {
      const std::string where = "expect.events[" + std::to_string(i) + "]";
      if (event_matches(want[i], got[i], where)) continue;
      for (std::size_t j = i + 1; j < got.size() && got[j].at == got[i].at; ++j) {
        if (event_matches(want[i], got[j], where)) {
          std::swap(got[i], got[j]);
          break;
        }
      }
    }
    std::vector<std::string> lines;
    for (std::size_t i = 0; i < std::max(want.size(), got.size()); ++i) {
      const std::string where = "expect.events[" + std::to_string(i) + "]";
      const bool ok = i < want.size() && i < got.size() && event_matches(want[i], got[i], where);
      bad |= !ok;
      lines.push_back((ok ? "    " : " >> ") + std::string("event ") + std::to_string(i + 1) + ": expected " +
                      (i < want.size() ? event_str(want[i], where) : "-") + " | actual " +
                      (i < got.size() ? got[i].str() : "-"));
    }
    if (bad) {
      out << "events differ (expected " << want.size() << ", actual " << got.size() << "):\n";
      for (const auto& l : lines) out << l << "\n";
    }
  }

  json s_;
  std::string file_;
  std::shared_ptr<Shared> sh_;
  json script_;
  json fetch_default_;
  asio::io_context io_;
  std::shared_ptr<credkit::TokenCredential> cred_;
  std::vector<credkit::Subscription> subs_;
};

std::vector<std::filesystem::path> scenario_files() {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(CREDKIT_CONFORMANCE_DIR)) {
    if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST_CASE("conformance scenarios (tests/conformance/*.json)") {
  const auto files = scenario_files();
  REQUIRE(files.size() >= 40);
  for (const auto& path : files) {
    const std::string name = path.filename().string();
    SUBCASE(name.c_str()) {
      std::string diff;
      try {
        std::ifstream in(path);
        REQUIRE_MESSAGE(in, "cannot open " << path);
        Scenario sc(json::parse(in), path.string());
        diff = sc.run();
      } catch (const BadScenario& e) {
        diff = std::string("bad scenario file: ") + e.what() + "\n";
      } catch (const json::exception& e) {
        diff = std::string("bad scenario file (JSON): ") + e.what() + "\n";
      }
      if (!diff.empty()) FAIL_CHECK("conformance scenario " << name << " failed:\n" << diff);
    }
  }
}

TEST_CASE("every conformance scenario names its rules, says why, and uses a documented prefix") {
  static const std::vector<std::string> prefixes = {
      "lifetime_", "min_validity_", "handout_", "arrival_", "single_flight_", "acs_",    "agora_",
      "spacing_",  "on_demand_",    "retry_after_", "retry_", "timeout_", "invalidate_", "update_",
      "same_token_", "events_",     "skew_",    "sleep_",   "extreme_", "close_"};
  std::set<std::string> seen;
  for (const auto& path : scenario_files()) {
    const std::string name = path.stem().string();
    std::ifstream in(path);
    json s = json::parse(in, nullptr, /*allow_exceptions=*/false);
    CHECK_MESSAGE(!s.is_discarded(), name << ": not valid JSON");
    if (s.is_discarded()) continue;
    CHECK_MESSAGE((s.contains("rules") && s["rules"].is_array() && !s["rules"].empty()), name << ": no rules");
    CHECK_MESSAGE((s.contains("description") && s["description"].is_string()), name << ": no description");
    const auto it = std::find_if(prefixes.begin(), prefixes.end(),
                                 [&](const std::string& p) { return name.rfind(p, 0) == 0; });
    CHECK_MESSAGE(it != prefixes.end(), name << ": no documented prefix");
    if (it != prefixes.end()) seen.insert(*it);
  }
  for (const auto& p : prefixes) CHECK_MESSAGE(seen.count(p), "no scenario with the prefix " << p);
}

TEST_CASE("every errc has the name scenarios use for it, and no two share one") {
  std::set<std::string_view> seen;
  for (const auto& [name, e] : errc_names()) {
    CHECK(credkit::to_string(e) == name);
    CHECK(seen.insert(credkit::to_string(e)).second);
  }
  CHECK(errc_names().size() == static_cast<std::size_t>(errc::keychain_corrupt));
  CHECK(credkit::to_string(static_cast<errc>(0)) == "unknown");
  CHECK(credkit::to_string(static_cast<errc>(static_cast<int>(errc::keychain_corrupt) + 1)) == "unknown");
}
