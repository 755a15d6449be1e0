// Fuzz target: the sample token server's request handling (paths, query strings, JSON and form
// bodies, ACS HMAC headers, x-ms-date, bearer tokens, the admin fault endpoint). The bytes are
// read as up to 8 pipelined HTTP requests, parsed as a connection reads them (Beast, header and
// body limits), and answered by a fresh server without a socket, so an admin request can set a
// fault that the next request meets.
//
// A request carrying the header `x-fuzz-sign` is signed with the server's ACS key first (date,
// content hash, Authorization), so inputs get past the HMAC check into the identity handlers.
//
// Checked per request: no crash or escaping exception, an answer with a known status (none
// only for an injected hang), a JSON body wherever the answer says JSON (unless the garbage
// fault produced it), and no server secret in the answer unless the request carried it.
#include "token_server_http.hpp"

#include "core/base64.hpp"
#include "sources/acs/hmac_signer.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/write.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace http = boost::beast::http;
using credkit::samples::HttpRequest;
using credkit::samples::HttpResponse;

// A fixed server clock keeps every answer (and x-ms-date checks) reproducible.
const auto fixed_now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));

std::string http_date(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

// Beast's string_view is Boost's (Boost 1.74), not std's.
std::string text(boost::beast::string_view s) { return std::string(s.data(), s.size()); }

void sign(HttpRequest& req, const std::string& key) {
  const std::string host = req[http::field::host].empty() ? "127.0.0.1" : text(req[http::field::host]);
  const auto h = credkit::acs::detail::sign_request(text(req.method_string()), host, text(req.target()), req.body(),
                                                    http_date(fixed_now), key);
  req.set(http::field::host, host);
  req.set("x-ms-date", h.date);
  req.set("x-ms-content-sha256", h.content_sha256);
  req.set(http::field::authorization, h.authorization);
}

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_token_server_request: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  credkit::samples::TokenServerOptions options;
  options.now = [] { return fixed_now; };
  credkit::samples::TokenServer server(options);
  const std::string acs_key = *credkit::detail::base64_decode(options.acs_access_key);
  const std::vector<std::string> secrets = {options.jwt_secret,           options.acs_access_key, acs_key,
                                            options.webpubsub_access_key, options.agora_app_certificate,
                                            options.entra_client_secret};

  std::string_view rest = input;
  for (int i = 0; i < 8 && !rest.empty(); ++i) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(8 * 1024);
    parser.body_limit(64 * 1024);
    parser.eager(true);
    boost::beast::error_code ec;
    std::size_t used = 0;
    while (!parser.is_done()) {
      const auto n = parser.put(boost::asio::buffer(rest.data() + used, rest.size() - used), ec);
      used += n;
      if (ec || n == 0) break;
    }
    if (!parser.is_done()) return 0;  // incomplete or rejected: a connection would close
    rest.remove_prefix(used);
    HttpRequest req = parser.release();
    if (req.count("x-fuzz-sign") != 0) sign(req, acs_key);

    const auto garbage_before = server.request_count("fault_garbage");
    const auto hangs_before = server.request_count("fault_hang");
    const auto answer = credkit::samples::handle_request(server, req);
    if (!answer) {
      if (server.request_count("fault_hang") == hangs_before) fail("no answer without a hang fault", "");
      continue;
    }
    const HttpResponse& res = *answer;
    if (http::int_to_status(res.result_int()) == http::status::unknown) {
      fail("unknown status", std::to_string(res.result_int()));
    }
    std::ostringstream wire;
    wire << res;
    const std::string answered = wire.str();
    for (const auto& s : secrets) {
      if (answered.find(s) != std::string::npos && input.find(s) == std::string_view::npos) {
        fail("a server secret is in the answer", std::to_string(res.result_int()));
      }
    }
    const bool says_json = res[http::field::content_type] == "application/json";
    if (says_json && server.request_count("fault_garbage") == garbage_before &&
        nlohmann::json::parse(res.body(), nullptr, false).is_discarded()) {
      fail("an application/json answer that is not JSON", res.body().substr(0, 200));
    }
  }
  return 0;
}
