// RedisTokenCache over TLS against a real redis-server TLS port: a throwaway CA, server and
// client certificates made with the openssl CLI at test time; verification failures (unknown
// CA, host name mismatch), tls_verify_peer=false, client certificates, AUTH, outage/recovery.
#include <credkit/caches/redis_token_cache.hpp>

#include "caches/redis_test_support.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace credkit;
using namespace std::chrono_literals;
using cachetest::RedisServer;
using cachetest::get_error;
using cachetest::get_or_fetch;
using cachetest::service_fetch;

namespace {

/// A CA, a server certificate (SAN IP:127.0.0.1, DNS:localhost) and a client certificate it
/// signed, plus a second CA that signed nothing Redis uses; made once per test binary.
struct Pki {
  std::string dir;
  std::string file(const std::string& name) const { return dir + "/" + name; }

  Pki() {
    char tmpl[] = "/tmp/credkit-tls-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    std::ofstream(file("server.ext")) << "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
    std::ofstream(file("client.ext")) << "extendedKeyUsage=clientAuth\n";
    make_ca("ca");
    make_ca("other-ca");
    make_leaf("server", "localhost", "ca", 2);
    make_leaf("client", "credkit-test-client", "ca", 3);
  }
  ~Pki() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

 private:
  void run(std::vector<std::string> args) const {
    args.insert(args.begin(), "/usr/bin/openssl");
    const int rc = cachetest::wait_child(cachetest::spawn(args), 30s);
    if (rc != 0) throw std::runtime_error("openssl " + args[1] + " failed (scripts/setup installs openssl)");
  }
  void make_ca(const std::string& name) const {
    run({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
         file(name + ".key"), "-out", file(name + ".crt"), "-days", "2", "-subj", "/CN=credkit test " + name});
  }
  void make_leaf(const std::string& name, const std::string& cn, const std::string& ca, int serial) const {
    run({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", file(name + ".key"),
         "-out", file(name + ".csr"), "-subj", "/CN=" + cn});
    run({"x509", "-req", "-in", file(name + ".csr"), "-CA", file(ca + ".crt"), "-CAkey", file(ca + ".key"),
         "-set_serial", std::to_string(serial), "-days", "2", "-out", file(name + ".crt"), "-extfile",
         file(name + ".ext")});
  }
};

const Pki& pki() {
  static const Pki instance;
  return instance;
}

std::vector<std::string> tls_server_args(std::vector<std::string> more = {}) {
  const auto& p = pki();
  std::vector<std::string> a{"--tls-cert-file", p.file("server.crt"), "--tls-key-file", p.file("server.key"),
                             "--tls-ca-cert-file", p.file("ca.crt")};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

CacheEncryptionKey test_key() { return CacheEncryptionKey::from_raw(std::vector<unsigned char>(32, 0x24)); }

/// A verifying client with the test CA and the client certificate.
RedisTokenCacheOptions tls_options(int port) {
  const auto& p = pki();
  RedisTokenCacheOptions o;
  o.port = port;
  o.keys = {test_key()};
  o.tls = true;
  o.tls_ca_file = p.file("ca.crt");
  o.tls_cert_file = p.file("client.crt");
  o.tls_key_file = p.file("client.key");
  o.retry_after_failure = 200ms;
  o.connect_timeout = 2s;  // a TLS handshake under sanitizers on a busy machine
  o.command_timeout = 2s;
  return o;
}

AccessToken token_in(std::chrono::milliseconds d, const std::string& text = "eyJTLS-SECRET-token-0123456789abcdef") {
  return {text, std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now() + d)};
}

}  // namespace

TEST_CASE("RedisTokenCache TLS: round trip and single-flight over TLS with a client certificate") {
  RedisServer redis(tls_server_args(), true);
  cachetest::CountingTokenService service(1h, 5ms);
  boost::asio::thread_pool pool(1), workers(2);
  auto cache = RedisTokenCache::create(pool.get_executor(), tls_options(redis.port()));
  const TokenCacheKey k("tls-user", {"chat"});
  const auto t = token_in(10min);

  CHECK(!cachetest::get_within(cache->async_get(k, boost::asio::use_future)));
  cachetest::get_within(cache->async_put(k, t, boost::asio::use_future));
  for (int i = 0; i < 3; ++i)  // pooled connections are reused
    CHECK(cachetest::get_within(cache->async_get(k, boost::asio::use_future)) == t);

  // The certificate names localhost too.
  auto by_name_o = tls_options(redis.port());
  by_name_o.tls_server_name = "localhost";
  auto by_name = RedisTokenCache::create(pool.get_executor(), by_name_o);
  CHECK(cachetest::get_within(by_name->async_get(k, boost::asio::use_future)) == t);

  // The distributed single-flight path: one fetch, then served from Redis by another instance.
  const TokenCacheKey stale("tls-stale-user");
  auto fetch = service_fetch(workers, service.port());
  const auto first = get_or_fetch(*cache, stale, fetch);
  CHECK(service.requests() == 1);
  CHECK(get_or_fetch(*by_name, stale, fetch) == first);
  CHECK(service.requests() == 1);

  cachetest::get_within(cache->async_erase(k, boost::asio::use_future));
  CHECK(!cachetest::get_within(by_name->async_get(k, boost::asio::use_future)));
  pool.join();
  workers.join();
}

TEST_CASE("RedisTokenCache TLS: an unknown CA and a host name mismatch fail clearly; verify off connects") {
  RedisServer redis(tls_server_args(), true);
  cachetest::CountingTokenService service(1h, 5ms);
  boost::asio::thread_pool pool(1), workers(2);
  const TokenCacheKey k("tls-verify-user");
  cachetest::get_within(RedisTokenCache::create(pool.get_executor(), tls_options(redis.port()))
                            ->async_put(k, token_in(10min), boost::asio::use_future));
  cachetest::LogCapture logs;

  auto untrusted_o = tls_options(redis.port());
  untrusted_o.tls_ca_file = pki().file("other-ca.crt");
  const auto clock = cachetest::redis_test_clock();
  untrusted_o.clock = clock;
  auto untrusted = RedisTokenCache::create(pool.get_executor(), untrusted_o);
  {
    const auto e = get_error(*untrusted, k);
    CHECK((e.code() == make_error_code(errc::tls_error)));
    const std::string what = e.what();
    CHECK_MESSAGE(what.find("certificate verify failed: ") != std::string::npos, what);
    CHECK(what.find("tls_ca_file") != std::string::npos);  // says what to do
    CHECK(what.find("127.0.0.1:" + std::to_string(redis.port())) != std::string::npos);
    // The cache-aside path does not use the unverified server: it fetches directly.
    clock->advance(250ms);  // past retry_after_failure, so Redis is tried again
    const auto t = get_or_fetch(*untrusted, k, service_fetch(workers, service.port()));
    CHECK(t.token.rfind("tok-", 0) == 0);
    CHECK(service.requests() == 1);
  }

  auto mismatch_o = tls_options(redis.port());
  mismatch_o.tls_server_name = "wrong.example";
  auto mismatch = RedisTokenCache::create(pool.get_executor(), mismatch_o);
  {
    const auto e = get_error(*mismatch, k);
    CHECK((e.code() == make_error_code(errc::tls_error)));
    CHECK_MESSAGE(std::string(e.what()).find("hostname mismatch") != std::string::npos, e.what());
    CHECK(std::string(e.what()).find("wrong.example") != std::string::npos);
  }

  // Without verification the same untrusted setup connects (with a warning at create).
  auto unverified_o = untrusted_o;
  unverified_o.tls_verify_peer = false;
  unverified_o.tls_server_name = "wrong.example";
  auto unverified = RedisTokenCache::create(pool.get_executor(), unverified_o);
  CHECK(logs.count("tls_verify_peer is false") == 1);
  const auto got = cachetest::get_within(unverified->async_get(k, boost::asio::use_future));
  REQUIRE(got);
  CHECK(got->token == token_in(10min).token);
  pool.join();
  workers.join();
}

TEST_CASE("RedisTokenCache TLS: client certificates (tls-auth-clients yes / no), AUTH, wrong port kind") {
  const TokenCacheKey k("tls-auth-user");
  const auto t = token_in(1h);
  boost::asio::thread_pool pool(1);

  SUBCASE("tls-auth-clients yes (Redis' default): without a client certificate Redis refuses") {
    RedisServer redis(tls_server_args(), true);
    auto o = tls_options(redis.port());
    o.tls_cert_file.clear();
    o.tls_key_file.clear();
    auto cache = RedisTokenCache::create(pool.get_executor(), o);
    const auto e = get_error(*cache, k);
    const bool expected_code =
        e.code() == make_error_code(errc::tls_error) || e.code() == make_error_code(errc::cache_unavailable);
    CHECK_MESSAGE(expected_code, e.what());
    CHECK(std::string(e.what()).find("127.0.0.1:" + std::to_string(redis.port())) != std::string::npos);
  }
  SUBCASE("tls-auth-clients no: no client certificate needed") {
    RedisServer redis(tls_server_args({"--tls-auth-clients", "no"}), true);
    auto o = tls_options(redis.port());
    o.tls_cert_file.clear();
    o.tls_key_file.clear();
    auto cache = RedisTokenCache::create(pool.get_executor(), o);
    cachetest::get_within(cache->async_put(k, t, boost::asio::use_future));
    CHECK(cachetest::get_within(cache->async_get(k, boost::asio::use_future)) == t);
  }
  SUBCASE("AUTH over TLS; a wrong password is refused and never shown") {
    RedisServer redis(tls_server_args({"--requirepass", "tls-s3cret-pass"}), true);
    cachetest::LogCapture logs;
    auto o = tls_options(redis.port());
    o.password = "tls-s3cret-pass";
    auto cache = RedisTokenCache::create(pool.get_executor(), o);
    cachetest::get_within(cache->async_put(k, t, boost::asio::use_future));
    CHECK(cachetest::get_within(cache->async_get(k, boost::asio::use_future)) == t);

    o.password = "tls-wrong-pass";
    auto bad = RedisTokenCache::create(pool.get_executor(), o);
    const auto e = get_error(*bad, k);
    CHECK((e.code() == make_error_code(errc::cache_unavailable)));
    CHECK(std::string(e.what()).find("AUTH") != std::string::npos);
    CHECK(std::string(e.what()).find("tls-wrong-pass") == std::string::npos);
    CHECK(logs.all().find("pass\n") == std::string::npos);
    CHECK(logs.all().find("tls-wrong-pass") == std::string::npos);
    CHECK(logs.all().find("tls-s3cret-pass") == std::string::npos);
  }
  SUBCASE("TLS to a plain port fails within connect_timeout, naming the cause") {
    RedisServer redis;
    auto o = tls_options(redis.port());
    o.connect_timeout = 500ms;
    auto cache = RedisTokenCache::create(pool.get_executor(), o);
    const auto started = std::chrono::steady_clock::now();
    const auto e = get_error(*cache, k);
    CHECK(std::chrono::steady_clock::now() - started < 5s);
    CHECK_MESSAGE(std::string(e.what()).find("TLS to Redis at") != std::string::npos, e.what());
  }
  pool.join();
}

TEST_CASE("RedisTokenCache TLS: Redis killed mid-run -> direct fetches, one warning; restarted -> used again") {
  RedisServer redis(tls_server_args(), true);
  cachetest::check_outage_and_recovery(redis, tls_options(redis.port()), TokenCacheKey("tls-outage-user"));
}
