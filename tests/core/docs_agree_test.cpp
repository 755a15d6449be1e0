// The documents agree with the code: the defaults quoted in the guide, the migration page and
// docs/refresh-semantics.md are RefreshPolicy's; the examples table of refresh-semantics.md is
// recomputed from RefreshPolicy; every rule number cited anywhere exists.
#include <doctest/doctest.h>

#include <credkit/core/refresh_policy.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

using namespace credkit;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {

const std::filesystem::path kRoot = CREDKIT_SOURCE_DIR;

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  REQUIRE_MESSAGE(in, "cannot read " << p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '`')) s.erase(s.begin());
  while (!s.empty() && (s.back() == ' ' || s.back() == '`')) s.pop_back();
  return s;
}

// "23 h 58 min", "1 min 30 s", "7.5 s", "400 days", "0 (off)" -> nanoseconds; nullopt if not a duration.
std::optional<nanoseconds> parse_duration(const std::string& text) {
  static const std::map<std::string, double> unit_ns = {
      {"ns", 1}, {"ms", 1e6}, {"s", 1e9}, {"min", 60e9}, {"h", 3600e9}, {"days", 86400e9}, {"day", 86400e9}};
  std::istringstream in(text);
  double total = 0;
  bool any = false;
  double number;
  std::string unit;
  while (in >> number) {
    if (!(in >> unit)) return std::nullopt;
    auto it = unit_ns.find(unit);
    if (it == unit_ns.end()) return std::nullopt;
    total += number * it->second;
    any = true;
  }
  if (!any) return std::nullopt;
  return nanoseconds(static_cast<std::int64_t>(total));
}

std::vector<std::string> cells(const std::string& row) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream in(row);
  std::getline(in, cell, '|');  // before the first bar
  while (std::getline(in, cell, '|')) out.push_back(trim(cell));
  if (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

// The defaults of RefreshPolicy, by field name, as durations.
std::map<std::string, nanoseconds> policy_durations() {
  RefreshPolicy p;
  return {{"refresh_before_expiry", p.refresh_before_expiry}, {"min_refresh_interval", p.min_refresh_interval},
          {"min_validity", p.min_validity},                   {"retry_initial", p.retry_initial},
          {"retry_max", p.retry_max},                         {"wake_check_interval", p.wake_check_interval},
          {"fetch_timeout", p.fetch_timeout},                 {"clock_skew_tolerance", p.clock_skew_tolerance},
          {"max_clock_skew", p.max_clock_skew}};
}

}  // namespace

TEST_CASE("docs: the guide's threshold table quotes RefreshPolicy's defaults") {
  const auto guide = read(kRoot / "docs/guide.md");
  const auto defaults = policy_durations();
  std::set<std::string> checked;
  std::istringstream in(guide);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("| `")) continue;
    const auto c = cells(line);
    if (c.size() < 3) continue;
    auto it = defaults.find(c[0]);
    const auto quoted = parse_duration(c[1]);
    if (it == defaults.end() || !quoted) continue;  // other tables (errors) name fields too
    CAPTURE(line);
    CHECK(*quoted == it->second);
    checked.insert(c[0]);
  }
  CHECK(checked.size() == defaults.size());  // every duration field is in the table
  CHECK(guide.find("| `lifetime_fraction` | 0.8 |") != std::string::npos);
  CHECK(RefreshPolicy{}.lifetime_fraction == 0.8);
}

TEST_CASE("docs: every `field` (default) quoted in refresh-semantics.md and migration.md is the code's") {
  const auto defaults = policy_durations();
  const std::regex quoted(R"(`([a-z_]+)` \(([0-9.]+ (?:ns|ms|s|min|h|days))\))");
  for (const char* doc : {"docs/refresh-semantics.md", "docs/migration.md"}) {
    CAPTURE(doc);
    const auto text = read(kRoot / doc);
    std::size_t checked = 0;
    for (std::sregex_iterator it(text.begin(), text.end(), quoted), end; it != end; ++it) {
      const auto field = (*it)[1].str();
      auto d = defaults.find(field);
      if (d == defaults.end()) continue;
      CAPTURE(it->str());
      CHECK(parse_duration((*it)[2].str()) == d->second);
      ++checked;
    }
    CHECK(checked >= 4);
  }
}

TEST_CASE("docs: the examples table of refresh-semantics.md is what RefreshPolicy computes") {
  const auto text = read(kRoot / "docs/refresh-semantics.md");
  const auto begin = text.find("<!-- refresh-examples");
  const auto end = text.find("<!-- end refresh-examples -->");
  REQUIRE(begin != std::string::npos);
  REQUIRE(end != std::string::npos);
  std::istringstream in(text.substr(begin, end - begin));
  RefreshPolicy acs;
  RefreshPolicy agora;
  agora.schedule = RefreshSchedule::lifetime_fraction;
  const auto r = system_clock::time_point(seconds(1'800'000'000));
  std::size_t rows = 0;
  for (std::string line; std::getline(in, line);) {
    const auto c = cells(line);
    if (c.size() != 5) continue;
    const auto lifetime = parse_duration(c[0]);
    if (!lifetime) continue;  // the header and separator rows
    CAPTURE(line);
    const RefreshPolicy::TokenTimes t{r, r + *lifetime, std::nullopt, true};
    CHECK(parse_duration(c[1]) == acs.min_validity_for(RefreshPolicy::lifetime(t)));
    CHECK(parse_duration(c[2]) == acs.fresh_until(t) - r);
    CHECK(parse_duration(c[3]) == acs.will_expire_point(t, r) - r);
    CHECK(parse_duration(c[4]) == agora.will_expire_point(t, r) - r);
    ++rows;
  }
  CHECK(rows >= 8);
}

TEST_CASE("docs: every rule number cited in the docs, headers and sources exists in refresh-semantics.md") {
  const auto semantics = read(kRoot / "docs/refresh-semantics.md");
  const std::regex defined(R"(\*\*(R[0-9]+) — )");
  std::set<std::string> rules;
  for (std::sregex_iterator it(semantics.begin(), semantics.end(), defined), end; it != end; ++it)
    rules.insert((*it)[1].str());
  CHECK(rules.size() >= 19);
  const std::regex cited(R"(\bR([0-9]+)\b)");
  std::size_t citations = 0;
  for (const char* dir : {"docs", "include", "src", "tests/core", "tests/properties", "tests/conformance"}) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(kRoot / dir)) {
      if (!entry.is_regular_file()) continue;
      const auto ext = entry.path().extension();
      if (ext != ".md" && ext != ".hpp" && ext != ".cpp" && ext != ".json") continue;
      const auto text = read(entry.path());
      for (std::sregex_iterator it(text.begin(), text.end(), cited), end; it != end; ++it) {
        const auto rule = "R" + (*it)[1].str();
        CAPTURE(entry.path().string());
        CAPTURE(rule);
        CHECK(rules.count(rule) == 1);
        ++citations;
      }
    }
  }
  CHECK(citations > 50);
}
