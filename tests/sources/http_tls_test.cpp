// HttpTokenSource over real TLS: a real nginx on loopback with a throwaway CA and server
// certificate generated at test time (openssl CLI). Without the CA the handshake must fail with
// tls_error; with ca_file or ca_path it must succeed. A missing nginx or openssl fails the test.
#include <credkit/credkit.hpp>
#include <credkit/sources/http_token_source.hpp>

#include "support/async_helpers.hpp"
#include "support/test_tokens.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace credkit;
using credkit::test::Outcome;
using credkit::test::run_op;
using namespace std::chrono_literals;
using std::chrono::system_clock;
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) s.replace(pos, from.size(), to);
}

std::string find_program(const std::string& name) {
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"}) {
    const auto p = fs::path(dir) / name;
    if (fs::exists(p)) return p.string();
  }
  return {};
}

void run(const std::string& command) {
  const int rc = std::system((command + " >/dev/null 2>&1").c_str());
  REQUIRE_MESSAGE(rc == 0, "command failed (" << rc << "): " << command);
}

unsigned short free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return probe.local_endpoint().port();
}

bool can_connect(unsigned short port) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket s(io);
  boost::system::error_code ec;
  s.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
  return !ec;
}

// A throwaway CA, a server certificate for 127.0.0.1/localhost, and nginx serving `body`.
class NginxTls {
 public:
  explicit NginxTls(const std::string& body) {
    const auto nginx = find_program("nginx");
    REQUIRE_MESSAGE(!nginx.empty(), "nginx is not installed (Debian package nginx-light); the TLS tests need it");
    REQUIRE_MESSAGE(!find_program("openssl").empty(), "the openssl command is not installed; the TLS tests need it");
    char tmpl[] = "/tmp/credkit-tls-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    const auto d = dir_.string();
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for (const std::string ca : {"ca", "other_ca"}) {
      run("openssl req -x509" + ec + " -keyout " + d + "/" + ca + ".key -out " + d + "/" + ca +
          ".crt -days 1 -subj '/CN=credkit test " + ca + "' -addext basicConstraints=critical,CA:TRUE"
          " -addext keyUsage=critical,keyCertSign,cRLSign");
    }
    run("openssl req" + ec + " -keyout " + d + "/server.key -out " + d + "/server.csr -subj /CN=127.0.0.1");
    std::ofstream(dir_ / "ext.cnf") << "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
    run("openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.crt -CAkey " + d + "/ca.key -CAcreateserial -out " +
        d + "/server.crt -days 1 -extfile " + d + "/ext.cnf");
    fs::create_directory(dir_ / "cadir");
    fs::copy_file(dir_ / "ca.crt", dir_ / "cadir" / "ca.pem");
    run("openssl rehash " + d + "/cadir");

    port_ = free_port();
    // The template lives beside this file.
    const auto conf_in = fs::path(__FILE__).parent_path() / "nginx" / "token_server.conf.in";
    REQUIRE_MESSAGE(fs::exists(conf_in), "missing nginx config template " << conf_in);
    auto conf = read_file(conf_in);
    replace_all(conf, "@DIR@", d);
    replace_all(conf, "@PORT@", std::to_string(port_));
    replace_all(conf, "@BODY@", body);
    std::ofstream(dir_ / "nginx.conf") << conf;

    const std::string error_log = d + "/error.log";
    std::vector<std::string> args = {nginx, "-p", d, "-c", d + "/nginx.conf", "-e", error_log};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid_, nginx.c_str(), nullptr, nullptr, argv.data(), environ) == 0);

    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (!can_connect(port_)) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL("nginx exited at startup: " << read_file(error_log));
      }
      if (std::chrono::steady_clock::now() > deadline) FAIL("nginx did not listen within 15 s: " << read_file(error_log));
      std::this_thread::sleep_for(20ms);  // process start-up: real time, bounded above
    }
  }

  ~NginxTls() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      const auto deadline = std::chrono::steady_clock::now() + 5s;
      while (waitpid(pid_, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          kill(pid_, SIGKILL);
          waitpid(pid_, &status, 0);
          break;
        }
        std::this_thread::sleep_for(10ms);
      }
    }
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::string url(const std::string& host = "127.0.0.1") const {
    return "https://" + host + ":" + std::to_string(port_) + "/token";
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
  unsigned short port_ = 0;
  pid_t pid_ = -1;
};

Outcome<AccessToken> fetch_once(boost::asio::io_context& io, const HttpTokenSource& source) {
  return run_op<AccessToken>(io, [&](auto handler) { source.async_fetch(std::move(handler)); });
}

std::string iso(system_clock::time_point t) {
  const std::time_t secs = system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

TEST_CASE("https: nginx with a throwaway CA: tls_error without the CA, a token with ca_file or ca_path") {
  const auto exp = std::chrono::floor<std::chrono::seconds>(system_clock::now() + 1h);
  const auto jwt = test::make_jwt(exp);
  NginxTls nginx(R"({"token":")" + jwt + R"(","expiresOn":")" + iso(exp) + R"("})");
  boost::asio::io_context io;

  auto source_with = [&](auto configure) {
    HttpTokenSourceOptions o;
    o.url = nginx.url();
    o.response = HttpTokenResponse::acs();
    o.headers = {{"Authorization", "Bearer tls-test-session-secret-0123456789"}};
    configure(o);
    return HttpTokenSource(io.get_executor(), o);
  };
  auto expect_tls_error = [&](const Outcome<AccessToken>& r) {
    REQUIRE(r.error);
    try {
      std::rethrow_exception(r.error);
    } catch (const Error& e) {
      CHECK(e.code() == make_error_code(errc::tls_error));
      CHECK_FALSE(e.retryable());
      const std::string msg = e.what();
      CHECK(msg.find("ca_file") != std::string::npos);
      CHECK(msg.find("tls-test-session-secret") == std::string::npos);
    }
  };

  // The system store does not know the throwaway CA.
  expect_tls_error(fetch_once(io, source_with([](HttpTokenSourceOptions&) {})));
  // Nor does another CA.
  expect_tls_error(fetch_once(io, source_with([&](HttpTokenSourceOptions& o) { o.http.ca_file = nginx.file("other_ca.crt"); })));

  auto expect_token = [&](const Outcome<AccessToken>& r) {
    if (r.error) {
      try {
        std::rethrow_exception(r.error);
      } catch (const std::exception& e) {
        FAIL("fetch over TLS failed: " << e.what());
      }
    }
    CHECK(r.value.token == jwt);
    CHECK(r.value.expires_on == exp);
  };
  expect_token(fetch_once(io, source_with([&](HttpTokenSourceOptions& o) { o.http.ca_file = nginx.file("ca.crt"); })));
  expect_token(fetch_once(io, source_with([&](HttpTokenSourceOptions& o) { o.http.ca_path = nginx.file("cadir"); })));
  // The certificate names localhost too.
  expect_token(fetch_once(io, source_with([&](HttpTokenSourceOptions& o) {
    o.url = nginx.url("localhost");
    o.http.ca_file = nginx.file("ca.crt");
  })));
  // Verification off (a documented opt-out for local experiments) accepts the unknown CA.
  expect_token(fetch_once(io, source_with([](HttpTokenSourceOptions& o) { o.http.verify_peer = false; })));

  // Keep-alive over TLS: repeated fetches through one source; report the per-fetch latency.
  auto source = source_with([&](HttpTokenSourceOptions& o) { o.http.ca_file = nginx.file("ca.crt"); });
  expect_token(fetch_once(io, source));  // handshake
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) REQUIRE_FALSE(fetch_once(io, source).error);
  const auto took = std::chrono::steady_clock::now() - start;
  MESSAGE("50 sequential HTTPS fetches (reused TLS connection) against nginx: "
          << std::chrono::duration_cast<std::chrono::microseconds>(took).count() / 50 << " us per fetch");
}
