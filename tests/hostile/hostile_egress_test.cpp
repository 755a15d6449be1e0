// Hostile-input tests, class 2: network egress. The environment must not be able to reroute
// credkit's requests (and the app's Authorization header) through a proxy, nor change TLS trust,
// nor log TLS keys, nor add credentials: every variable libcurl 7.88 reads that changes where
// bytes or secrets go is set, in every spelling, for every proxy URL form and every HTTP-based
// source, against a loopback "proxy" that counts connections and the real sample token server
// (plain http, and https through a loopback TLS front with a throwaway CA).
#include <doctest/doctest.h>

#include <credkit/credkit.hpp>
#include <credkit/sources/acs_connection_string.hpp>
#include <credkit/sources/acs_identity_client.hpp>
#include <credkit/sources/entra_client_secret_source.hpp>
#include <credkit/sources/http_token_source.hpp>
#include <credkit/sources/webpubsub_token_api_client.hpp>
#include <credkit/testing/diagnostics_capture.hpp>

#include "sources/http/http_client.hpp"
#include "support/async_helpers.hpp"
#include "support/loopback_http_server.hpp"
#include "support/loopback_listener.hpp"
#include "token_server.hpp"

#include <boost/asio/ssl.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

extern char** environ;

using namespace credkit;
using namespace std::chrono_literals;
using credkit::samples::TokenServer;
using credkit::test::as_error;
using credkit::test::run_op;
namespace fs = std::filesystem;

namespace {

// The app's own session secret, sent as `Authorization: Bearer ...` by HttpTokenSource.
const std::string kAppSecret = "app-session-secret-0123456789abcdefXYZ";
const std::string kProxyPassword = "pr0xy-pa55word-never-shown";

// Every variable libcurl (7.88) consults to pick a proxy, plus our opt-in mirror's exclusions.
const std::vector<std::string> kProxyVariables = {"http_proxy", "HTTP_PROXY", "https_proxy",
                                                  "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
const std::vector<std::string> kAllTouchedVariables = {
    "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY",
    "SSLKEYLOGFILE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "HOME", "CURL_HOME"};

/// Sets environment variables for one case and restores every touched one afterwards. It
/// starts by clearing every proxy variable so a developer's own settings do not leak in.
class EnvGuard {
 public:
  EnvGuard() {
    for (const auto& name : kAllTouchedVariables) {
      const char* v = std::getenv(name.c_str());
      saved_[name] = v ? std::optional<std::string>(v) : std::nullopt;
    }
    for (const auto& name : {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                             "no_proxy", "NO_PROXY"}) {
      ::unsetenv(name);
    }
  }
  ~EnvGuard() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;
  void set(const std::string& name, const std::string& value) { ::setenv(name.c_str(), value.c_str(), 1); }
  void unset(const std::string& name) { ::unsetenv(name.c_str()); }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

/// A loopback listener posing as a proxy. It counts connections and records what each sent
/// before any tunnel (the request head, or a SOCKS/TLS greeting). With `tunnel`, it serves
/// `CONNECT 127.0.0.1:<port>` as a real proxy would (200, then relays bytes); anything else
/// gets a 502 or a closed connection.
class CountingProxy {
 public:
  explicit CountingProxy(bool tunnel = false) : tunnel_(tunnel) {
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~CountingProxy() {
    stop_ = true;
    thread_.join();
    for (auto& t : sessions_) t.join();
  }
  CountingProxy(const CountingProxy&) = delete;
  CountingProxy& operator=(const CountingProxy&) = delete;

  unsigned short port() const { return listener_.port(); }
  std::string hostport() const { return "127.0.0.1:" + std::to_string(port()); }
  int connections() const { return connections_.load(); }
  /// Everything received outside tunnels, all connections concatenated.
  std::string received() const {
    std::lock_guard l(m_);
    return received_;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      const int c = listener_.accept_within(20ms);
      if (c < 0) continue;
      ++connections_;
      sessions_.emplace_back([this, c] { session(c); });
    }
  }

  static void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  void session(int c) {
    std::string head;
    std::array<char, 4096> buf{};
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (!stop_ && head.find("\r\n\r\n") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const auto n = ::recv(c, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      head.append(buf.data(), static_cast<std::size_t>(n));
    }
    {
      std::lock_guard l(m_);
      received_ += head;
    }
    const bool complete = head.find("\r\n\r\n") != std::string::npos;
    if (tunnel_ && complete && head.starts_with("CONNECT 127.0.0.1:")) {
      const auto port = std::atoi(head.c_str() + std::strlen("CONNECT 127.0.0.1:"));
      const int up = test::connect_loopback(static_cast<unsigned short>(port));
      if (up >= 0) {
        send_all(c, "HTTP/1.1 200 Connection established\r\n\r\n");
        relay(c, up);
      } else {
        send_all(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      }
      if (up >= 0) ::close(up);
    } else if (complete) {
      send_all(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    ::close(c);
  }

  void relay(int a, int b) {
    std::array<char, 16384> buf{};
    while (!stop_) {
      pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
      if (::poll(p, 2, 50) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const auto n = ::recv(p[i].fd, buf.data(), buf.size(), 0);
        if (n <= 0) return;
        send_all(p[1 - i].fd, std::string_view(buf.data(), static_cast<std::size_t>(n)));
      }
    }
  }

  bool tunnel_;
  test::LoopbackListener listener_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex m_;
  std::string received_;
  std::vector<std::thread> sessions_;  // accept thread only, joined after it
  std::thread thread_;
};

/// A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI), made once per run.
struct TestPki {
  fs::path dir;
  std::string ca_file, ca_dir, cert, key;
};

const TestPki& pki() {
  static const TestPki p = [] {
    TestPki t;
    t.dir = fs::temp_directory_path() / ("credkit-egress-pki-" + std::to_string(::getpid()));
    fs::create_directories(t.dir / "hashed");
    const auto d = t.dir.string();
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script =
        "cd '" + d + "' && openssl req -x509 " + ec + " -keyout ca.key -out ca.pem -days 2 -subj /CN=credkit-egress-ca" +
        " && openssl req " + ec + " -keyout server.key -out server.csr -subj /CN=127.0.0.1" +
        " && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext.cnf" +
        " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf" +
        " && cp ca.pem hashed/ && openssl rehash hashed";
    const int rc = std::system(("(" + script + ") >/dev/null 2>&1").c_str());
    REQUIRE_MESSAGE(rc == 0, "openssl failed to make the test PKI");
    t.ca_file = (t.dir / "ca.pem").string();
    t.ca_dir = (t.dir / "hashed").string();
    t.cert = (t.dir / "server.pem").string();
    t.key = (t.dir / "server.key").string();
    return t;
  }();
  return p;
}

/// A TLS front on 127.0.0.1 relaying each connection to a plain upstream port (the token
/// server), so every source can be tried over https against the real server.
class TlsFront {
 public:
  explicit TlsFront(unsigned short upstream)
      : ctx_(boost::asio::ssl::context::tls_server),
        acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}),
        upstream_(upstream) {
    ctx_.use_certificate_chain_file(pki().cert);
    ctx_.use_private_key_file(pki().key, boost::asio::ssl::context::pem);
    port_ = acceptor_.local_endpoint().port();
    boost::asio::co_spawn(io_, accept_loop(), boost::asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TlsFront() {
    io_.stop();
    thread_.join();
  }
  std::string base_url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }

 private:
  using tcp = boost::asio::ip::tcp;
  using Tls = boost::asio::ssl::stream<tcp::socket>;

  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, s] = co_await acceptor_.async_accept(boost::asio::as_tuple(boost::asio::use_awaitable));
      if (ec) co_return;
      ++connections_;
      boost::asio::co_spawn(io_, session(std::move(s)), boost::asio::detached);
    }
  }

  boost::asio::awaitable<void> session(tcp::socket s) {
    using boost::asio::as_tuple;
    using boost::asio::use_awaitable;
    auto tls = std::make_shared<Tls>(std::move(s), ctx_);
    auto [hec] = co_await tls->async_handshake(boost::asio::ssl::stream_base::server, as_tuple(use_awaitable));
    if (hec) co_return;
    auto up = std::make_shared<tcp::socket>(io_);
    auto [cec] = co_await up->async_connect({boost::asio::ip::make_address("127.0.0.1"), upstream_},
                                            as_tuple(use_awaitable));
    if (cec) co_return;
    boost::asio::co_spawn(io_, pump(tls, up, true), boost::asio::detached);
    co_await pump(tls, up, false);
  }

  static boost::asio::awaitable<void> pump(std::shared_ptr<Tls> tls, std::shared_ptr<tcp::socket> up, bool to_tls) {
    using boost::asio::as_tuple;
    using boost::asio::use_awaitable;
    std::array<char, 16384> buf{};
    for (;;) {
      if (to_tls) {
        auto [ec, n] = co_await up->async_read_some(boost::asio::buffer(buf), as_tuple(use_awaitable));
        if (ec) break;
        auto [wec, wn] = co_await boost::asio::async_write(*tls, boost::asio::buffer(buf.data(), n), as_tuple(use_awaitable));
        if (wec) break;
      } else {
        auto [ec, n] = co_await tls->async_read_some(boost::asio::buffer(buf), as_tuple(use_awaitable));
        if (ec) break;
        auto [wec, wn] = co_await boost::asio::async_write(*up, boost::asio::buffer(buf.data(), n), as_tuple(use_awaitable));
        if (wec) break;
      }
    }
    boost::system::error_code ignored;
    tls->lowest_layer().close(ignored);
    up->close(ignored);
  }

  boost::asio::io_context io_;  // first: destroyed last, with the pending sessions
  boost::asio::ssl::context ctx_;
  tcp::acceptor acceptor_;
  unsigned short upstream_;
  unsigned short port_ = 0;
  std::atomic<int> connections_{0};
  std::thread thread_;
};

enum class Source { http_token, acs_identity, entra, webpubsub };
const std::vector<Source> kSources = {Source::http_token, Source::acs_identity, Source::entra, Source::webpubsub};

const char* name_of(Source s) {
  switch (s) {
    case Source::http_token: return "HttpTokenSource";
    case Source::acs_identity: return "acs::IdentityClient";
    case Source::entra: return "entra::ClientSecretSource";
    case Source::webpubsub: return "webpubsub::TokenApiClient";
  }
  return "?";
}

/// The real token server, reachable over http:// directly and over https:// through a TLS
/// front, and an Entra token (fetched directly) for the Web PubSub client's credential.
struct World {
  TokenServer server;
  std::optional<TlsFront> tls;
  AccessToken entra_token;

  World() {
    server.start();
    tls.emplace(server.port());
    boost::asio::io_context io;
    entra::ClientSecretSource src(io.get_executor(), entra_options(server.base_url(), {}));
    auto r = run_op<AccessToken>(io, [&](auto h) { src.async_get_token(std::move(h)); });
    REQUIRE_FALSE(r.error);
    entra_token = r.value;
  }

  entra::ClientSecretOptions entra_options(const std::string& base, HttpClientOptions http) const {
    entra::ClientSecretOptions o;
    o.authority = base + "/";
    o.tenant_id = server.options().entra_tenant;
    o.client_id = server.options().entra_client_id;
    o.client_secret = server.options().entra_client_secret;
    o.scope = "https://webpubsub.azure.com/.default";
    o.http = std::move(http);
    return o;
  }

  /// The base URL of the target: "http://127.0.0.1:<port>" or "https://127.0.0.1:<port>".
  std::string base(bool https) const { return https ? tls->base_url() : server.base_url(); }

  /// One request by `source` to the target; the error (null on success).
  std::exception_ptr request(Source source, bool https, HttpClientOptions http) {
    if (https && http.ca_file.empty()) http.ca_file = pki().ca_file;
    if (http.connect_timeout == HttpClientOptions{}.connect_timeout) http.connect_timeout = 3s;
    if (http.total_timeout == HttpClientOptions{}.total_timeout) http.total_timeout = 5s;
    const auto b = base(https);
    boost::asio::io_context io;
    switch (source) {
      case Source::http_token: {
        HttpTokenSourceOptions o;
        o.url = b + "/chat/user/alice/token";
        o.headers = {{"Authorization", "Bearer " + kAppSecret}};
        o.response = HttpTokenResponse::acs();
        o.http = std::move(http);
        HttpTokenSource src(io.get_executor(), std::move(o));
        return run_op<AccessToken>(io, [&](auto h) { src.async_fetch(std::move(h)); }).error;
      }
      case Source::acs_identity: {
        acs::IdentityClientOptions o;
        o.http = std::move(http);
        auto cs = server.acs_connection_string();
        cs.replace(cs.find(server.base_url()), server.base_url().size(), b);
        acs::IdentityClient c(io.get_executor(), acs::ConnectionString::parse(cs), std::move(o));
        return run_op<std::string>(io, [&](auto h) { c.async_create_user(std::move(h)); }).error;
      }
      case Source::entra: {
        entra::ClientSecretSource src(io.get_executor(), entra_options(b, std::move(http)));
        return run_op<AccessToken>(io, [&](auto h) { src.async_get_token(std::move(h)); }).error;
      }
      case Source::webpubsub: {
        TokenCredentialOptions co;
        co.mode = RefreshMode::on_demand;
        co.fetcher = Fetcher::blocking([t = entra_token](const FetchContext&) { return t; });
        auto cred = TokenCredential::create(io.get_executor(), std::move(co));
        std::exception_ptr error;
        {
          webpubsub::TokenApiClient api(io.get_executor(), b, "chat", cred, std::move(http));
          webpubsub::ClientTokenOptions to;
          to.user_id = "carol";
          error = run_op<webpubsub::ClientAccess>(io, [&](auto h) { api.async_generate_token(to, std::move(h)); }).error;
        }
        cred->close();
        io.restart();
        io.poll();
        return error;
      }
    }
    return nullptr;
  }
};

std::string describe(const std::exception_ptr& e) {
  if (!e) return "ok";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  }
  return "?";
}

/// The proxy URL forms tried, for a proxy listening at `hp` ("127.0.0.1:<port>").
std::vector<std::string> proxy_forms(const std::string& hp) {
  return {"http://" + hp,
          "https://" + hp,
          "socks4://" + hp,
          "socks4a://" + hp,
          "socks5://" + hp,
          "socks5h://" + hp,
          hp,
          "http://proxyuser:" + kProxyPassword + "@" + hp,
          "socks5://proxyuser:" + kProxyPassword + "@" + hp,
          "http://" + hp + "/some/path?x=1",
          "HTTP://" + hp};
}

/// Whether libcurl (and credkit's opt-in mirror of it) takes proxy variable `var` for a
/// request whose scheme is http (https == false) or https.
bool applies(const std::string& var, bool https) {
  if (var == "all_proxy" || var == "ALL_PROXY") return true;
  if (https) return var == "https_proxy" || var == "HTTPS_PROXY";
  return var == "http_proxy";  // upper-case HTTP_PROXY is ignored (CGI: it is a request header)
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The instance the review found: http_proxy in the environment received the app's
// Authorization header in clear text. Before the fix the proxy saw the request (with the
// header); after it, nothing.
TEST_CASE("egress instance: http_proxy=http://127.0.0.1:<port> does not receive the Authorization header") {
  World w;
  CountingProxy proxy;
  EnvGuard env;
  env.set("http_proxy", "http://" + proxy.hostport());
  const auto before = w.server.request_count("chat_user_token");
  const auto error = w.request(Source::http_token, false, {});
  const auto seen = proxy.received();
  const bool header_seen = seen.find(kAppSecret) != std::string::npos;
  MESSAGE("http_proxy set: proxy connections " << proxy.connections() << ", bytes " << seen.size()
                                               << ", Authorization secret seen by proxy: " << std::string(header_seen ? "YES" : "no")
                                               << ", request: " << describe(error));
  CHECK_FALSE(header_seen);
  CHECK(proxy.connections() == 0);
  CHECK_FALSE(error);
  CHECK(w.server.request_count("chat_user_token") == before + 1);
}

// ---------------------------------------------------------------------------------------
// Default: every proxy variable, every spelling, every proxy URL form, every source, both
// target schemes: the proxy sees no connection and the request reaches the target directly.
TEST_CASE("egress default: environment proxy variables are ignored (every variable, form, source, scheme)") {
  World w;
  CountingProxy proxy;
  int variants = 0;
  for (const auto& var : kProxyVariables) {
    for (const auto& form : proxy_forms(proxy.hostport())) {
      for (const auto source : kSources) {
        for (const bool https : {false, true}) {
          EnvGuard env;
          env.set(var, form);
          const std::string context_text = [&] { std::ostringstream os; os << var << "=" << form << " " << name_of(source) << (https ? " https" : " http"); return os.str(); }();
          INFO(context_text);  // eager: INFO keeps references, temporaries would dangle; before the request, so a failure inside it names the variant
          const auto error = w.request(source, https, {});
          ++variants;
          CHECK_MESSAGE(!error, describe(error));
        }
      }
    }
    CHECK(proxy.connections() == 0);
  }
  // Every variable at once, and NO_PROXY set too: still direct.
  for (const auto source : kSources) {
    for (const bool https : {false, true}) {
      EnvGuard env;
      for (const auto& var : kProxyVariables) env.set(var, "http://" + proxy.hostport());
      env.set("NO_PROXY", "example.com");
      env.set("no_proxy", "example.com");
      const auto error = w.request(source, https, {});
      ++variants;
      CHECK_MESSAGE(!error, describe(error));
    }
  }
  CHECK(proxy.connections() == 0);
  CHECK(proxy.received().empty());
  MESSAGE("default mode: " << variants << " variants (variable x proxy form x source x scheme), proxy connections "
                           << proxy.connections());
}

// ---------------------------------------------------------------------------------------
// Opt-in 1: an explicit `proxy` option is used (as a CONNECT tunnel), for every source and
// both schemes; NO_PROXY in the environment does not override it.
TEST_CASE("egress opt-in: the explicit proxy option tunnels every source; NO_PROXY does not apply to it") {
  World w;
  int variants = 0;
  const auto forms = [](const CountingProxy& p) {
    return std::vector<std::string>{"http://" + p.hostport(), p.hostport(), "http://" + p.hostport() + "/path",
                                    "http://proxyuser:" + kProxyPassword + "@" + p.hostport(),
                                    "http://localhost:" + std::to_string(p.port())};
  };
  for (const auto source : kSources) {
    for (const bool https : {false, true}) {
      for (const char* no_proxy : {"", "*", "127.0.0.1"}) {
        CountingProxy proxy(/*tunnel=*/true);
        for (const auto& form : forms(proxy)) {
          EnvGuard env;
          if (*no_proxy) env.set("NO_PROXY", no_proxy);
          HttpClientOptions http;
          http.proxy = form;
          const int before = proxy.connections();
          const auto error = w.request(source, https, http);
          ++variants;
          const std::string context_text = [&] { std::ostringstream os; os << name_of(source) << (https ? " https" : " http") << " proxy=" << form << " NO_PROXY=" << no_proxy; return os.str(); }();
          INFO(context_text);  // eager: INFO keeps references, temporaries would dangle
          CHECK_MESSAGE(!error, describe(error));
          CHECK(proxy.connections() == before + 1);
        }
        const auto seen = proxy.received();
        CHECK(seen.find("CONNECT 127.0.0.1:") != std::string::npos);
        CHECK(seen.find(kAppSecret) == std::string::npos);   // only the CONNECT line and its headers
        CHECK(seen.find("\r\nAuthorization:") == std::string::npos);  // Proxy-Authorization (user:pass@) is fine
      }
    }
  }
  // SOCKS and https:// proxies are used too (this listener speaks neither: the request fails,
  // but it went to the proxy and nowhere else).
  for (const auto source : kSources) {
    for (const char* scheme : {"https://", "socks4://", "socks4a://", "socks5://", "socks5h://"}) {
      CountingProxy proxy;
      HttpClientOptions http;
      http.proxy = std::string(scheme) + proxy.hostport();
      const auto before = w.tls->connections();
      const auto error = w.request(source, true, http);
      ++variants;
      const std::string context_text = [&] { std::ostringstream os; os << name_of(source) << " proxy=" << http.proxy; return os.str(); }();
      INFO(context_text);  // eager: INFO keeps references, temporaries would dangle
      CHECK(error);
      CHECK(proxy.connections() >= 1);
      CHECK(w.tls->connections() == before);
    }
  }
  MESSAGE("explicit proxy option: " << variants << " variants");
}

// ---------------------------------------------------------------------------------------
// Opt-in 2: use_environment_proxy follows the variables exactly as libcurl would (which
// variable applies to which scheme, precedence, upper-case HTTP_PROXY ignored), and NO_PROXY /
// no_proxy are honoured — only in this mode.
TEST_CASE("egress opt-in: use_environment_proxy follows the environment like libcurl, NO_PROXY included") {
  World w;
  int variants = 0;
  for (const auto& var : kProxyVariables) {
    for (const bool https : {false, true}) {
      for (const auto source : kSources) {
        CountingProxy proxy(/*tunnel=*/true);
        for (const auto& form : {"http://" + proxy.hostport(), proxy.hostport(), "http://" + proxy.hostport() + "/p"}) {
          EnvGuard env;
          env.set(var, form);
          HttpClientOptions http;
          http.use_environment_proxy = true;
          const int before = proxy.connections();
          const auto error = w.request(source, https, http);
          ++variants;
          const std::string context_text = [&] { std::ostringstream os; os << var << "=" << form << " " << name_of(source) << (https ? " https" : " http"); return os.str(); }();
          INFO(context_text);  // eager: INFO keeps references, temporaries would dangle
          CHECK_MESSAGE(!error, describe(error));
          CHECK(proxy.connections() == before + (applies(var, https) ? 1 : 0));
        }
      }
    }
  }
  // Precedence: the scheme's own variable wins over all_proxy.
  for (const bool https : {false, true}) {
    CountingProxy specific(true), all(true);
    EnvGuard env;
    env.set(https ? "HTTPS_PROXY" : "http_proxy", "http://" + specific.hostport());
    env.set("all_proxy", "http://" + all.hostport());
    HttpClientOptions http;
    http.use_environment_proxy = true;
    CHECK_FALSE(w.request(Source::http_token, https, http));
    ++variants;
    CHECK(specific.connections() == 1);
    CHECK(all.connections() == 0);
  }
  // NO_PROXY / no_proxy (lower case first): matching entries go direct, others through the proxy.
  const std::vector<std::pair<std::string, bool>> lists = {
      {"*", true},          {"127.0.0.1", true},       {"127.0.0.0/8", true}, {"example.com, 127.0.0.1", true},
      {"example.com,127.0.0.1", true}, {"example.com 127.0.0.1", true}, {"127.0.0.2", false}, {"example.com", false},
      {"127.0.0.1/32", true}, {"10.0.0.0/8", false}, {"", false}};
  for (const char* no_var : {"NO_PROXY", "no_proxy"}) {
    for (const auto& [list, direct] : lists) {
      for (const auto source : kSources) {
        CountingProxy proxy(true);
        EnvGuard env;
        env.set("all_proxy", "http://" + proxy.hostport());
        if (!list.empty()) env.set(no_var, list);
        HttpClientOptions http;
        http.use_environment_proxy = true;
        const auto error = w.request(source, false, http);
        ++variants;
        const std::string context_text = [&] { std::ostringstream os; os << no_var << "=" << list << " " << name_of(source); return os.str(); }();
        INFO(context_text);  // eager: INFO keeps references, temporaries would dangle
        CHECK_MESSAGE(!error, describe(error));
        CHECK(proxy.connections() == (direct ? 0 : 1));
      }
    }
  }
  {  // no_proxy wins over NO_PROXY
    CountingProxy proxy(true);
    EnvGuard env;
    env.set("all_proxy", "http://" + proxy.hostport());
    env.set("no_proxy", "example.com");
    env.set("NO_PROXY", "*");
    HttpClientOptions http;
    http.use_environment_proxy = true;
    CHECK_FALSE(w.request(Source::http_token, false, http));
    ++variants;
    CHECK(proxy.connections() == 1);
  }
  {  // default mode: NO_PROXY alone changes nothing, and the explicit option beats the environment
    CountingProxy env_proxy(true), option_proxy(true);
    EnvGuard env;
    env.set("http_proxy", "http://" + env_proxy.hostport());
    HttpClientOptions http;
    http.proxy = "http://" + option_proxy.hostport();
    http.use_environment_proxy = true;
    CHECK_FALSE(w.request(Source::http_token, false, http));
    ++variants;
    CHECK(env_proxy.connections() == 0);
    CHECK(option_proxy.connections() == 1);
  }
  MESSAGE("use_environment_proxy: " << variants << " variants");
}

// ---------------------------------------------------------------------------------------
// The loopback rule applies to the proxy hop: plain http through a non-loopback proxy, and
// proxy credentials in clear to one, are refused with insecure_url before any connection; the
// proxy password never appears in a message.
TEST_CASE("egress: plain http or clear-text proxy credentials through a non-loopback proxy are refused") {
  World w;
  credkit::testing::DiagnosticsCapture::register_secret(kProxyPassword, "proxy password");
  int variants = 0;
  const std::vector<std::string> remote_proxies = {
      "http://192.0.2.1:3128",         "192.0.2.1:3128",        "https://192.0.2.1:443",
      "socks4://192.0.2.1:1080",       "socks4a://192.0.2.1:1080", "socks5://192.0.2.1:1080",
      "socks5h://192.0.2.1:1080",      "http://proxy.example.com:3128",
      "http://u:" + kProxyPassword + "@192.0.2.1:3128", "https://u:" + kProxyPassword + "@proxy.example.com",
      "http://[2001:db8::1]:3128",     "http://10.1.2.3:8080/path"};
  auto expect_insecure = [&](Source source, bool https, HttpClientOptions http, const std::string& what) {
    const auto before = w.server.stats();
    const auto tls_before = w.tls->connections();
    const auto t0 = std::chrono::steady_clock::now();
    const auto error = w.request(source, https, std::move(http));
    ++variants;
    const std::string context_text = [&] { std::ostringstream os; os << what << " " << name_of(source) << (https ? " https" : " http"); return os.str(); }();
    INFO(context_text);  // eager: INFO keeps references, temporaries would dangle
    const auto e = as_error(error);
    CHECK(e.code() == make_error_code(errc::insecure_url));
    CHECK(std::string(e.what()).find(kProxyPassword) == std::string::npos);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);  // refused before any connection attempt
    CHECK(w.server.stats() == before);
    CHECK(w.tls->connections() == tls_before);
  };
  for (const auto source : kSources) {
    for (const auto& p : remote_proxies) {
      HttpClientOptions http;
      http.proxy = p;
      expect_insecure(source, false, http, "proxy=" + p);
      for (const auto& var : {"http_proxy", "all_proxy", "ALL_PROXY"}) {
        EnvGuard env;
        env.set(var, p);
        HttpClientOptions eh;
        eh.use_environment_proxy = true;
        expect_insecure(source, false, eh, std::string(var) + "=" + p);
      }
    }
    // https target: proxy credentials would cross the network in clear (http:// or SOCKS proxy).
    for (const auto& p : {"http://u:" + kProxyPassword + "@192.0.2.1:3128", "u:" + kProxyPassword + "@192.0.2.1:3128",
                          "socks5://u:" + kProxyPassword + "@192.0.2.1:1080",
                          "socks4://u:" + kProxyPassword + "@192.0.2.1:1080"}) {
      HttpClientOptions http;
      http.proxy = p;
      expect_insecure(source, true, http, "proxy with credentials");
      EnvGuard env;
      env.set("HTTPS_PROXY", p);
      HttpClientOptions eh;
      eh.use_environment_proxy = true;
      expect_insecure(source, true, eh, "HTTPS_PROXY with credentials");
    }
  }
  // Allowed, and tried (the TEST-NET address never answers): an https target through a remote
  // http:// or SOCKS proxy without credentials (a tunnel: TLS end to end), and plain http
  // through a remote proxy with allow_insecure_http.
  for (const auto& [p, https, insecure] : std::vector<std::tuple<std::string, bool, bool>>{
           {"http://192.0.2.1:3128", true, false},
           {"socks5h://192.0.2.1:1080", true, false},
           {"https://u:" + kProxyPassword + "@192.0.2.1:3128", true, false},
           {"http://192.0.2.1:3128", false, true}}) {
    HttpClientOptions http;
    http.proxy = p;
    http.allow_insecure_http = insecure;
    http.connect_timeout = 200ms;
    http.total_timeout = 1s;
    const auto e = as_error(w.request(Source::http_token, https, http));
    ++variants;
    INFO(p);
    CHECK(e.code() != make_error_code(errc::insecure_url));
    CHECK(std::string(e.what()).find(kProxyPassword) == std::string::npos);
  }
  // A scheme libcurl would not treat as a proxy is a bad argument, not silently direct.
  for (const char* p : {"ftp://127.0.0.1:21", "file:///tmp/x", "gopher://127.0.0.1"}) {
    HttpClientOptions http;
    http.proxy = p;
    INFO(p);
    CHECK_THROWS_AS(detail::HttpClient(boost::asio::io_context().get_executor(), http), Error);
    ++variants;
  }
  MESSAGE("proxy-hop checks: " << variants << " variants");
}

// ---------------------------------------------------------------------------------------
// TLS trust: CURL_CA_BUNDLE, SSL_CERT_FILE and SSL_CERT_DIR pointing at an attacker's CA do
// not make credkit trust it (libcurl is given its CA file and path explicitly).
TEST_CASE("egress: CA environment variables do not change whom credkit trusts") {
  World w;
  int variants = 0;
  for (const auto source : kSources) {
    {  // baseline: with ca_file the test CA is trusted, without it not
      CHECK_FALSE(w.request(source, true, {}));
      HttpClientOptions http;
      http.ca_file = "/etc/ssl/certs/ca-certificates.crt";
      CHECK(as_error(w.request(source, true, http)).code() == make_error_code(errc::tls_error));
    }
    for (const auto& [var, value] : std::vector<std::pair<std::string, std::string>>{
             {"CURL_CA_BUNDLE", pki().ca_file}, {"SSL_CERT_FILE", pki().ca_file}, {"SSL_CERT_DIR", pki().ca_dir}}) {
      EnvGuard env;
      env.set(var, value);
      HttpClientOptions http;
      http.ca_file = "/etc/ssl/certs/ca-certificates.crt";  // the system store: the test CA is not in it
      const auto error = w.request(source, true, http);
      ++variants;
      const std::string context_text = [&] { std::ostringstream os; os << var << "=" << value << " " << name_of(source); return os.str(); }();
      INFO(context_text);  // eager: INFO keeps references, temporaries would dangle
      CHECK(as_error(error).code() == make_error_code(errc::tls_error));
      // And with no CA option at all (libcurl's built-in default bundle and path).
      HttpClientOptions def;
      def.ca_file.clear();
      const auto b = w.base(true);
      boost::asio::io_context io;
      detail::HttpClient client(io.get_executor(), def);
      std::exception_ptr e2;
      bool done = false;
      client.async_request({"GET", b + "/chat/user/alice/token", {}, {}}, {}, [&](std::exception_ptr e, detail::HttpResponse) {
        e2 = e;
        done = true;
      });
      credkit::test::run_until_done(io, done);
      ++variants;
      CHECK(as_error(e2).code() == make_error_code(errc::tls_error));
    }
  }
  MESSAGE("CA variables: " << variants << " variants");
}

// ---------------------------------------------------------------------------------------
// .netrc (HOME, CURL_HOME): never read, so no credentials are added to a request.
TEST_CASE("egress: a .netrc under HOME or CURL_HOME adds no credentials") {
  const auto home = fs::temp_directory_path() / ("credkit-egress-home-" + std::to_string(::getpid()));
  fs::create_directories(home);
  {
    std::ofstream(home / ".netrc") << "machine 127.0.0.1 login netrcuser password netrc-secret-password\n"
                                   << "default login netrcuser password netrc-secret-password\n";
    std::ofstream(home / "_netrc") << "machine 127.0.0.1 login netrcuser password netrc-secret-password\n";
  }
  fs::permissions(home / ".netrc", fs::perms::owner_read | fs::perms::owner_write);
  credkit::test::LoopbackHttpServer target([](const credkit::test::HttpExchange&) {
    credkit::test::HttpReply r;
    r.body = "token-from-the-target-0123456789abcdef";
    return r;
  });
  int variants = 0;
  for (const char* var : {"HOME", "CURL_HOME"}) {
    EnvGuard env;
    env.set(var, home.string());
    boost::asio::io_context io;
    detail::HttpClient client(io.get_executor(), HttpClientOptions{});
    bool done = false;
    std::exception_ptr error;
    client.async_request({"GET", target.url("/token"), {}, {}}, {}, [&](std::exception_ptr e, detail::HttpResponse) {
      error = e;
      done = true;
    });
    credkit::test::run_until_done(io, done);
    ++variants;
    CHECK_FALSE(error);
  }
  for (const auto& x : target.exchanges()) {
    CHECK(x.header("Authorization").empty());
  }
  CHECK(target.requests() == variants);
  fs::remove_all(home);
  MESSAGE(".netrc: " << variants << " variants");
}

// ---------------------------------------------------------------------------------------
// SSLKEYLOGFILE: libcurl opens it at curl_global_init and would write every TLS session's keys
// to it. credkit clears the key-log callback on each of its TLS contexts, so the file stays
// empty. Run in a child process: the variable only matters before libcurl initialises.
TEST_CASE("egress child: SSLKEYLOGFILE request (runs only when spawned by the test below)") {
  if (!std::getenv("CREDKIT_EGRESS_CHILD")) return;
  World w;
  for (const auto source : kSources) {
    INFO(name_of(source));
    CHECK_FALSE(w.request(source, true, {}));
  }
}

TEST_CASE("egress: SSLKEYLOGFILE receives no TLS keys") {
  const auto keylog = fs::temp_directory_path() / ("credkit-egress-keylog-" + std::to_string(::getpid()) + ".txt");
  fs::remove(keylog);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.push_back("SSLKEYLOGFILE=" + keylog.string());
  env_strings.push_back("CREDKIT_EGRESS_CHILD=1");
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = fs::read_symlink("/proc/self/exe").string();
  std::string filter = "--test-case=egress child: SSLKEYLOGFILE*";
  std::string quiet = "--no-intro";
  char* argv[] = {exe.data(), filter.data(), quiet.data(), nullptr};
  pid_t pid = 0;
  REQUIRE(::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, envp.data()) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::string content;
  if (fs::exists(keylog)) {
    std::ifstream in(keylog);
    std::stringstream ss;
    ss << in.rdbuf();
    content = ss.str();
  }
  MESSAGE("SSLKEYLOGFILE after 4 TLS requests in a child: " << content.size() << " bytes");
  CHECK(content.find("SECRET") == std::string::npos);
  CHECK(content.find("CLIENT_RANDOM") == std::string::npos);
  CHECK(content.empty());
  fs::remove(keylog);
}
