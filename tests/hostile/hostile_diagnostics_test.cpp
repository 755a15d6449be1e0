// Class 1 of the hostile review: secrets leaving through diagnostics.
//
// Invariant: whatever text from outside reaches a credkit log line or Error message (a
// fetcher's or listener's exception, a service's error body, a Redis reply), no secret
// credkit handles shows in it, in any encoding, and no secret-shaped text does either.
// The encoders below are written independently of the library's decoder, and every case
// checks both sides: the scrubbed text is clean, and testing::DiagnosticsCapture does flag
// the raw encoded text (so the test-side detector catches every encoding too).
#include <doctest/doctest.h>

#include <sstream>

#include <rapidcheck.h>

#include "support/rapidcheck_defaults.hpp"

#include <credkit/credkit.hpp>
#include <credkit/caches/redis_token_cache.hpp>
#include <credkit/sources/http_token_source.hpp>
#include <credkit/testing/diagnostics_capture.hpp>

#include "caches/cache_test_support.hpp"
#include "core/base64.hpp"
#include "core/secret_scrubber.hpp"
#include "support/loopback_http_server.hpp"
#include "support/test_tokens.hpp"

#include <boost/asio/use_future.hpp>

#include <cstdio>
#include <functional>
#include <random>

using namespace credkit;
using namespace credkit::test;
using credkit::testing::DiagnosticsCapture;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------------------------
// Encoders: every way a peer or a user's code may re-spell a secret.

std::string hex2(unsigned char c, bool upper) {
  char buf[3];
  std::snprintf(buf, sizeof buf, upper ? "%02X" : "%02x", c);
  return buf;
}

std::string json_slash(std::string_view s) {  // what JSON writers that escape '/' produce
  std::string out;
  for (char c : s) {
    if (c == '/' || c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}
std::string json_u_all(std::string_view s) {
  std::string out;
  for (unsigned char c : s) out += "\\u00" + hex2(c, false);
  return out;
}
std::string json_u_upper_some(std::string_view s) {  // every other byte, upper-case hex
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool must = s[i] == '\\' || s[i] == '"';  // JSON escapes these whatever else it does
    out += i % 2 || must ? "\\u00" + hex2(static_cast<unsigned char>(s[i]), true) : std::string(1, s[i]);
  }
  return out;
}
std::string percent(std::string_view s, bool upper, bool all) {
  std::string out;
  for (unsigned char c : s) {
    const bool unreserved = std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
    if (!all && unreserved) {
      out += static_cast<char>(c);
    } else {
      out += "%" + hex2(c, upper);
    }
  }
  return out;
}
std::string html_dec(std::string_view s) {
  std::string out;
  for (unsigned char c : s) out += "&#" + std::to_string(c) + ";";
  return out;
}
std::string html_hex_some(std::string_view s) {  // only the characters HTML escapers touch
  std::string out;
  for (unsigned char c : s) {
    if (c == '/' || c == '=' || c == '+' || c == '&' || c == '<' || c == '"') {
      out += "&#x" + hex2(c, false) + ";";
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}
std::string backslash_x(std::string_view s) {
  std::string out;
  for (unsigned char c : s) out += "\\x" + hex2(c, true);
  return out;
}
std::string base64_of(std::string_view prefix, std::string_view s, bool url) {
  const std::string all = std::string(prefix) + std::string(s);
  auto out = url ? detail::base64url_encode(all) : detail::base64_encode(all);
  return out;
}
std::string hex_of(std::string_view s, bool upper) {
  std::string out;
  for (unsigned char c : s) out += hex2(c, upper);
  return out;
}

struct Encoding {
  const char* name;
  std::function<std::string(std::string_view)> encode;
  bool reencodes_bytes;  // base64 / hex: found for known secrets only (no shape survives)
};

std::ostream& operator<<(std::ostream& os, const Encoding& e) { return os << e.name; }

const std::vector<Encoding>& encodings() {
  static const std::vector<Encoding> all = {
      {"verbatim", [](std::string_view s) { return std::string(s); }, false},
      {"json \\/", json_slash, false},
      {"json \\u00xx all", json_u_all, false},
      {"json \\u00XX some", json_u_upper_some, false},
      {"percent upper all", [](std::string_view s) { return percent(s, true, true); }, false},
      {"percent lower reserved", [](std::string_view s) { return percent(s, false, false); }, false},
      {"html decimal", html_dec, false},
      {"html hex some", html_hex_some, false},
      {"\\xHH", backslash_x, false},
      {"percent of json \\/", [](std::string_view s) { return percent(json_slash(s), true, false); }, false},
      {"json of percent", [](std::string_view s) { return json_u_upper_some(percent(s, false, true)); }, false},
      {"html of json", [](std::string_view s) { return html_hex_some(json_slash(s)); }, false},
      {"base64", [](std::string_view s) { return base64_of("", s, false); }, true},
      {"base64 after 'user:' (Basic)", [](std::string_view s) { return base64_of("user:", s, false); }, true},
      {"base64url after 1 byte", [](std::string_view s) { return base64_of("x", s, true); }, true},
      {"hex lower", [](std::string_view s) { return hex_of(s, false); }, true},
      {"hex upper", [](std::string_view s) { return hex_of(s, true); }, true},
  };
  return all;
}

// ---------------------------------------------------------------------------------------
// Generators

const std::string kB64Token = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";

rc::Gen<std::string> gen_string_of(const std::string& alphabet, int min, int max) {
  return rc::gen::mapcat(rc::gen::inRange(min, max + 1), [alphabet](int n) {
    return rc::gen::container<std::string>(static_cast<std::size_t>(n), rc::gen::elementOf(alphabet));
  });
}

// A secret credkit knows: a token (b64token), a key (base64), or a password (any printable).
rc::Gen<std::string> gen_known_secret() {
  std::string printable;
  for (char c = 0x21; c < 0x7f; ++c) printable += c;
  return rc::gen::oneOf(gen_string_of(kB64Token, 16, 300), gen_string_of(printable, 8, 40),
                        rc::gen::map(gen_string_of(kB64Token, 32, 32), [](std::string k) {
                          return detail::base64_encode(k);  // a 44-char base64 key
                        }));
}

// Secret-shaped text nobody registered: a JWT, an Agora token, a base64 key, a hex key.
rc::Gen<std::string> gen_unknown_shaped_secret() {
  const std::string b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const std::string b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  return rc::gen::oneOf(
      rc::gen::map(rc::gen::tuple(gen_string_of(b64url, 8, 60), gen_string_of(b64url, 20, 120)),
                   [](const std::tuple<std::string, std::string>& t) {
                     return make_jwt_exp("1900000000", "u" + std::get<0>(t)) + std::get<1>(t);
                   }),
      rc::gen::map(gen_string_of(b64, 40, 200), [](std::string s) { return "007eJ" + s; }),
      rc::gen::map(rc::gen::arbitrary<std::uint64_t>(),
                   [](std::uint64_t seed) {  // a 256-bit key of uniform bytes, as real keys are
                     std::mt19937_64 rng(seed);
                     std::string bytes(32, '\0');
                     for (auto& b : bytes) b = static_cast<char>(rng() & 0xff);
                     return detail::base64_encode(bytes);
                   }),
      rc::gen::map(gen_string_of("0123456789abcdef", 64, 64), [](std::string s) { return s; }));
}

rc::Gen<std::string> gen_prose() {
  static const std::vector<std::string> words = {
      "the", "service", "said", "error", "invalid", "token", "request", ":", "=", "\"", "'", "{", "}", ",",
      "HTTP/1.1", "401", "Unauthorized", "WWW-Authenticate:", "detail", "at", "line", "\n", "\r\n", "\t", " "};
  return rc::gen::map(rc::gen::container<std::vector<std::string>>(rc::gen::elementOf(words)),
                      [](const std::vector<std::string>& ws) {
                        std::string out;
                        for (const auto& w : ws) out += w + " ";
                        return out;
                      });
}

bool leaks_in(std::string_view text, const std::string& secret, bool shapes) {
  DiagnosticsCapture::Options o;
  o.detect_token_shapes = shapes;
  DiagnosticsCapture capture(o);
  capture.add_secret(secret, "generated secret");
  capture.inspect("text", text);
  return !capture.leaks().empty();
}

bool has_control_bytes(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

}  // namespace

TEST_SUITE("hostile: diagnostics") {

TEST_CASE("every encoding of a remembered secret is scrubbed, and DiagnosticsCapture flags the raw text") {
  const bool ok = rc::check("known secret x encoding x surrounding text", [] {
    const auto secret = *gen_known_secret();
    const auto& enc = *rc::gen::elementOf(encodings());
    const auto before = *gen_prose();
    const auto after = *gen_prose();
    RC_TAG(enc.name);
    detail::remember_secret(secret);
    const std::string text = before + enc.encode(secret) + after;
    RC_ASSERT(leaks_in(text, secret, false));  // the test-side detector sees this encoding
    const auto scrubbed = detail::scrub(text);
    RC_ASSERT_FALSE(leaks_in(scrubbed, secret, true));
    RC_ASSERT_FALSE(has_control_bytes(scrubbed));
  });
  CHECK(ok);
}

TEST_CASE("a 24+ character piece of a remembered secret is scrubbed in every escape encoding") {
  const bool ok = rc::check("partial leak", [] {
    const auto secret = *gen_string_of(kB64Token, 40, 400);
    const auto len = *rc::gen::inRange<std::size_t>(24, secret.size() + 1);
    const auto at = *rc::gen::inRange<std::size_t>(0, secret.size() - len + 1);
    const auto& enc = *rc::gen::elementOf(encodings());
    RC_PRE(!enc.reencodes_bytes);  // a piece re-encoded on its own has no stable alignment to find
    detail::remember_secret(secret);
    const auto piece = secret.substr(at, len);
    const auto scrubbed = detail::scrub("echo: " + enc.encode(piece) + " end");
    RC_ASSERT_FALSE(leaks_in(scrubbed, piece, true));
  });
  CHECK(ok);
}

TEST_CASE("secret-shaped text nobody registered is scrubbed in every escape encoding") {
  const bool ok = rc::check("unknown shaped secret x escape encoding", [] {
    const auto secret = *rc::gen::noShrink(gen_unknown_shaped_secret());
    const auto& enc = *rc::gen::elementOf(encodings());
    RC_PRE(!enc.reencodes_bytes);
    RC_TAG(enc.name);
    const auto before = *gen_prose();
    const auto after = *gen_prose();
    const std::string text = before + enc.encode(secret) + after;
    RC_ASSERT(leaks_in(text, secret, true));
    const auto scrubbed = detail::scrub(text);
    RC_LOG() << "scrubbed: " << scrubbed;
    RC_ASSERT_FALSE(leaks_in(scrubbed, secret, true));
  });
  CHECK(ok);
}

TEST_CASE("context rules: values after sensitive keys, Authorization schemes and Redis argument echoes") {
  const bool ok = rc::check("short secret in a sensitive context", [] {
    const auto secret = *gen_string_of("abcdefghijklmnopqrstuvwxyz0123456789", 4, 12);
    const std::string key = *rc::gen::element<std::string>("password", "client_secret", "access_token", "AccessKey",
                                                          "api-key", "SharedAccessKey", "sig", "Signature");
    const std::string form = *rc::gen::element<std::string>("json", "form", "conn", "header");
    std::string text;
    if (form == "json") text = "{\"error\":\"bad\",\"" + key + "\": \"" + secret + "\"}";
    if (form == "form") text = "grant_type=x&" + key + "=" + secret + "&scope=y";
    if (form == "conn") text = "endpoint=https://x.example/;" + key + "=" + secret + ";";
    if (form == "header") text = "Authorization: Bearer " + secret + "\r\nX: y";
    const auto scrubbed = detail::scrub(text);
    RC_ASSERT(scrubbed.find(secret) == std::string::npos);
  });
  CHECK(ok);
  const auto redis = detail::scrub("ERR unknown command 'AUTH', with args beginning with: 'pw' 'x'");
  CHECK(redis.find("pw") == std::string::npos);
  CHECK(redis.find("ERR unknown command") != std::string::npos);
  // Ordinary messages keep their meaning.
  for (const char* plain : {"invalid token: it has 4 dot-separated segments; a JWT has 3 (signed) or 5 (encrypted)",
                            "GET https://tokens.example.com/api/token answered HTTP 503",
                            "RefreshPolicy::min_refresh_interval must be in (0, 1 h]",
                            "request id 123e4567-e89b-12d3-a456-426614174000 failed"}) {
    CAPTURE(plain);
    CHECK(detail::scrub(plain) == plain);
  }
}

// ---------------------------------------------------------------------------------------
// Every diagnostic channel, with generated secrets and encodings: what users see (Error::what,
// log lines, as DiagnosticsCapture observes them) never holds the secret.

namespace {

enum class Channel { fetcher_fail, fetcher_throw, refreshed_listener, will_expire_listener, refresh_failed_listener,
                     log_line, error_ctor };
const Channel kChannels[] = {Channel::fetcher_fail,           Channel::fetcher_throw, Channel::refreshed_listener,
                             Channel::will_expire_listener,   Channel::refresh_failed_listener,
                             Channel::log_line,               Channel::error_ctor};

// Runs one credential through `channel` with `text` as the outside text; returns what the
// user got as an error message (empty when the channel does not produce one).
std::string run_channel(Channel channel, const std::string& known_token, const std::string& text) {
  VirtualEnv env;
  TokenCredentialOptions o;
  o.clock = env.clock;
  o.initial_token = AccessToken{known_token, env.now() + 1h};
  int calls = 0;
  o.fetcher = Fetcher::async([&, channel](FetchContext, FetchCompletion done) {
    ++calls;
    if (channel == Channel::fetcher_throw) throw std::runtime_error(text);
    if (channel == Channel::fetcher_fail) return done.fail(std::make_exception_ptr(std::runtime_error(text)));
    done.succeed(AccessToken{make_jwt(env.now() + 1h, "next"), env.now() + 1h});
  });
  auto cred = TokenCredential::create(env.io.get_executor(), o);
  std::vector<Subscription> subs;
  auto thrower = [text](TokenCredential&, const TokenEvent&) { throw std::runtime_error(text); };
  if (channel == Channel::refreshed_listener) subs.push_back(cred->on_token_refreshed(thrower));
  if (channel == Channel::will_expire_listener) subs.push_back(cred->on_token_will_expire(thrower));
  if (channel == Channel::refresh_failed_listener) subs.push_back(cred->on_refresh_failed(thrower));
  if (channel == Channel::log_line) log(LogLevel::error, "user code says: " + text);
  if (channel == Channel::error_ctor) return Error(errc::fetch_failed, "wrapped: " + text).what();
  if (channel == Channel::refresh_failed_listener) {
    // Make the fetch fail so refresh_failed fires.
    cred->invalidate(known_token);
  }
  env.run_for(2h);  // will-expire, a refresh, its events
  std::string message;
  if (channel == Channel::fetcher_fail || channel == Channel::fetcher_throw) {
    cred->invalidate(cred->cached_token());
    if (auto e = get_error_now(*cred, env)) message = message_of(e);
  }
  cred->close();
  env.drain();
  return message;
}

}  // namespace

TEST_CASE("every channel x every encoding x known and unknown secrets: no diagnostic shows the secret") {
  const auto level = log_level();
  set_log_level(LogLevel::off);  // lines still reach the capture (it sees every level)
  std::mt19937_64 rng(20261204);
  const std::string b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  auto random_text = [&](std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += b64url[rng() % b64url.size()];
    return s;
  };
  int variants = 0;
  for (auto channel : kChannels) {
    for (const auto& enc : encodings()) {
      for (int kind = 0; kind < 2; ++kind) {
        // kind 0: the credential's own token (known); kind 1: a token it never saw (JWT-shaped).
        const std::string known = make_jwt_exp("1900000000", "known-" + random_text(12)) + random_text(8);
        const std::string secret = kind == 0 ? known : make_jwt_exp("1900000001", "unknown-" + random_text(12));
        if (kind == 1 && enc.reencodes_bytes) continue;  // an unknown, re-encoded token has no shape left
        CAPTURE(static_cast<int>(channel));
        CAPTURE(enc.name);
        CAPTURE(kind);
        DiagnosticsCapture capture;
        capture.add_secret(secret, "generated token");
        const auto message = run_channel(channel, known, "upstream said: {\"t\":\"" + enc.encode(secret) + "\"}");
        capture.inspect("error message", message);
        CHECK_MESSAGE(capture.leaks().empty(), capture.report());
        ++variants;
      }
    }
  }
  set_log_level(level);
  MESSAGE("channel x encoding x secret variants: " << variants);
}

// ---------------------------------------------------------------------------------------
// The instances the review found.

TEST_CASE("instance: a fetcher's exception quoting the current token does not reach Error::what()") {
  VirtualEnv env;
  const auto token = make_jwt(env.now() + 1h, "instance-fetcher");
  TokenCredentialOptions o;
  o.clock = env.clock;
  o.initial_token = AccessToken{token, env.now() + 1h};
  o.fetcher = Fetcher::async([&](FetchContext, FetchCompletion) -> void {
    throw std::runtime_error("refresh of " + token + " failed");
  });
  auto cred = TokenCredential::create(env.io.get_executor(), o);
  cred->invalidate(token);
  DiagnosticsCapture capture;
  capture.add_secret(token, "current token");
  const auto e = get_error_now(*cred, env);
  REQUIRE(e);
  const auto what = message_of(e);
  CHECK(what.find(token) == std::string::npos);
  CHECK(what.find("refresh of") != std::string::npos);  // the rest of the message survives
  CHECK_MESSAGE(capture.leaks().empty(), capture.report());
}

TEST_CASE("instance: a token_refreshed listener's exception quoting the token does not reach the log") {
  VirtualEnv env;
  TokenCredentialOptions o;
  o.clock = env.clock;
  o.fetcher = Fetcher::async([&](FetchContext, FetchCompletion done) {
    done.succeed(AccessToken{make_jwt(env.now() + 1h, "instance-listener"), env.now() + 1h});
  });
  auto cred = TokenCredential::create(env.io.get_executor(), o);
  std::vector<std::string> lines;
  auto previous = set_log_handler([&](LogLevel, std::string_view line) { lines.emplace_back(line); });
  auto sub = cred->on_token_refreshed([](TokenCredential& c, const TokenEvent&) {
    throw std::runtime_error("cannot use " + c.cached_token().token());
  });
  const auto token = get_now(*cred, env);
  env.drain();
  set_log_handler(previous);
  REQUIRE_FALSE(lines.empty());
  for (const auto& line : lines) {
    CHECK(line.find(token.token()) == std::string::npos);
    CHECK(line.find("listener threw") != std::string::npos);
  }
}

TEST_CASE("instance: a 401 body echoing the Authorization value (JSON \\/ escaping, any encoding) is scrubbed") {
  int variants = 0;
  for (const auto& enc : encodings()) {
    const std::string secret = "abc/def+ghi/" + std::to_string(variants) + "/jkl-mno_pqr~stu.vwx/yz0123456789";
    LoopbackHttpServer server([&](const HttpExchange& ex) {
      HttpReply r;
      r.status = 401;
      r.content_type = "application/json";
      const auto auth = ex.header("Authorization");
      r.body = "{\"error\":\"invalid_client\",\"received\":\"" + enc.encode(auth) + "\"}";
      return r;
    });
    HttpTokenSourceOptions so;
    so.url = server.url("/token");
    so.headers = {{"Authorization", "Bearer " + secret}};
    boost::asio::io_context io;
    HttpTokenSource source(io.get_executor(), so);
    std::exception_ptr error;
    source.async_fetch([&](std::exception_ptr e, AccessToken) { error = e; });
    io.run();
    REQUIRE(error);
    CAPTURE(enc.name);
    DiagnosticsCapture capture;
    capture.add_secret(secret, "Authorization value");
    capture.inspect("error", message_of(error));
    CHECK_MESSAGE(capture.leaks().empty(), capture.report());
    CHECK(message_of(error).find("401") != std::string::npos);
    ++variants;
  }
  MESSAGE("401 echo variants: " << variants);
}

TEST_CASE("instance: Redis echoing a renamed-away AUTH with the password is scrubbed from the log") {
  // A real redis-server with AUTH renamed away: it answers our AUTH with
  // "ERR unknown command 'AUTH', with args beginning with: '<password>'".
  for (const std::string password : {"pw", "hunter2-hunter2", "S3cr3t/Pa55+word=="}) {
    CAPTURE(password);
    cachetest::RedisServer redis({"--rename-command", "AUTH", ""});
    std::vector<std::string> lines;
    auto previous = set_log_handler([&](LogLevel, std::string_view line) { lines.emplace_back(line); });
    const auto level = log_level();
    set_log_level(LogLevel::debug);
    RedisTokenCacheOptions o;
    o.port = redis.port();
    o.password = password;
    o.keys = {CacheEncryptionKey::generate()};
    o.connect_timeout = 2s;
    o.command_timeout = 2s;
    boost::asio::thread_pool pool(1);
    std::string what;
    try {
      auto cache = RedisTokenCache::create(pool.get_executor(), o);
      cache->async_get(TokenCacheKey("issue-12"), boost::asio::use_future).get();
    } catch (const std::exception& e) {
      what = e.what();
    }
    set_log_level(level);
    set_log_handler(previous);
    REQUIRE_FALSE(what.empty());  // the renamed-away AUTH did fail the call...
    bool echoed = false;          // ...through the Redis error that echoes the password
    for (const auto& line : lines) echoed |= line.find("unknown command") != std::string::npos;
    echoed |= what.find("unknown command") != std::string::npos;
    std::string context_text = "error: " + what;
    for (const auto& l : lines) context_text += "; line: " + l;
    INFO(context_text);
    CHECK(echoed);
    lines.push_back(what);
    for (const auto& line : lines) {
      CAPTURE(line);
      CHECK(line.find("'" + password + "'") == std::string::npos);
      if (password.size() >= 8) CHECK(line.find(password) == std::string::npos);
    }
  }
}

}  // TEST_SUITE
