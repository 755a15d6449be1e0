// The async HTTP client: libcurl's multi interface, its sockets and timer driven by Asio on a strand.
//
// curl tells us (CURLMOPT_SOCKETFUNCTION) which sockets to watch and (CURLMOPT_TIMERFUNCTION)
// when to wake it; we wait with posix::stream_descriptor / steady_timer and call
// curl_multi_socket_action. Every curl call runs on one strand, so the multi handle is never
// used concurrently and no thread ever blocks. DNS uses curl's threaded resolver.
#include "sources/http/http_client.hpp"

#include "sources/http/curl_url.hpp"

#include <credkit/core/log.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>

namespace credkit::detail {
namespace {

void global_init() {
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) throw_error(errc::network_error, std::string("libcurl failed to initialise: ") + curl_easy_strerror(rc));
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_loopback_host(std::string host) {
  host = lower(std::move(host));
  if (host == "localhost" || host.ends_with(".localhost")) return true;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (auto pct = host.find('%'); pct != std::string::npos) host.resize(pct);  // zone id
    in6_addr a6{};
    if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) return false;
    if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
    // ::ffff:127.x.y.z
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
  }
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) != 1) return false;
  return (ntohl(a4.s_addr) >> 24) == 127;
}

// ---- Network egress (docs/security.md, "Network egress") -----------------------------------
// libcurl would pick a proxy from http_proxy / https_proxy / HTTPS_PROXY / all_proxy / ALL_PROXY
// and drop it again for hosts in no_proxy / NO_PROXY, all read from the environment at connect
// time. credkit never lets it: every transfer sets CURLOPT_PROXY (an empty string means
// direct and stops libcurl's environment lookup) and CURLOPT_NOPROXY (""). The proxy, if any,
// comes from HttpClientOptions::proxy, or from the environment read here, by the same rules as
// libcurl, only when HttpClientOptions::use_environment_proxy is set; either way it passes the
// checks of `proxy_for_request` first.

std::string env_value(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

/// A parsed proxy URL. `url` is the normalised form handed to libcurl, so libcurl connects to
/// exactly the host that was checked.
struct ProxyUrl {
  std::string scheme;
  std::string host;
  std::string url;
  std::string password;  // a secret: for redaction only
  bool has_credentials = false;
  std::string for_message;  // scheme://host:port, never the credentials
};

ProxyUrl parse_proxy(const std::string& proxy, const std::string& origin) {
  std::string text = proxy;
  if (text.find("://") == std::string::npos) text = "http://" + text;  // libcurl's default proxy type
  CURLUcode rc = CURLUE_OK;
  const auto u = parse_curl_url(text, CURLU_NON_SUPPORT_SCHEME, &rc);
  if (rc == CURLUE_OUT_OF_MEMORY) throw_error(errc::network_error, "out of memory parsing a URL");
  if (!u) throw_error(errc::invalid_argument, origin + " is not a valid proxy URL");  // never echo it: credentials
  ProxyUrl r;
  r.scheme = lower(url_part(u.get(), CURLUPART_SCHEME));
  r.host = url_part(u.get(), CURLUPART_HOST);
  const auto port = url_part(u.get(), CURLUPART_PORT);
  r.for_message = r.scheme + "://" + redact_secrets(r.host) + (port.empty() ? "" : ":" + port);
  static const char* const supported[] = {"http", "https", "socks4", "socks4a", "socks5", "socks5h"};
  if (std::none_of(std::begin(supported), std::end(supported), [&](const char* s) { return r.scheme == s; })) {
    throw_error(errc::invalid_argument, origin + " '" + r.for_message +
                                            "' has an unsupported scheme (use http, https, socks4, socks4a, socks5 "
                                            "or socks5h)");
  }
  if (r.host.empty()) throw_error(errc::invalid_argument, origin + " has no host");
  r.password = url_part(u.get(), CURLUPART_PASSWORD);
  r.has_credentials = !url_part(u.get(), CURLUPART_USER).empty() || !r.password.empty();
  // Scheme, credentials, host and port only: a path or query means nothing to a proxy.
  curl_url_set(u.get(), CURLUPART_PATH, nullptr, 0);
  curl_url_set(u.get(), CURLUPART_QUERY, nullptr, 0);
  curl_url_set(u.get(), CURLUPART_FRAGMENT, nullptr, 0);
  r.url = url_part(u.get(), CURLUPART_URL);
  if (r.url.empty()) throw_error(errc::invalid_argument, origin + " is not a valid proxy URL");
  return r;
}

bool parse_ip(std::string host, unsigned char (&bytes)[16], int& family) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (auto pct = host.find('%'); pct != std::string::npos) host.resize(pct);
  if (inet_pton(AF_INET, host.c_str(), bytes) == 1) {
    family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), bytes) == 1) {
    family = AF_INET6;
    return true;
  }
  return false;
}

/// libcurl's no_proxy rules (7.88): the list "*" matches every host; entries are separated by
/// commas and/or white space; a name matches itself and its subdomains (a leading dot is
/// ignored); an IP address matches an equal address or a CIDR range (`10.0.0.0/8`).
bool no_proxy_matches(std::string host, std::string_view list) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  list = trim(list);
  if (list.empty()) return false;
  if (list == "*") return true;
  host = lower(std::move(host));
  unsigned char host_ip[16] = {};
  int host_family = 0;
  const bool host_is_ip = parse_ip(host, host_ip, host_family);
  while (!host.empty() && host.back() == '.') host.pop_back();
  std::size_t i = 0;
  while (i < list.size()) {
    const auto end = list.find_first_of(", \t\r\n", i);
    std::string entry = lower(std::string(list.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i)));
    i = end == std::string_view::npos ? list.size() : end + 1;
    if (entry.empty()) continue;
    if (host_is_ip) {
      int bits = -1;
      if (auto slash = entry.find('/'); slash != std::string::npos) {
        const auto b = entry.substr(slash + 1);
        if (b.empty() || b.size() > 3 || !std::all_of(b.begin(), b.end(), [](unsigned char c) { return std::isdigit(c); })) continue;
        bits = std::stoi(b);
        entry.resize(slash);
      }
      unsigned char ip[16] = {};
      int family = 0;
      if (!parse_ip(entry, ip, family) || family != host_family) continue;
      const int max_bits = family == AF_INET ? 32 : 128;
      if (bits < 0 || bits > max_bits) bits = max_bits;
      bool same = true;
      for (int bit = 0; bit < bits && same; ++bit) {
        const int byte = bit / 8;
        const int mask = 0x80 >> (bit % 8);
        same = (ip[byte] & mask) == (host_ip[byte] & mask);
      }
      if (same) return true;
      continue;
    }
    while (!entry.empty() && entry.front() == '.') entry.erase(0, 1);
    while (!entry.empty() && entry.back() == '.') entry.pop_back();
    if (entry.empty()) continue;
    if (host == entry) return true;
    if (host.size() > entry.size() && host.ends_with(entry) && host[host.size() - entry.size() - 1] == '.') return true;
  }
  return false;
}

/// The environment's proxy for a request, by libcurl's rules: `http_proxy` (lower case only:
/// `HTTP_PROXY` can be set by a CGI request's `Proxy:` header) for http, `https_proxy` then
/// `HTTPS_PROXY` for https, else `all_proxy` then `ALL_PROXY`; none for a host in `no_proxy`
/// (else `NO_PROXY`). Empty values count as unset. Returns the value and the variable's name.
std::pair<std::string, std::string> environment_proxy(const std::string& scheme, const std::string& host) {
  auto no_proxy = env_value("no_proxy");
  if (no_proxy.empty()) no_proxy = env_value("NO_PROXY");
  if (no_proxy_matches(host, no_proxy)) return {};
  std::vector<const char*> names;
  if (scheme == "https") {
    names = {"https_proxy", "HTTPS_PROXY"};
  } else {
    names = {"http_proxy"};
  }
  names.push_back("all_proxy");
  names.push_back("ALL_PROXY");
  for (const char* name : names) {
    if (auto v = env_value(name); !v.empty()) return {v, name};
  }
  return {};
}

// libcurl opens SSLKEYLOGFILE at curl_global_init and installs a key-log callback on every TLS
// context it makes; this CURLOPT_SSL_CTX_FUNCTION removes it before any SSL object is created,
// so no TLS secret of a credkit connection is ever written to that file.
CURLcode no_tls_key_log(CURL*, void* ssl_ctx, void*) {
  if (ssl_ctx) SSL_CTX_set_keylog_callback(static_cast<SSL_CTX*>(ssl_ctx), nullptr);
  return CURLE_OK;
}

}  // namespace

std::string proxy_for_request(const std::string& url, const HttpClientOptions& options, std::string* password) {
  std::string proxy = options.proxy;
  std::string origin = "HttpClientOptions::proxy";
  const auto u = parse_curl_url(url);
  if (!u) throw_error(errc::invalid_argument, "the URL '" + url_for_message(url) + "' is not a valid absolute URL");
  const auto scheme = lower(url_part(u.get(), CURLUPART_SCHEME));
  if (proxy.empty() && options.use_environment_proxy) {
    auto [value, name] = environment_proxy(scheme, url_part(u.get(), CURLUPART_HOST));
    proxy = std::move(value);
    origin = "the proxy in " + name;
  }
  if (proxy.empty()) return {};
  const auto p = parse_proxy(proxy, origin);
  if (password) *password = p.password;
  if (!options.allow_insecure_http && !is_loopback_host(p.host)) {
    if (scheme == "http") {
      throw_error(errc::insecure_url, "refusing plain http:// to '" + url_for_message(url) + "' through " + origin +
                                          " '" + p.for_message +
                                          "' (not loopback): tokens would travel unencrypted; use https:// or set "
                                          "HttpClientOptions::allow_insecure_http");
    }
    if (p.has_credentials && p.scheme != "https") {
      throw_error(errc::insecure_url, "refusing to send the credentials of " + origin + " '" + p.for_message +
                                          "' in clear text to a host that is not loopback; use an https:// proxy "
                                          "or set HttpClientOptions::allow_insecure_http");
    }
  }
  return p.url;
}

void check_request_url(const std::string& url, const HttpClientOptions& options) {
  if (url.empty()) throw_error(errc::invalid_argument, "the request URL is empty");
  CURLUcode rc = CURLUE_OK;
  const auto u = parse_curl_url(url, 0, &rc);
  if (rc == CURLUE_OUT_OF_MEMORY) throw_error(errc::network_error, "out of memory parsing a URL");
  if (!u) {
    throw_error(errc::invalid_argument, "the URL '" + url_for_message(url) + "' is not a valid absolute URL (" +
                                            curl_url_strerror(rc) + ")");
  }
  const auto scheme = lower(url_part(u.get(), CURLUPART_SCHEME));
  if (scheme != "https" && scheme != "http") {
    throw_error(errc::invalid_argument,
                "the URL '" + url_for_message(url) + "' must use https:// (or http:// to a loopback host)");
  }
  if (scheme == "http" && !options.allow_insecure_http && !is_loopback_host(url_part(u.get(), CURLUPART_HOST))) {
    throw_error(errc::insecure_url, "refusing plain http:// to '" + url_for_message(url) +
                                        "': tokens would travel unencrypted; use https:// or set "
                                        "HttpClientOptions::allow_insecure_http");
  }
}

namespace {

bool valid_method(const std::string& m) {
  return !m.empty() && m.size() <= 32 &&
         std::all_of(m.begin(), m.end(), [](unsigned char c) { return std::isupper(c) || c == '-' || c == '_'; });
}

bool has_crlf(std::string_view s) { return s.find_first_of("\r\n", 0) != std::string_view::npos || s.find('\0') != std::string_view::npos; }

errc classify(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return errc::timeout;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED: return errc::tls_error;
    case CURLE_FILESIZE_EXCEEDED: return errc::response_too_large;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT: return errc::invalid_argument;
    case CURLE_ABORTED_BY_CALLBACK: return errc::cancelled;
    default: return errc::network_error;  // resolve, connect, send, recv, reset, bad framing...
  }
}

}  // namespace

/// The shared state behind every copy of an HttpClient.
class HttpEngine : public std::enable_shared_from_this<HttpEngine> {
 public:
  HttpEngine(boost::asio::any_io_executor executor, HttpClientOptions options)
      : executor_(std::move(executor)),
        strand_(boost::asio::make_strand(executor_)),
        options_(std::move(options)),
        timer_(strand_) {
    global_init();
    if (options_.connect_timeout <= std::chrono::milliseconds::zero() ||
        options_.total_timeout <= std::chrono::milliseconds::zero()) {
      throw_error(errc::invalid_argument, "HttpClientOptions: connect_timeout and total_timeout must be positive");
    }
    if (options_.max_response_bytes == 0) {
      throw_error(errc::invalid_argument, "HttpClientOptions: max_response_bytes must be positive");
    }
    if (options_.user_agent.empty()) options_.user_agent = "credkit/0.1.0";
    if (has_crlf(options_.user_agent)) throw_error(errc::invalid_argument, "HttpClientOptions: user_agent contains CR/LF");
    if (!options_.proxy.empty()) (void)parse_proxy(options_.proxy, "HttpClientOptions::proxy");  // scheme, syntax
    multi_ = curl_multi_init();
    if (!multi_) throw_error(errc::network_error, "libcurl could not create a multi handle");
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &HttpEngine::on_socket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &HttpEngine::on_timer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  }

  // Runs when the last client copy and the last transfer are gone, so no transfer is left.
  ~HttpEngine() {
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, nullptr);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, nullptr);
    // Stop watching curl's sockets before curl closes them (a closed fd could be reused).
    for (auto& [fd, sock] : sockets_) sock->close();
    sockets_.clear();
    for (auto& [id, t] : transfers_) {  // normally empty (each transfer keeps the engine alive)
      curl_multi_remove_handle(multi_, t->easy);
      curl_easy_cleanup(t->easy);
      t->easy = nullptr;
    }
    for (CURL* e : spare_easy_) curl_easy_cleanup(e);
    curl_multi_cleanup(multi_);
  }

  HttpEngine(const HttpEngine&) = delete;
  HttpEngine& operator=(const HttpEngine&) = delete;

  void start(HttpRequest request, boost::asio::cancellation_slot slot, HttpClient::Completion done,
             boost::asio::any_io_executor completion_executor) {
    auto t = std::make_unique<Transfer>();
    t->request = std::move(request);
    t->done = std::move(done);
    t->completion_executor = std::move(completion_executor);
    try {
      check_request_url(t->request.url, options_);
      t->proxy = proxy_for_request(t->request.url, options_, &t->proxy_password);
      if (!valid_method(t->request.method)) {
        throw_error(errc::invalid_argument, "the HTTP method '" + redact_secrets(t->request.method) + "' is not valid");
      }
      for (const auto& [name, value] : t->request.headers) {
        if (name.empty() || has_crlf(name) || has_crlf(value) || name.find(':') != std::string::npos) {
          throw_error(errc::invalid_argument,
                      "request header '" + redact_secrets(name) + "' has an invalid name or a CR/LF in its value");
        }
      }
    } catch (...) {
      deliver(std::move(t), std::current_exception());
      return;
    }
    t->id = next_id_.fetch_add(1);
    if (slot.is_connected()) {
      t->slot = slot;
      slot.assign([weak = weak_from_this(), id = t->id](boost::asio::cancellation_type) {
        if (auto self = weak.lock()) {
          boost::asio::post(self->strand_, [self, id] { self->abort(id); });
        }
      });
    }
    t->keep_alive = shared_from_this();
    boost::asio::post(strand_, [self = shared_from_this(), t = std::move(t)]() mutable { self->add(std::move(t)); });
  }

  boost::asio::any_io_executor executor_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  HttpClientOptions options_;

 private:
  struct Transfer {
    std::uint64_t id = 0;
    CURL* easy = nullptr;
    curl_slist* header_list = nullptr;
    HttpRequest request;
    std::string proxy;           // "" = direct (checked by proxy_for_request)
    std::string proxy_password;  // for redaction only
    HttpResponse response;
    std::size_t received = 0;  // headers + body bytes
    bool too_large = false;
    HttpClient::Completion done;
    boost::asio::any_io_executor completion_executor;
    boost::asio::cancellation_slot slot;
    std::shared_ptr<HttpEngine> keep_alive;  // a running transfer keeps its engine alive
    char errbuf[CURL_ERROR_SIZE] = {};

    ~Transfer() {
      if (easy) curl_easy_cleanup(easy);
      if (header_list) curl_slist_free_all(header_list);
    }
  };

  struct Socket {
    Socket(boost::asio::strand<boost::asio::any_io_executor>& strand, curl_socket_t fd) : fd(fd), desc(strand) {
      boost::system::error_code ec;
      desc.assign(fd, ec);
      if (ec) closed = true;
    }
    ~Socket() { close(); }
    // Stops watching without closing: the descriptor belongs to curl.
    void close() {
      closed = true;
      if (desc.is_open()) desc.release();
    }
    curl_socket_t fd;
    boost::asio::posix::stream_descriptor desc;
    int what = 0;
    bool reading = false;
    bool writing = false;
    bool closed = false;
  };

  static void deliver(std::unique_ptr<Transfer> t, std::exception_ptr error) {
    auto ex = t->completion_executor;
    boost::asio::post(ex, [slot = t->slot, done = std::move(t->done), error,
                           response = error ? HttpResponse{} : std::move(t->response)]() mutable {
      if (slot.is_connected()) slot.clear();
      done(error, std::move(response));
    });
    // `t` (and its keep_alive) is released by the caller's frame, which holds the engine.
  }

  Error transfer_error(const Transfer& t, CURLcode rc) const {
    const auto code = classify(rc);
    const auto what = t.request.method + " " + url_for_message(t.request.url);
    std::string detail = t.errbuf[0] ? std::string(t.errbuf) : std::string(curl_easy_strerror(rc));
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
    detail = t.proxy_password.empty() ? redact_secrets(detail) : redact_secrets(detail, {t.proxy_password});
    ErrorDetails details;
    switch (code) {
      case errc::timeout:
        return Error(code, what + " timed out (" + detail + "; connect_timeout " +
                               std::to_string(options_.connect_timeout.count()) + " ms, total_timeout " +
                               std::to_string(options_.total_timeout.count()) + " ms)");
      case errc::tls_error:
        details.retryable = false;
        return Error(code, what + " failed the TLS handshake: " + detail +
                               " (check the server certificate, HttpClientOptions::ca_file / ca_path)",
                     std::move(details));
      case errc::response_too_large:
        return Error(code, what + ": the response exceeds max_response_bytes (" +
                               std::to_string(options_.max_response_bytes) + " bytes)");
      default: return Error(code, what + " failed: " + detail + " (" + curl_easy_strerror(rc) + ")");
    }
  }

  void add(std::unique_ptr<Transfer> t) {
    try {
      configure(*t);
    } catch (...) {
      deliver(std::move(t), std::current_exception());
      return;
    }
    if (auto rc = curl_multi_add_handle(multi_, t->easy); rc != CURLM_OK) {
      deliver(std::move(t), std::make_exception_ptr(Error(errc::network_error, std::string("libcurl refused the transfer: ") +
                                                                                   curl_multi_strerror(rc))));
      return;
    }
    const auto id = t->id;
    transfers_.emplace(id, std::move(t));
  }

  void configure(Transfer& t) {
    if (!spare_easy_.empty()) {
      t.easy = spare_easy_.back();
      spare_easy_.pop_back();
    } else {
      t.easy = curl_easy_init();
    }
    if (!t.easy) throw_error(errc::network_error, "libcurl could not create a transfer");
    CURL* e = t.easy;
    auto set = [&](CURLoption opt, auto value) {
      if (auto rc = curl_easy_setopt(e, opt, value); rc != CURLE_OK) {
        throw_error(classify(rc) == errc::network_error ? errc::invalid_argument : classify(rc),
                    std::string("libcurl rejected an option: ") + curl_easy_strerror(rc));
      }
    };
    set(CURLOPT_URL, t.request.url.c_str());
    set(CURLOPT_PRIVATE, static_cast<void*>(&t));
    set(CURLOPT_ERRORBUFFER, t.errbuf);
    set(CURLOPT_NOSIGNAL, 1L);
    set(CURLOPT_PROTOCOLS_STR, "http,https");
    set(CURLOPT_FOLLOWLOCATION, 0L);
    set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
    set(CURLOPT_TIMEOUT_MS, static_cast<long>(options_.total_timeout.count()));
    set(CURLOPT_SSL_VERIFYPEER, options_.verify_peer ? 1L : 0L);
    set(CURLOPT_SSL_VERIFYHOST, options_.verify_peer ? 2L : 0L);
    // A CA file or directory given replaces the system store: the other one is cleared, or
    // libcurl would still trust its built-in default beside it.
    const auto trust = [&](CURLoption file_option, CURLoption path_option) {
      if (options_.ca_file.empty() && options_.ca_path.empty()) return;
      set(file_option, options_.ca_file.empty() ? static_cast<const char*>(nullptr) : options_.ca_file.c_str());
      set(path_option, options_.ca_path.empty() ? static_cast<const char*>(nullptr) : options_.ca_path.c_str());
    };
    trust(CURLOPT_CAINFO, CURLOPT_CAPATH);
    set(CURLOPT_USERAGENT, options_.user_agent.c_str());
    set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options_.max_response_bytes));
    set(CURLOPT_WRITEFUNCTION, &HttpEngine::on_body);
    set(CURLOPT_WRITEDATA, static_cast<void*>(&t));
    set(CURLOPT_HEADERFUNCTION, &HttpEngine::on_header);
    set(CURLOPT_HEADERDATA, static_cast<void*>(&t));
    set(CURLOPT_TCP_KEEPALIVE, 1L);
    // Network egress: nothing in the environment picks the route, adds credentials or logs keys.
    set(CURLOPT_PROXY, t.proxy.c_str());  // "" = direct, and libcurl reads no *_proxy variable
    set(CURLOPT_NOPROXY, "");             // nor no_proxy / NO_PROXY
    set(CURLOPT_NETRC, static_cast<long>(CURL_NETRC_IGNORED));
    if (!t.proxy.empty()) {
      set(CURLOPT_HTTPPROXYTUNNEL, 1L);  // a proxy is a tunnel, never sent the request itself
      set(CURLOPT_PROXY_SSL_VERIFYPEER, options_.verify_peer ? 1L : 0L);
      set(CURLOPT_PROXY_SSL_VERIFYHOST, options_.verify_peer ? 2L : 0L);
      trust(CURLOPT_PROXY_CAINFO, CURLOPT_PROXY_CAPATH);
    }
    // Not `set`: a TLS backend without SSL_CTX access (not credkit's OpenSSL build) has no key log to stop.
    curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, &no_tls_key_log);

    const auto& m = t.request.method;
    if (m == "GET" && t.request.body.empty()) {
      set(CURLOPT_HTTPGET, 1L);
    } else if (m == "HEAD" && t.request.body.empty()) {
      set(CURLOPT_NOBODY, 1L);
    } else {
      if (m != "POST") set(CURLOPT_CUSTOMREQUEST, m.c_str());
      if (m == "POST" || !t.request.body.empty()) {
        set(CURLOPT_POSTFIELDS, t.request.body.data());
        set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.request.body.size()));
      }
    }
    auto append = [&](const std::string& line) {
      auto* l = curl_slist_append(t.header_list, line.c_str());
      if (!l) throw_error(errc::network_error, "out of memory building request headers");
      t.header_list = l;
    };
    for (const auto& [name, value] : t.request.headers) append(value.empty() ? name + ";" : name + ": " + value);
    append("Expect:");  // no 100-continue round trip for bodies
    set(CURLOPT_HTTPHEADER, t.header_list);
  }

  static size_t on_body(char* data, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    const auto bytes = size * n;
    if (t->received + bytes > t->keep_alive->options_.max_response_bytes) {
      t->too_large = true;
      return 0;  // aborts with CURLE_WRITE_ERROR
    }
    t->received += bytes;
    t->response.body.append(data, bytes);
    return bytes;
  }

  static size_t on_header(char* data, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    const auto bytes = size * n;
    if (t->received + bytes > t->keep_alive->options_.max_response_bytes) {
      t->too_large = true;
      return 0;
    }
    t->received += bytes;
    std::string_view line(data, bytes);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (line.starts_with("HTTP/")) {
      t->response.headers.clear();  // a new (final or interim) response starts
      return bytes;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return bytes;
    auto value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    t->response.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    return bytes;
  }

  // Cancellation: abort the transfer if it is still running.
  void abort(std::uint64_t id) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) return;
    auto t = std::move(it->second);
    transfers_.erase(it);
    curl_multi_remove_handle(multi_, t->easy);
    recycle(*t);
    const auto what = t->request.method + " " + url_for_message(t->request.url);
    deliver(std::move(t), std::make_exception_ptr(Error(errc::cancelled, what + " was cancelled")));
  }

  // A finished transfer's easy handle is reset and kept for the next one: creating and
  // destroying one per refresh costs more than the rest of curl's work on a keep-alive
  // connection. (Connections live in the multi handle's cache, not in easy handles.)
  void recycle(Transfer& t) {
    if (!t.easy || spare_easy_.size() >= kSpareEasyHandles) return;
    curl_easy_reset(t.easy);
    spare_easy_.push_back(t.easy);
    t.easy = nullptr;
  }

  void check_done() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      const CURLcode rc = msg->data.result;
      Transfer* raw = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &raw);
      auto it = raw ? transfers_.find(raw->id) : transfers_.end();
      if (it == transfers_.end()) continue;
      auto t = std::move(it->second);
      transfers_.erase(it);
      long status = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
      curl_multi_remove_handle(multi_, t->easy);
      if (rc == CURLE_OK) {
        t->response.status = static_cast<int>(status);
        recycle(*t);
        deliver(std::move(t), nullptr);
      } else {
        const auto err = (rc == CURLE_WRITE_ERROR && t->too_large) ? transfer_error(*t, CURLE_FILESIZE_EXCEEDED)
                                                                    : transfer_error(*t, rc);
        recycle(*t);
        deliver(std::move(t), std::make_exception_ptr(err));
      }
    }
  }

  void socket_action(curl_socket_t fd, int flags) {
    int running = 0;
    curl_multi_socket_action(multi_, fd, flags, &running);
    check_done();
  }

  void arm(const std::shared_ptr<Socket>& sock) {
    if (sock->closed) return;
    if (sock->what & CURL_POLL_IN) wait_ready(sock, CURL_POLL_IN, &Socket::reading);
    if (sock->what & CURL_POLL_OUT) wait_ready(sock, CURL_POLL_OUT, &Socket::writing);
  }

  // One wait per direction at a time; `waiting` is the socket's flag for that direction.
  void wait_ready(const std::shared_ptr<Socket>& sock, int direction, bool Socket::*waiting) {
    if ((*sock).*waiting) return;
    (*sock).*waiting = true;
    const auto kind = direction == CURL_POLL_IN ? boost::asio::posix::descriptor_base::wait_read
                                                : boost::asio::posix::descriptor_base::wait_write;
    sock->desc.async_wait(
        kind, boost::asio::bind_executor(strand_, [weak = weak_from_this(), sock, direction,
                                                   waiting](boost::system::error_code ec) {
          (*sock).*waiting = false;
          if (auto self = weak.lock()) self->on_ready(sock, direction, ec);
        }));
  }


  void on_ready(const std::shared_ptr<Socket>& sock, int direction, boost::system::error_code ec) {
    if (sock->closed || ec == boost::asio::error::operation_aborted) return;
    if (!(sock->what & direction)) return;  // curl lost interest meanwhile
    int flags = direction == CURL_POLL_IN ? CURL_CSELECT_IN : CURL_CSELECT_OUT;
    if (ec) flags |= CURL_CSELECT_ERR;
    socket_action(sock->fd, flags);
    arm(sock);
  }

  static int on_socket(CURL*, curl_socket_t fd, int what, void* userp, void*) {
    auto* self = static_cast<HttpEngine*>(userp);
    if (what == CURL_POLL_REMOVE) {
      if (auto it = self->sockets_.find(fd); it != self->sockets_.end()) {
        it->second->close();
        self->sockets_.erase(it);
      }
      return 0;
    }
    auto& sock = self->sockets_[fd];
    if (!sock) sock = std::make_shared<Socket>(self->strand_, fd);
    sock->what = what;
    if (sock->closed) {  // could not register with the reactor: let curl see an error
      log(LogLevel::warning, "credkit http: cannot watch a socket; the transfer will fail");
      return -1;
    }
    self->arm(sock);
    return 0;
  }

  // curl's timer. A timeout of 0 ("act now", asked for on every new transfer) is posted to the
  // strand rather than armed on the steady_timer: arming and cancelling the reactor's timerfd
  // costs two system calls per refresh for nothing.
  static int on_timer(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<HttpEngine*>(userp);
    if (self->timer_armed_) {
      self->timer_armed_ = false;
      self->timer_.cancel();
    }
    if (timeout_ms < 0) return 0;
    if (timeout_ms == 0) {
      boost::asio::post(self->strand_, [weak = self->weak_from_this()] {
        if (auto s = weak.lock()) s->socket_action(CURL_SOCKET_TIMEOUT, 0);
      });
      return 0;
    }
    self->timer_armed_ = true;
    const auto generation = ++self->timer_generation_;
    self->timer_.expires_after(std::chrono::milliseconds(timeout_ms));
    self->timer_.async_wait(boost::asio::bind_executor(
        self->strand_, [weak = self->weak_from_this(), generation](boost::system::error_code ec) {
          if (ec) return;
          auto s = weak.lock();
          if (!s) return;
          if (generation == s->timer_generation_) s->timer_armed_ = false;
          s->socket_action(CURL_SOCKET_TIMEOUT, 0);
        }));
    return 0;
  }

  CURLM* multi_ = nullptr;
  boost::asio::steady_timer timer_;
  bool timer_armed_ = false;            // a wait is pending on timer_ (strand only)
  std::uint64_t timer_generation_ = 0;  // which wait is the current one
  std::map<curl_socket_t, std::shared_ptr<Socket>> sockets_;
  static constexpr std::size_t kSpareEasyHandles = 4;
  std::vector<CURL*> spare_easy_;  // reset easy handles ready for reuse (strand only)
  std::map<std::uint64_t, std::unique_ptr<Transfer>> transfers_;
  std::atomic<std::uint64_t> next_id_{1};
};

HttpClient::HttpClient(boost::asio::any_io_executor executor, HttpClientOptions options)
    : engine_(std::make_shared<HttpEngine>(std::move(executor), std::move(options))) {}

void HttpClient::async_request(HttpRequest request, boost::asio::cancellation_slot slot, Completion done) {
  async_request(std::move(request), slot, std::move(done), engine_->executor_);
}

void HttpClient::async_request(HttpRequest request, boost::asio::cancellation_slot slot, Completion done,
                               boost::asio::any_io_executor completion_executor) {
  if (!done) throw Error(errc::invalid_argument, "HttpClient::async_request needs a completion function");
  engine_->start(std::move(request), slot, std::move(done), std::move(completion_executor));
}

const boost::asio::any_io_executor& HttpClient::get_executor() const noexcept { return engine_->executor_; }

const HttpClientOptions& HttpClient::options() const noexcept { return engine_->options_; }

}  // namespace credkit::detail
