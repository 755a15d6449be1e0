// EncryptedFileTokenCache: round trip, nothing readable on disk, 0600, rotation, wrong key,
// truncation at every offset, bit flips, concurrent writers (threads and processes).
#include <credkit/caches/encrypted_file_token_cache.hpp>

#include "caches/cache_test_support.hpp"
#include "caches/record_crypto.hpp"
#include "support/temp_files.hpp"

#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace credkit;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using cachetest::key_of;
using test::read_file;
using test::TempDir;
using test::write_file;

struct Env {
  boost::asio::thread_pool pool{1};
  ~Env() { pool.join(); }
  std::shared_ptr<EncryptedFileTokenCache> make(const fs::path& path, std::vector<CacheEncryptionKey> keys) {
    EncryptedFileTokenCacheOptions o;
    o.path = path;
    o.keys = std::move(keys);
    return EncryptedFileTokenCache::create(pool.get_executor(), o);
  }
};

std::optional<AccessToken> get(TokenCache& c, const TokenCacheKey& k) {
  return cachetest::get_within(c.async_get(k, boost::asio::use_future));
}
void put(TokenCache& c, const TokenCacheKey& k, const AccessToken& t) {
  cachetest::get_within(c.async_put(k, t, boost::asio::use_future));
}
errc error_of(std::function<void()> f) {
  try {
    f();
  } catch (const Error& e) {
    return static_cast<errc>(e.code().value());
  }
  return errc{};
}

std::chrono::system_clock::time_point exp_in(std::chrono::seconds d) {
  return std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now() + d);
}

const std::string secret = "eyJSECRET-token-value-that-must-never-hit-the-disk-0123456789";

}  // namespace

TEST_CASE("EncryptedFileTokenCache: round trip; file is 0600 and holds neither token nor user id") {
  TempDir dir;
  Env env;
  const auto path = dir.path / "tokens.bin";
  auto cache = env.make(path, {key_of(1)});
  const TokenCacheKey k("alice@example.com", {"chat"});
  const AccessToken t{secret, exp_in(1h)};
  CHECK(!get(*cache, k));  // no file yet: a miss
  put(*cache, k, t);
  auto got = get(*cache, k);
  REQUIRE(got);
  CHECK(*got == t);

  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat((path.string() + ".lock").c_str(), &st) == 0);
  CHECK((st.st_mode & 0077) == 0);
  const auto bytes = read_file(path);
  CHECK(bytes.find("SECRET") == std::string::npos);
  CHECK(bytes.find(secret.substr(0, 12)) == std::string::npos);
  CHECK(bytes.find("alice") == std::string::npos);

  // A second cache object (another process, in effect) reads it.
  auto other = env.make(path, {key_of(1)});
  CHECK(get(*other, k) == t);
  cachetest::get_within(other->async_erase(k, boost::asio::use_future));
  CHECK(!get(*cache, k));
  // No temp files left behind.
  int files = 0;
  for (auto& e : fs::directory_iterator(dir.path)) {
    (void)e;
    ++files;
  }
  CHECK(files == 2);  // tokens.bin and tokens.bin.lock
}

TEST_CASE("EncryptedFileTokenCache: key rotation and wrong key") {
  TempDir dir;
  Env env;
  const auto path = dir.path / "tokens.bin";
  const TokenCacheKey a("a"), b("b");
  const auto exp = exp_in(1h);
  auto old_cache = env.make(path, {key_of(1)});
  put(*old_cache, a, AccessToken{"token-a-0123456789abcdefghij", exp});

  // Rotation: the new key first, the old one still decrypts.
  auto rotated = env.make(path, {key_of(2), key_of(1)});
  CHECK(get(*rotated, a)->token == "token-a-0123456789abcdefghij");
  put(*rotated, b, AccessToken{"token-b-0123456789abcdefghij", exp});
  // The old-key-only cache cannot read b's record (new key) but still reads a.
  CHECK(get(*old_cache, a).has_value());
  CHECK(!get(*old_cache, b).has_value());

  // A cache with an unrelated key: a clear error, never a token.
  auto stranger = env.make(path, {key_of(3)});
  CHECK(error_of([&] { get(*stranger, a); }) == errc::cache_wrong_key);
  // It can still write (its entries are kept alongside the others').
  put(*stranger, a, AccessToken{"token-c-0123456789abcdefghij", exp});
  CHECK(get(*stranger, a)->token == "token-c-0123456789abcdefghij");
  CHECK(get(*rotated, a)->token == "token-a-0123456789abcdefghij");
}

TEST_CASE("EncryptedFileTokenCache: passphrase keys use PBKDF2 with the file's salt") {
  TempDir dir;
  Env env;
  const auto path = dir.path / "tokens.bin";
  CHECK_THROWS_AS(CacheEncryptionKey::from_passphrase("pw", 1000), Error);
  auto cache = env.make(path, {CacheEncryptionKey::from_passphrase("correct horse battery staple")});
  const TokenCacheKey k("p");
  put(*cache, k, AccessToken{secret, exp_in(1h)});
  auto same = env.make(path, {CacheEncryptionKey::from_passphrase("correct horse battery staple")});
  CHECK(get(*same, k)->token == secret);
  auto wrong = env.make(path, {CacheEncryptionKey::from_passphrase("wrong horse")});
  CHECK(error_of([&] { get(*wrong, k); }) == errc::cache_wrong_key);
  std::ostringstream os;
  os << CacheEncryptionKey::from_passphrase("correct horse battery staple");
  CHECK(os.str().find("horse") == std::string::npos);
}

TEST_CASE("EncryptedFileTokenCache: truncation at every offset and bit flips never yield a wrong token") {
  TempDir dir;
  Env env;
  const auto path = dir.path / "tokens.bin";
  auto cache = env.make(path, {key_of(7)});
  const TokenCacheKey k("victim");
  const AccessToken t{"tok-0123456789abcdefghijklmnop", exp_in(1h)};
  put(*cache, k, t);
  const auto original = read_file(path);
  REQUIRE(original.size() > 60);

  int errors = 0, misses = 0;
  for (std::size_t n = 0; n < original.size(); ++n) {
    write_file(path, original.substr(0, n));
    auto fresh = env.make(path, {key_of(7)});
    try {
      auto v = get(*fresh, k);
      CHECK_MESSAGE(!v, "truncated to " << n << " bytes yet returned a token");
      ++misses;
    } catch (const Error& e) {
      CHECK((e.code() == make_error_code(errc::cache_corrupt)));
      ++errors;
    }
  }
  CHECK(errors + misses == static_cast<int>(original.size()));
  CHECK(errors > 0);

  int flips_ok = 0;
  for (std::size_t i = 0; i < original.size(); ++i) {
    for (int bit : {0, 7}) {
      auto damaged = original;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      write_file(path, damaged);
      auto fresh = env.make(path, {key_of(7)});
      try {
        auto v = get(*fresh, k);
        // A flip in the stale time may keep or drop the entry; a token is only ever the right one.
        if (v) CHECK(*v == t);
        ++flips_ok;
      } catch (const Error& e) {
        const auto c = static_cast<errc>(e.code().value());
        CHECK((c == errc::cache_corrupt || c == errc::cache_wrong_key));
        ++flips_ok;
      }
    }
  }
  CHECK(flips_ok == static_cast<int>(original.size()) * 2);

  // A write over a damaged file replaces it (with a warning) instead of failing forever.
  write_file(path, original.substr(0, 10));
  test::LogCapture logs;
  auto fresh = env.make(path, {key_of(7)});
  put(*fresh, k, t);
  CHECK(get(*fresh, k) == t);
  CHECK(logs.count("damaged") == 1);
}

TEST_CASE("cache records: expiries at the ends of system_clock's range round-trip (no overflow on read)") {
  const std::vector<CacheEncryptionKey> keys{CacheEncryptionKey::from_raw(std::vector<unsigned char>(32, 7))};
  const std::string salt = "credkit-test";
  detail::Keyring ring(keys, std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(salt.data()), salt.size()));
  using std::chrono::system_clock;
  using ms = std::chrono::milliseconds;
  for (const auto at : {system_clock::time_point::max(), system_clock::time_point::min(), system_clock::time_point{}}) {
    const AccessToken token{"eyJrange-test-token-0123456789", at};
    const auto back = ring.decrypt("k", ring.encrypt("k", token));
    CHECK(back.token == token.token);
    // Stored in whole milliseconds (toward zero).
    CHECK(back.expires_on == system_clock::time_point(std::chrono::duration_cast<system_clock::duration>(
                                 std::chrono::duration_cast<ms>(at.time_since_epoch()))));
  }
}

TEST_CASE("EncryptedFileTokenCache: concurrent writers on threads lose nothing") {
  TempDir dir;
  Env env;
  const auto path = dir.path / "tokens.bin";
  const auto exp = exp_in(1h);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto cache = env.make(path, {key_of(9)});
      for (int i = 0; i < 10; ++i) {
        const std::string user = "t" + std::to_string(t) + "-" + std::to_string(i);
        put(*cache, TokenCacheKey(user), AccessToken{"tok-" + user + "-0123456789abcdef", exp});
      }
    });
  }
  for (auto& th : threads) th.join();
  auto reader = env.make(path, {key_of(9)});
  for (int t = 0; t < 4; ++t)
    for (int i = 0; i < 10; ++i) {
      const std::string user = "t" + std::to_string(t) + "-" + std::to_string(i);
      auto v = get(*reader, TokenCacheKey(user));
      REQUIRE_MESSAGE(v, user << " was lost");
      CHECK(v->token == "tok-" + user + "-0123456789abcdef");
    }
}

TEST_CASE("EncryptedFileTokenCache: concurrent writers in 4 processes lose nothing") {
  TempDir dir;
  const auto path = dir.path / "tokens.bin";
  std::vector<pid_t> kids;
  for (int p = 0; p < 4; ++p)
    kids.push_back(cachetest::spawn({cachetest::self_exe()},
                                    {{"CREDKIT_CACHES_CHILD", "file-writer"},
                                     {"CREDKIT_CHILD_PATH", path.string()},
                                     {"CREDKIT_CHILD_ID", std::to_string(p)}},
                                    false));
  for (auto pid : kids) CHECK(cachetest::wait_child(pid, 120s) == 0);
  Env env;
  auto reader = env.make(path, {key_of(9)});
  int found = 0;
  for (int p = 0; p < 4; ++p)
    for (int i = 0; i < 15; ++i) {
      const std::string user = "p" + std::to_string(p) + "-" + std::to_string(i);
      auto v = get(*reader, TokenCacheKey(user));
      if (v && v->token == "tok-" + user + "-0123456789abcdef") ++found;
    }
  CHECK(found == 60);
}

/// Child role "file-writer": 15 puts into the shared file.
int file_writer_child() {
  Env env;
  auto cache = env.make(std::getenv("CREDKIT_CHILD_PATH"), {key_of(9)});
  const std::string id = std::getenv("CREDKIT_CHILD_ID");
  const auto exp = exp_in(1h);
  for (int i = 0; i < 15; ++i) {
    const std::string user = "p" + id + "-" + std::to_string(i);
    put(*cache, TokenCacheKey(user), AccessToken{"tok-" + user + "-0123456789abcdef", exp});
  }
  return 0;
}
