// Limits of the caches: every options struct's validate() over every duration field x
// {negative, zero, 1 ms, typical, max(), min()}; real operations with timeouts at
// milliseconds::max() (memory, encrypted file with a held lock, Redis); tokens expiring at or
// near time_point::max() / min() stored and read back: clamped or rejected, never wrapped.
#include <credkit/caches/cached_token_source.hpp>
#include <credkit/caches/encrypted_file_token_cache.hpp>
#include <credkit/caches/memory_token_cache.hpp>
#include <credkit/caches/redis_token_cache.hpp>

#include "caches/cache_time.hpp"
#include "caches/record_crypto.hpp"
#include "caches/redis_test_support.hpp"
#include "support/temp_files.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <openssl/evp.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <cstring>
#include <functional>
#include <future>
#include <limits>
#include <sstream>

using namespace credkit;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using ms = std::chrono::milliseconds;
using wall = std::chrono::system_clock;

namespace {

// ---- validate(): a generated loop over every duration field ------------------------------

enum class Rule { non_negative, positive };

template <class Options>
struct DurationField {
  const char* name;
  ms Options::*member;
  Rule rule;
  ms typical;
};

struct Probe {
  const char* label;
  ms value;
};

std::vector<Probe> probes(ms typical) {
  return {{"negative", ms(-1)}, {"zero", ms(0)},        {"1 ms", ms(1)},
          {"typical", typical}, {"max()", ms::max()}, {"min()", ms::min()}};
}

bool allowed(Rule rule, ms v) { return rule == Rule::positive ? v.count() > 0 : v.count() >= 0; }

/// The message `f` throws (empty if it does not throw); fails the test on a non-invalid_argument error.
std::string rejection_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    CHECK_MESSAGE((e.code() == make_error_code(errc::invalid_argument)), e.what());
    return e.what();
  }
  return {};
}

/// For every field x probe: validate() and the factory (`create`) accept exactly the
/// documented range, and a rejection names "<Struct>::<field>" and states the range.
/// Returns how many combinations were checked.
template <class Options>
int check_duration_fields(const std::string& struct_name, const Options& valid,
                          const std::vector<DurationField<Options>>& fields,
                          const std::function<void(const Options&)>& create) {
  REQUIRE(rejection_of([&] { valid.validate(); }).empty());
  int checked = 0;
  for (const auto& field : fields) {
    for (const auto& probe : probes(field.typical)) {
      CAPTURE(struct_name);
      CAPTURE(field.name);
      CAPTURE(probe.label);
      Options o = valid;
      o.*(field.member) = probe.value;
      const bool ok = allowed(field.rule, probe.value);
      const std::string by_validate = rejection_of([&] { o.validate(); });
      const std::string by_create = rejection_of([&] { create(o); });
      CHECK(by_validate.empty() == ok);
      CHECK(by_create == by_validate);  // the factory calls validate()
      if (!ok) {
        const std::string prefix = struct_name + "::" + field.name + " must be ";
        CHECK_MESSAGE(by_validate.rfind(prefix, 0) == 0, by_validate);
        const std::string range = field.rule == Rule::positive ? "> 0 ms" : ">= 0 ms";
        CHECK_MESSAGE(by_validate.find(prefix + range) == 0, by_validate);
        CHECK_MESSAGE(by_validate.find("milliseconds::max(): ") != std::string::npos, by_validate);
        CHECK_MESSAGE(by_validate.find("(got ") != std::string::npos, by_validate);
      }
      ++checked;
    }
  }
  return checked;
}

using cachetest::key_of;
using test::read_file;
using test::TempDir;

std::int64_t be64(const std::string& s, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return static_cast<std::int64_t>(v);
}

/// An expiry as records store it: whole milliseconds since the epoch, toward zero.
wall::time_point as_stored(wall::time_point t) {
  return wall::time_point(std::chrono::duration_cast<wall::duration>(std::chrono::duration_cast<ms>(t.time_since_epoch())));
}

/// The expiries probed: the ends of system_clock's range, near them, and ordinary ones.
std::vector<std::pair<const char*, wall::time_point>> extreme_expiries() {
  using tp = wall::time_point;
  return {{"max()", tp::max()},
          {"max() - 1 ns", tp::max() - 1ns},
          {"max() - 30 s", tp::max() - 30s},
          {"min()", tp::min()},
          {"min() + 1 ns", tp::min() + 1ns},
          {"min() + 30 s", tp::min() + 30s},
          {"min() + 1 h", tp::min() + 1h},
          {"epoch", tp{}},
          {"now + 1 h", wall::now() + 1h}};
}

/// Whether an entry with this expiry is worth keeping now, under a 30 s margin (saturating).
bool storable(wall::time_point expiry) { return detail::sub_sat(expiry, ms(30s)) > wall::now() + 1s; }

/// A version-1 record sealed with `ring`'s primary key holding `expiry_ms` as its raw
/// plaintext expiry (any int64, also outside system_clock's range), per docs/caches.md.
std::string seal_record(const detail::Keyring& ring, std::string_view cache_key, std::int64_t expiry_ms,
                        std::string_view token) {
  const auto& key = ring.primary();
  std::string plain(8, '\0');
  auto u = static_cast<std::uint64_t>(expiry_ms);
  for (int i = 7; i >= 0; --i, u >>= 8) plain[i] = static_cast<char>(u & 0xff);
  plain += token;
  std::string aad("credkit-token-record\0", 21);
  aad += '\x01';
  aad.append(reinterpret_cast<const char*>(key.id.data()), 8);
  aad += cache_key;
  std::string out(1 + 8 + 12 + plain.size() + 16, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  p[0] = 1;
  std::memcpy(p + 1, key.id.data(), 8);
  detail::random_bytes(std::span<unsigned char>(p + 9, 12));
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  const bool ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.enc.data(), p + 9) == 1 &&
                  EVP_EncryptUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                                    static_cast<int>(aad.size())) == 1 &&
                  EVP_EncryptUpdate(ctx, p + 21, &len, reinterpret_cast<const unsigned char*>(plain.data()),
                                    static_cast<int>(plain.size())) == 1 &&
                  EVP_EncryptFinal_ex(ctx, p + 21 + len, &len) == 1 &&
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, p + 21 + plain.size()) == 1;
  EVP_CIPHER_CTX_free(ctx);
  REQUIRE(ok);
  return out;
}


/// Redis options with every timeout at milliseconds::max() (no limit).
RedisTokenCacheOptions unlimited_redis_options(int port) {
  RedisTokenCacheOptions o;
  o.port = port;
  o.keys = {key_of(0x42)};
  o.connect_timeout = ms::max();
  o.command_timeout = ms::max();
  o.lock_ttl = ms::max();
  o.wait_timeout = ms::max();
  o.retry_after_failure = ms::max();
  o.coalesce_in_process = false;
  return o;
}

}  // namespace

TEST_CASE("options validate(): every duration field x {negative, 0, 1 ms, typical, max, min} of every cache options struct") {
  boost::asio::io_context io;
  int checked = 0;

  MemoryTokenCacheOptions memory;
  checked += check_duration_fields<MemoryTokenCacheOptions>(
      "MemoryTokenCacheOptions", memory,
      {{"expiry_margin", &MemoryTokenCacheOptions::expiry_margin, Rule::non_negative, 30s}},
      [&](const MemoryTokenCacheOptions& o) { MemoryTokenCache::create(io.get_executor(), o); });

  EncryptedFileTokenCacheOptions file;
  file.path = "/tmp/credkit-limits-never-written.bin";  // create does no I/O
  file.keys = {key_of(1)};
  checked += check_duration_fields<EncryptedFileTokenCacheOptions>(
      "EncryptedFileTokenCacheOptions", file,
      {{"expiry_margin", &EncryptedFileTokenCacheOptions::expiry_margin, Rule::non_negative, 30s},
       {"lock_timeout", &EncryptedFileTokenCacheOptions::lock_timeout, Rule::non_negative, 10s}},
      [&](const EncryptedFileTokenCacheOptions& o) { EncryptedFileTokenCache::create(io.get_executor(), o); });

  RedisTokenCacheOptions redis;
  redis.keys = {key_of(2)};  // create connects lazily: no Redis needed
  checked += check_duration_fields<RedisTokenCacheOptions>(
      "RedisTokenCacheOptions", redis,
      {{"connect_timeout", &RedisTokenCacheOptions::connect_timeout, Rule::positive, 500ms},
       {"command_timeout", &RedisTokenCacheOptions::command_timeout, Rule::positive, 500ms},
       {"expiry_margin", &RedisTokenCacheOptions::expiry_margin, Rule::non_negative, 30s},
       {"lock_ttl", &RedisTokenCacheOptions::lock_ttl, Rule::positive, 15s},
       {"poll_interval", &RedisTokenCacheOptions::poll_interval, Rule::positive, 20ms},
       {"wait_timeout", &RedisTokenCacheOptions::wait_timeout, Rule::positive, 20s},
       {"retry_after_failure", &RedisTokenCacheOptions::retry_after_failure, Rule::non_negative, 1s}},
      [&](const RedisTokenCacheOptions& o) { RedisTokenCache::create(io.get_executor(), o); });

  auto memory_cache = MemoryTokenCache::create(io.get_executor());
  const auto inner = Fetcher::blocking([](const FetchContext&) { return AccessToken{"inner-token-0123456789", wall::now() + 1h}; });
  checked += check_duration_fields<CachedFetcherOptions>(
      "CachedFetcherOptions", CachedFetcherOptions{},
      {{"min_validity", &CachedFetcherOptions::min_validity, Rule::non_negative, 2min}},
      [&](const CachedFetcherOptions& o) { make_cached_fetcher(memory_cache, TokenCacheKey("u"), inner, o); });
  CHECK(checked == 6 * (1 + 2 + 7 + 1));
  MESSAGE("duration field x value combinations checked: " << checked);
}

TEST_CASE("options validate(): the other fields name themselves and their range") {
  auto starts = [](const std::function<void()>& f, const std::string& prefix) {
    const auto m = rejection_of(f);
    CHECK_MESSAGE(m.rfind(prefix, 0) == 0, "'" << m << "' does not start with '" << prefix << "'");
  };
  MemoryTokenCacheOptions m;
  m.max_entries = 0;
  starts([&] { m.validate(); }, "MemoryTokenCacheOptions::max_entries must be >= 1");
  m = {};
  for (std::size_t shards : {std::size_t{0}, std::size_t{257}, std::size_t(-1)}) {
    m.shards = shards;
    starts([&] { m.validate(); }, "MemoryTokenCacheOptions::shards must be in 1..256");
  }
  for (std::size_t shards : {std::size_t{1}, std::size_t{3}, std::size_t{256}}) {
    m.shards = shards;
    CHECK(rejection_of([&] { m.validate(); }).empty());
  }

  EncryptedFileTokenCacheOptions f;
  f.keys = {key_of(1)};
  starts([&] { f.validate(); }, "EncryptedFileTokenCacheOptions::path");
  f.path = "/tmp/x";
  f.max_entries = 0;
  starts([&] { f.validate(); }, "EncryptedFileTokenCacheOptions::max_entries must be >= 1");
  f.max_entries = 1;
  f.keys.clear();
  starts([&] { f.validate(); }, "EncryptedFileTokenCacheOptions::keys");

  RedisTokenCacheOptions r;
  r.keys = {key_of(2)};
  for (int port : {0, -1, 65536}) {
    r.port = port;
    starts([&] { r.validate(); }, "RedisTokenCacheOptions::port must be in 1..65535");
  }
  r.port = 6379;
  r.database = -1;
  starts([&] { r.validate(); }, "RedisTokenCacheOptions::database must be >= 0");
  r.database = 0;
  r.host.clear();
  starts([&] { r.validate(); }, "RedisTokenCacheOptions::host");
  r.host = "127.0.0.1";
  r.pool_size = 0;  // allowed: no pooling
  CHECK(rejection_of([&] { r.validate(); }).empty());
  r.keys.clear();
  starts([&] { r.validate(); }, "RedisTokenCacheOptions::keys");
}

TEST_CASE("cache time rules saturate: freshness and staleness at the ends of system_clock's range") {
  using tp = wall::time_point;
  const auto now = wall::now();
  CHECK(detail::has_validity_left(tp::max(), now, 2min));
  CHECK(!detail::has_validity_left(tp::max(), now, ms::max()));  // max(): never met
  CHECK(!detail::has_validity_left(tp::min(), now, 0ms));        // would wrap to "far future"
  CHECK(!detail::has_validity_left(tp::min() + 1ns, tp::max(), 0ms));
  CHECK(detail::has_validity_left(tp::max(), tp::min(), 0ms));   // the difference saturates
  CHECK(!detail::has_validity_left(now + 1h, now, ms::max()));
  CHECK(detail::stale_point(tp::min(), 30s, now, std::nullopt) == tp::min());
  CHECK(detail::stale_point(tp::min() + 1ns, ms::max(), now, std::nullopt) == tp::min());
  CHECK(detail::stale_point(tp::max(), 0ms, now, ms::max()) == tp::max());
  CHECK(detail::stale_point(tp::max(), 30s, tp::max() - 1s, ms::max()) == tp::max() - 30s);
  CHECK(detail::stale_point(now + 1h, 30s, now, 1min) == now + 1min);
}

TEST_CASE("MemoryTokenCache: expiries at and near time_point::max()/min() are kept or dropped, never wrapped") {
  boost::asio::thread_pool pool(1);
  auto cache = MemoryTokenCache::create(pool.get_executor());  // margin 30 s, system clock
  int stored = 0;
  for (const auto& [label, expiry] : extreme_expiries()) {
    CAPTURE(label);
    const TokenCacheKey k(std::string("user-") + label);
    const AccessToken t{"extreme-token-0123456789abcdef", expiry};
    for (const std::optional<ms> ttl : {std::optional<ms>{}, std::optional<ms>{ms::max()}}) {
      cache->put(k, t, ttl);
      const auto got = cache->get(k);
      CHECK(got.has_value() == storable(expiry));
      if (got) CHECK(*got == t);  // kept exactly
      // The async path with an explicit TTL of max() agrees.
      cachetest::get_within(cache->async_put(k, t, ms::max(), boost::asio::use_future));
      CHECK(cachetest::get_within(cache->async_get(k, boost::asio::use_future)).has_value() == storable(expiry));
    }
    stored += storable(expiry);
  }
  CHECK(stored == 4);  // max, max - 1 ns, max - 30 s, now + 1 h

  // Cache-aside: a token expiring at max() is fresh for any min_validity but max(); a token
  // that wrapped would be served although it expired in 1677.
  std::atomic<int> fetches{0};
  TokenCache::UpstreamFetch fetch = [&](TokenCache::FetchDone done) {
    ++fetches;
    done(nullptr, AccessToken{"fetched-0123456789abcdef", wall::now() + 1h});
  };
  const TokenCacheKey far("far-future");
  cache->put(far, AccessToken{"far-token-0123456789", wall::time_point::max()});
  CHECK(cachetest::get_or_fetch(*cache, far, fetch, 2min).token == "far-token-0123456789");
  CHECK(cachetest::get_or_fetch(*cache, far, fetch, std::chrono::hours(24 * 365 * 100)).token == "far-token-0123456789");
  CHECK(fetches == 0);
  CHECK(cachetest::get_or_fetch(*cache, far, fetch, ms::max()).token == "fetched-0123456789abcdef");
  CHECK(fetches == 1);
  const TokenCacheKey past("long-past");
  cache->put(past, AccessToken{"ancient-token-0123456789", wall::time_point::min()});
  CHECK(!cache->get(past));
  CHECK(cachetest::get_or_fetch(*cache, past, fetch, 0ms).token == "fetched-0123456789abcdef");
  CHECK(fetches == 2);
  // Negative arguments are rejected, not wrapped.
  CHECK_THROWS_AS(cache->put(past, AccessToken{"x-0123456789", wall::now() + 1h}, ms::min()), Error);
  CHECK_THROWS_AS(cachetest::get_or_fetch(*cache, far, fetch, ms::min()), Error);
  CHECK_THROWS_AS(cachetest::get_or_fetch(*cache, far, fetch, -1ms), Error);
  CHECK(fetches == 2);
  pool.join();
}

TEST_CASE("EncryptedFileTokenCache: lock_timeout = max() waits for a held lock instead of failing; extreme expiries") {
  TempDir dir;
  boost::asio::thread_pool pool(1);
  const auto path = dir.path / "tokens.bin";
  EncryptedFileTokenCacheOptions o;
  o.path = path;
  o.keys = {key_of(5)};
  o.lock_timeout = ms::max();
  auto cache = EncryptedFileTokenCache::create(pool.get_executor(), o);
  const TokenCacheKey k("alice", {"chat"});
  const AccessToken t{"file-token-0123456789abcdef", std::chrono::floor<ms>(wall::now() + 1h)};
  cachetest::get_within(cache->async_put(k, t, boost::asio::use_future));
  CHECK(cachetest::get_within(cache->async_get(k, boost::asio::use_future)) == t);

  // Another writer holds the lock: the write waits (no limit) and lands once it is released.
  const int lock_fd = ::open((path.string() + ".lock").c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(lock_fd >= 0);
  REQUIRE(::flock(lock_fd, LOCK_EX) == 0);
  const AccessToken t2{"file-token-2-0123456789abcdef", std::chrono::floor<ms>(wall::now() + 2h)};
  auto pending = cache->async_put(k, t2, boost::asio::use_future);
  CHECK(pending.wait_for(400ms) == std::future_status::timeout);  // neither failed at once nor wrapped
  ::flock(lock_fd, LOCK_UN);
  ::close(lock_fd);
  cachetest::get_within(std::move(pending), 10s);
  CHECK(cachetest::get_within(cache->async_get(k, boost::asio::use_future)) == t2);

  // lock_timeout = 0: one attempt, fails at once while the lock is held.
  auto quick_o = o;
  quick_o.lock_timeout = 0ms;
  auto quick = EncryptedFileTokenCache::create(pool.get_executor(), quick_o);
  const int fd2 = ::open((path.string() + ".lock").c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(::flock(fd2, LOCK_EX) == 0);
  auto failing = quick->async_put(k, t, boost::asio::use_future);
  REQUIRE(failing.wait_for(5s) == std::future_status::ready);
  CHECK_THROWS_AS(failing.get(), Error);
  ::flock(fd2, LOCK_UN);
  ::close(fd2);

  // Extreme expiries, checked against the file and record formats (docs/caches.md).
  const std::string salt_of_file = read_file(path).substr(8, 16);
  for (const auto& [label, expiry] : extreme_expiries()) {
    CAPTURE(label);
    const TokenCacheKey ek(std::string("extreme-") + label);
    const AccessToken et{"extreme-file-token-0123456789", expiry};
    cachetest::get_within(cache->async_put(ek, et, ms::max(), boost::asio::use_future));
    const auto got = cachetest::get_within(cache->async_get(ek, boost::asio::use_future));
    CHECK(got.has_value() == storable(expiry));
    if (got) {
      CHECK(got->token == et.token);
      CHECK(got->expires_on == as_stored(expiry));  // whole ms toward zero, not wrapped
    }
    // The file: header | entries (lookup 16 | stale ms BE 8 | record length BE 4 | record).
    const std::string bytes = read_file(path);
    detail::Keyring ring(o.keys, std::span<const unsigned char>(
                                      reinterpret_cast<const unsigned char*>(salt_of_file.data()), 16));
    const auto lookup = detail::Keyring::lookup(ring.primary(), ek.str());
    bool found = false;
    for (std::size_t pos = 28; pos + 28 <= bytes.size();) {
      const auto len = static_cast<std::size_t>(be64(std::string(4, '\0') + bytes.substr(pos + 24, 4), 0));
      if (std::memcmp(bytes.data() + pos, lookup.data(), 16) == 0) {
        found = true;
        const auto stale_ms = be64(bytes, pos + 16);
        CHECK(stale_ms == std::chrono::duration_cast<ms>(detail::sub_sat(expiry, ms(30s)).time_since_epoch()).count());
        const auto record = ring.decrypt(ek.str(), std::string_view(bytes).substr(pos + 28, len));
        CHECK(record.expires_on == as_stored(expiry));
      }
      pos += 28 + len;
    }
    CHECK(found == storable(expiry));
  }

  // A record holding an expiry outside system_clock's range (not something credkit writes)
  // is rejected as corrupt, never converted with a wrap.
  detail::Keyring ring({key_of(9)}, std::span<const unsigned char>(reinterpret_cast<const unsigned char*>("s"), 1));
  for (const std::int64_t raw : {std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min(),
                                 std::chrono::duration_cast<ms>(wall::duration::max()).count() + 1,
                                 std::chrono::duration_cast<ms>(wall::duration::min()).count() - 1}) {
    CAPTURE(raw);
    const auto record = seal_record(ring, "k", raw, "out-of-range-token-0123456789");
    try {
      ring.decrypt("k", record);
      FAIL("an out-of-range expiry was accepted");
    } catch (const Error& e) {
      CHECK((e.code() == make_error_code(errc::cache_corrupt)));
    }
  }
  // The last representable milliseconds still decode.
  for (const auto d : {wall::duration::max(), wall::duration::min()}) {
    const auto raw = std::chrono::duration_cast<ms>(d).count();
    const auto back = ring.decrypt("k", seal_record(ring, "k", raw, "edge-token-0123456789"));
    CHECK(back.expires_on == wall::time_point(std::chrono::duration_cast<wall::duration>(ms(raw))));
  }
  pool.join();
}

TEST_CASE("RedisTokenCache: every timeout at milliseconds::max() works; PX values are capped; extreme expiries") {
  cachetest::RedisServer redis;
  cachetest::CountingTokenService service(1h, 5ms);
  boost::asio::thread_pool pool(1), workers(2);
  auto o = unlimited_redis_options(redis.port());
  o.poll_interval = 20ms;
  auto cache = RedisTokenCache::create(pool.get_executor(), o);
  const TokenCacheKey k("alice", {"chat"});
  const AccessToken t{"redis-limits-token-0123456789", std::chrono::floor<ms>(wall::now() + 10min)};

  // Plain round trip with connect/command timeouts of max(): neither fails at once nor hangs.
  CHECK(!cachetest::get_within(cache->async_get(k, boost::asio::use_future), 10s));
  cachetest::get_within(cache->async_put(k, t, ms::max(), boost::asio::use_future), 10s);
  CHECK(cachetest::get_within(cache->async_get(k, boost::asio::use_future), 10s) == t);
  const auto tok = cachetest::redis_name(o, k, "tok:");
  const auto pttl = std::stoll(redis.command({"PTTL", tok}));
  CHECK(pttl > (10min - 30s - 5s) / 1ms);
  CHECK(pttl <= (10min - 30s) / 1ms);
  cachetest::get_within(cache->async_erase(k, boost::asio::use_future), 10s);
  CHECK(redis.command({"EXISTS", tok}) == "0");

  // Single-flight leader with lock_ttl = max(): the lock's PX is capped (Redis accepts it),
  // the fetch runs once and the lock is released.
  const auto lock = cachetest::redis_name(o, k, "lock:");
  std::string lock_pttl;
  TokenCache::UpstreamFetch inspecting = [&](TokenCache::FetchDone done) {
    boost::asio::post(workers, [&, done] {
      lock_pttl = redis.command({"PTTL", lock});
      done(nullptr, cachetest::http_get_token(service.port()));
    });
  };
  const auto fetched = cachetest::get_or_fetch(*cache, k, inspecting);
  CHECK(service.requests() == 1);
  REQUIRE(!lock_pttl.empty());
  CHECK(std::stoll(lock_pttl) > RedisTokenCacheOptions::max_redis_ttl.count() - 60000);
  CHECK(std::stoll(lock_pttl) <= RedisTokenCacheOptions::max_redis_ttl.count());
  CHECK(redis.command({"EXISTS", lock}) == "0");
  CHECK(cachetest::get_or_fetch(*cache, k, cachetest::service_fetch(workers, service.port())) == fetched);  // from Redis
  CHECK(service.requests() == 1);

  // A get-or-fetch through `c` and how long it took.
  const auto timed_get_or_fetch = [&](TokenCache& c, const TokenCacheKey& k) {
    const auto start = std::chrono::steady_clock::now();
    const auto token = cachetest::get_or_fetch(c, k, cachetest::service_fetch(workers, service.port()));
    return std::pair{token, std::chrono::steady_clock::now() - start};
  };

  // wait_timeout = max(): a follower waits for the holder's lock to expire, then takes over.
  const TokenCacheKey held("held-by-a-dead-instance");
  CHECK(redis.command({"SET", cachetest::redis_name(o, held, "lock:"), "dead-owner", "NX", "PX", "400"}) == "OK");
  const auto [taken, waited] = timed_get_or_fetch(*cache, held);
  CHECK(taken.token.rfind("tok-2-", 0) == 0);
  CHECK(waited >= 300ms);
  CHECK(waited < 5s);

  // poll_interval = max(): one wait, bounded by wait_timeout, then a direct fetch.
  auto slow_poll_o = o;
  slow_poll_o.poll_interval = ms::max();
  slow_poll_o.wait_timeout = 300ms;
  auto slow_poll = RedisTokenCache::create(pool.get_executor(), slow_poll_o);
  const TokenCacheKey busy("busy");
  CHECK(redis.command({"SET", cachetest::redis_name(o, busy, "lock:"), "live-owner", "NX", "PX", "60000"}) == "OK");
  test::LogCapture logs;
  const auto [direct, waited2] = timed_get_or_fetch(*slow_poll, busy);
  CHECK(direct.token.rfind("tok-3-", 0) == 0);
  CHECK(waited2 >= 250ms);
  CHECK(waited2 < 5s);
  CHECK(logs.count("fetching directly") == 1);

  // Extreme expiries: PX from the saturated stale time, read back in whole ms; nothing stored
  // for expiries at or near min().
  for (const auto& [label, expiry] : extreme_expiries()) {
    CAPTURE(label);
    const TokenCacheKey ek(std::string("extreme-") + label);
    const AccessToken et{"extreme-redis-token-0123456789", expiry};
    cachetest::get_within(cache->async_put(ek, et, boost::asio::use_future), 10s);
    const auto got = cachetest::get_within(cache->async_get(ek, boost::asio::use_future), 10s);
    CHECK(got.has_value() == storable(expiry));
    if (got) {
      CHECK(got->token == et.token);
      CHECK(got->expires_on == as_stored(expiry));
      const auto px = std::stoll(redis.command({"PTTL", cachetest::redis_name(o, ek, "tok:")}));
      CHECK(px > 0);
      CHECK(px <= RedisTokenCacheOptions::max_redis_ttl.count());
    } else {
      CHECK(redis.command({"EXISTS", cachetest::redis_name(o, ek, "tok:")}) == "0");
    }
  }

  // connect_timeout = max() towards a port nobody listens on fails promptly (refused), once.
  auto nobody_o = unlimited_redis_options(test::free_loopback_port());
  nobody_o.retry_after_failure = 0ms;
  auto nobody = RedisTokenCache::create(pool.get_executor(), nobody_o);
  CHECK((cachetest::get_error(*nobody, k, 10s).code() == make_error_code(errc::cache_unavailable)));
  pool.join();
  workers.join();
}
