// Classes 3 and 6 of the hostile review: tokens reaching HTTP headers unvalidated, and numbers
// and dates from outside read too leniently.
//
// Invariants:
//  - T: a string is accepted as a token on one path exactly when check_token_text accepts it,
//    and that holds on every path that produces a token (initial token, update_token, a
//    fetcher's result, the HTTP response forms, the caches), for every control byte, every
//    non-b64token byte at every position and every length edge.
//  - N: an external number is accepted exactly when it matches its grammar (decimal digits;
//    JSON's number grammar), checked against an independent reference over generated text.
#include <doctest/doctest.h>

#include <rapidcheck.h>

#include "support/rapidcheck_defaults.hpp"

#include <credkit/credkit.hpp>
#include <credkit/caches/memory_token_cache.hpp>

#include "core/strict_number.hpp"
#include "sources/common/text.hpp"
#include "sources/http/http_client.hpp"
#include "sources/http/token_response_parser.hpp"
#include "support/test_tokens.hpp"

#include <boost/asio/use_future.hpp>

#include <regex>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono_literals;
using sys = std::chrono::system_clock;

namespace {

const std::string kTokenChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";

// The rule, restated independently: the b64token alphabet ('=' anywhere but first), 16..16384 characters.
// (A loop, not std::regex: libstdc++'s regex recurses per character and overflows the stack on 16 KiB.)
bool reference_valid(const std::string& t) {
  if (t.size() < 16 || t.size() > 16384 || t[0] == '=') return false;
  const std::string allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+/-=";
  return t.find_first_not_of(allowed) == std::string::npos;
}

// Valid tokens, and tokens broken in one way: a bad byte at a random place, '=' inside, a
// length just outside the bounds.
rc::Gen<std::string> gen_token_candidate() {
  auto valid = rc::gen::mapcat(rc::gen::inRange<std::size_t>(16, 200), [](std::size_t n) {
    return rc::gen::container<std::string>(n, rc::gen::elementOf(kTokenChars));
  });
  return rc::gen::mapcat(valid, [](std::string t) {
    return rc::gen::oneOf(
        rc::gen::just(t),
        rc::gen::map(rc::gen::tuple(rc::gen::inRange<std::size_t>(0, t.size()), rc::gen::inRange(0, 256)),
                     [t](const std::tuple<std::size_t, int>& p) {
                       auto out = t;
                       out[std::get<0>(p)] = static_cast<char>(std::get<1>(p));  // any byte: CR, LF, NUL, ' ', 0xff...
                       return out;
                     }),
        rc::gen::map(rc::gen::inRange<std::size_t>(0, 16), [t](std::size_t n) { return t.substr(0, n); }),
        rc::gen::just("=" + t),
        rc::gen::just(t + "=="), rc::gen::just(std::string(16385, 'a')), rc::gen::just(std::string(16384, 'a')));
  });
}

bool is_invalid_token(const std::exception_ptr& e) { return e && error_code_of(e) == errc::invalid_token; }

std::exception_ptr via_update(const std::string& token) {
  VirtualEnv env;
  TokenCredentialOptions o;
  o.clock = env.clock;
  auto cred = TokenCredential::create(env.io.get_executor(), o);
  try {
    cred->update_token(AccessToken{token, env.now() + 1h});
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

std::exception_ptr via_fetcher(const std::string& token) {
  VirtualEnv env;
  TokenCredentialOptions o;
  o.clock = env.clock;
  o.fetcher = Fetcher::async([&](FetchContext, FetchCompletion done) { done.succeed(AccessToken{token, env.now() + 1h}); });
  auto cred = TokenCredential::create(env.io.get_executor(), o);
  return get_error_now(*cred, env);
}

std::exception_ptr via_initial(const std::string& token) {
  TokenCredentialOptions o;
  o.initial_token = AccessToken{token, sys::now() + 1h};
  boost::asio::io_context io;
  try {
    (void)TokenCredential::create(io.get_executor(), o);
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

std::exception_ptr via_response(const HttpTokenResponse& format, const std::string& body) {
  try {
    (void)detail::parse_token_response(format, body, sys::now());
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

std::string json_string(const std::string& s) { return nlohmann::json(std::string(s)).dump(); }

std::exception_ptr via_cache_put(const std::string& token) {
  boost::asio::thread_pool pool(1);
  auto cache = MemoryTokenCache::create(pool.get_executor());
  try {
    cache->async_put(TokenCacheKey("user"), AccessToken{token, sys::now() + 1h}, boost::asio::use_future).get();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

}  // namespace

TEST_SUITE("hostile: inputs") {

TEST_CASE("T: every token path accepts exactly what check_token_text accepts") {
  std::map<std::string, int> rejected;
  const bool ok = rc::check("token candidate x path", [&] {
    const auto token = *gen_token_candidate();
    const bool valid = reference_valid(token);
    RC_TAG(valid ? "valid" : "invalid");
    RC_ASSERT(!check_token_text(token) == valid);
    const int path = *rc::gen::element(0, 1, 2, 3, 4, 5, 6);  // uniform (inRange grows with size)
    std::exception_ptr e;
    switch (path) {
      case 0: e = via_update(token); break;
      case 1: e = via_fetcher(token); break;
      case 2: e = via_initial(token); break;
      case 3: e = via_response(HttpTokenResponse::acs(), "{\"token\":" + json_string(token) + ",\"expiresOn\":\"2100-01-01T00:00:00Z\"}"); break;
      case 4: e = via_response(HttpTokenResponse::oauth(), "{\"access_token\":" + json_string(token) + ",\"expires_in\":3600}"); break;
      case 5: e = via_response(HttpTokenResponse::plain_text(), token); break;
      case 6: e = via_cache_put(token); break;
    }
    // The plain-text form trims white space around the body (a trailing newline is common).
    if (path == 5) {
      std::string_view t = token;
      while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
      while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
      RC_PRE(t.size() == token.size());
    }
    if (valid) {
      RC_ASSERT(!e);
    } else {
      RC_ASSERT(is_invalid_token(e));
      ++rejected["path " + std::to_string(path)];
    }
  });
  CHECK(ok);
  for (const auto& [path, n] : rejected) MESSAGE(path << ": " << n << " invalid tokens rejected");
}

TEST_CASE("instance: CR/LF, NUL, spaces and a 1-character token in the ACS and OAuth forms are rejected") {
  for (const std::string& token : std::vector<std::string>{"abcdefghijklmnop\r\nX-Injected: yes",
                                                          std::string("abcdefghijklmnop\0q", 18),
                                                          "abcdefgh ijklmnopq", "x"}) {
    CHECK(is_invalid_token(via_response(HttpTokenResponse::acs(),
                                        "{\"token\":" + json_string(token) + ",\"expiresOn\":\"2100-01-01T00:00:00Z\"}")));
    CHECK(is_invalid_token(via_response(HttpTokenResponse::oauth(),
                                        "{\"access_token\":" + json_string(token) + ",\"expires_in\":3600}")));
  }
}

TEST_CASE("N: integers are digits only, in range; everything else is refused") {
  const bool ok = rc::check("parse_integer vs reference", [] {
    const auto text = *rc::gen::container<std::string>(rc::gen::elementOf(std::string("0123456789-+ x.eE\t")));
    const auto min = *rc::gen::element<std::int64_t>(0, 1, -100, INT64_MIN);
    const auto max = *rc::gen::element<std::int64_t>(65535, 366LL * 86400, INT64_MAX);
    const auto got = detail::parse_integer(text, min, max);
    static const std::regex grammar("-?[0-9]{1,19}");
    bool expect = std::regex_match(text, grammar) && (text[0] != '-' || min < 0);
    if (expect) {
      // Reference value through long double digits; out of int64 or range: refused.
      errno = 0;
      const long long v = std::strtoll(text.c_str(), nullptr, 10);
      expect = errno != ERANGE && v >= min && v <= max;
      if (expect) RC_ASSERT(got && *got == v);
    }
    RC_ASSERT(got.has_value() == expect);
  });
  CHECK(ok);
}

TEST_CASE("N: JSON numbers in strings follow JSON's grammar (no hex, no inf, no spaces)") {
  const bool ok = rc::check("parse_json_number vs grammar", [] {
    const auto text = *rc::gen::container<std::string>(rc::gen::elementOf(std::string("0123456789-+.eExXaf inIN")));
    static const std::regex grammar("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?");
    const auto got = detail::parse_json_number(text);
    if (!std::regex_match(text, grammar)) {
      RC_ASSERT(!got);
    } else if (got) {
      RC_ASSERT(*got == std::strtod(text.c_str(), nullptr));
    } else {
      RC_ASSERT(!std::isfinite(std::strtod(text.c_str(), nullptr)));  // only overflow is refused
    }
  });
  CHECK(ok);
}

TEST_CASE("instance: expiresOn \"0x7fffffff\" and other non-decimal spellings are refused") {
  for (const char* value : {"\"0x7fffffff\"", "\"0X7FFFFFFF\"", "\" 1900000000\"", "\"1900000000 \"", "\"inf\"",
                            "\"nan\"", "\"+1900000000\"", "\"1.9e9x\"", "\"١٩٠٠٠٠٠٠٠٠\""}) {
    CAPTURE(value);
    const auto e = via_response(HttpTokenResponse::acs(),
                                std::string("{\"token\":\"abcdefghijklmnop0123\",\"expiresOn\":") + value + "}");
    REQUIRE(e);
    CHECK(error_code_of(e) == errc::invalid_response);
  }
  // The decimal spellings are still read.
  CHECK_FALSE(via_response(HttpTokenResponse::acs(), R"({"token":"abcdefghijklmnop0123","expiresOn":"4102444800"})"));
  CHECK_FALSE(via_response(HttpTokenResponse::acs(), R"({"token":"abcdefghijklmnop0123","expiresOn":4102444800.5})"));
}

TEST_CASE("N: timestamps: one strict ISO 8601 parser; any mutation of a valid one is refused or still valid") {
  const std::string base = "2031-07-15T12:34:56.789+02:00";
  const auto expected = detail::parse_iso8601(base);
  REQUIRE(expected);
  const bool ok = rc::check("mutated timestamp", [&] {
    auto text = base;
    const auto at = *rc::gen::inRange<std::size_t>(0, text.size());
    const auto byte = *rc::gen::elementOf(std::string("0123456789:-+TtZz .,x\0", 22));
    text[at] = byte;
    const auto got = detail::parse_iso8601(text);
    if (got) {
      // Accepted only when the text is still a well-formed timestamp with a zone.
      static const std::regex grammar(
          "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}([.,][0-9]+)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)");
      RC_ASSERT(std::regex_match(text, grammar));
    }
  });
  CHECK(ok);
  CHECK(detail::parse_iso8601("9999-12-31T23:59:59Z") == sys::time_point(std::chrono::seconds(9'000'000'000)));
  CHECK(detail::parse_iso8601("1969-12-31T23:59:59Z") == sys::time_point{});
}

TEST_CASE("instance: Retry-After: a 9999 date and a 20-digit delay are capped at 24 h; junk is ignored") {
  const auto now = sys::now();
  CHECK(detail::parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == std::chrono::milliseconds(24h));
  CHECK(detail::parse_retry_after("99999999999999999999", now) == std::chrono::milliseconds(24h));
  for (const char* junk : {"0x10", "-5", "+5", "5.5", "1e3", "5s", "", "   "}) {
    CAPTURE(junk);
    CHECK_FALSE(detail::parse_retry_after(junk, now));
  }
}

}  // TEST_SUITE
