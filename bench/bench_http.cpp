// credkit bench — an HttpTokenSource refresh against a bare libcurl request loop to the
// same loopback server (nginx with keep-alive, started by this benchmark), and the number
// of TCP connections credkit opened for its refreshes (from nginx's access log).
//
// Usage: credkit_bench_http [--connections_out=FILE] [Google Benchmark flags]
#include "bench_support.hpp"
#include "support/child_server.hpp"
#include "support/loopback_port.hpp"

#include <credkit/sources/http_token_source.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <curl/curl.h>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// nginx on a loopback port answering GET /token with a JWT (text/plain), keep-alive on.
struct NginxServer {
  std::filesystem::path dir;
  unsigned short port = credkit::test::free_loopback_port();
  std::optional<credkit::test::ChildServer> nginx;
  std::string token = credkit::bench::make_acs_jwt(std::chrono::system_clock::now() + 1h, 9);
  NginxServer() {
    char tmpl[] = "/tmp/credkit-bench-nginx-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    std::ofstream conf(dir / "nginx.conf");
    conf << "daemon off;\nworker_processes 1;\npid " << (dir / "nginx.pid").string() << ";\n"
         << "error_log " << (dir / "error.log").string() << " warn;\n"
         << "events { worker_connections 256; }\n"
         << "http {\n  log_format conn '$connection $request_uri';\n"
         << "  access_log " << (dir / "access.log").string() << " conn;\n"
         << "  client_body_temp_path " << dir.string() << ";\n  proxy_temp_path " << dir.string() << ";\n"
         << "  fastcgi_temp_path " << dir.string() << ";\n  uwsgi_temp_path " << dir.string() << ";\n"
         << "  scgi_temp_path " << dir.string() << ";\n"
         << "  keepalive_requests 1000000;\n  keepalive_timeout 60s;\n"
         << "  server {\n    listen 127.0.0.1:" << port << ";\n"
         << "    location /token { default_type text/plain; return 200 '" << token << "'; }\n  }\n}\n";
    conf.close();
    nginx.emplace(std::vector<std::string>{"/usr/sbin/nginx", "-c", (dir / "nginx.conf").string(), "-p", dir.string()},
                  port, SIGQUIT);
  }
  ~NginxServer() {
    nginx.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string url(const char* who) const { return "http://127.0.0.1:" + std::to_string(port) + "/token?c=" + who; }
  // (distinct connections, requests) seen for `who` in the access log.
  std::pair<std::size_t, std::size_t> connections(const std::string& who) const {
    std::ifstream log(dir / "access.log");
    std::set<std::string> conns;
    std::size_t requests = 0;
    std::string c, uri;
    while (log >> c >> uri) {
      if (uri == "/token?c=" + who) {
        conns.insert(c);
        ++requests;
      }
    }
    return {conns.size(), requests};
  }
};

// The credkit side: one HttpTokenSource on an io_context. `inline_io` runs that io_context on
// the benchmark thread (an async app chaining refreshes on its own event loop: nothing but
// the HTTP exchange is timed, as in the bare libcurl loop); `threaded_io` runs it on a
// thread of its own and the benchmark blocks on a future (adds two thread hand-offs).
struct Fixture {
  NginxServer server;
  asio::io_context inline_io{1};
  std::unique_ptr<credkit::HttpTokenSource> inline_source;
  asio::io_context threaded_io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(threaded_io);
  std::thread thread{[this] { threaded_io.run(); }};
  std::unique_ptr<credkit::HttpTokenSource> threaded_source;
  Fixture() {
    credkit::HttpTokenSourceOptions o;
    o.url = server.url("credkit");
    inline_source = std::make_unique<credkit::HttpTokenSource>(inline_io.get_executor(), o);
    o.url = server.url("credkit-threaded");
    threaded_source = std::make_unique<credkit::HttpTokenSource>(threaded_io.get_executor(), std::move(o));
  }
  ~Fixture() {
    inline_source.reset();
    threaded_source.reset();
    work.reset();
    thread.join();
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void BM_Http_CredkitRefresh(benchmark::State& state) {
  auto& f = fixture();
  std::size_t bytes = 0;
  for (auto _ : state) {
    bool done = false;
    std::exception_ptr error;
    f.inline_source->async_fetch([&](std::exception_ptr e, credkit::AccessToken t) {
      error = e;
      bytes += t.token.size();
      done = true;
    });
    f.inline_io.restart();
    while (!done && f.inline_io.run_one() > 0) {
    }
    if (!done || error) {
      state.SkipWithError("credkit refresh failed");
      break;
    }
  }
  benchmark::DoNotOptimize(bytes);
}

void BM_Http_CredkitRefreshFromOtherThread(benchmark::State& state) {
  auto& f = fixture();
  std::size_t bytes = 0;
  for (auto _ : state) {
    credkit::AccessToken t = f.threaded_source->async_fetch(asio::use_future).get();
    bytes += t.token.size();
  }
  benchmark::DoNotOptimize(bytes);
}

void BM_Http_BareCurl(benchmark::State& state) {
  auto& f = fixture();
  CURL* h = curl_easy_init();
  const std::string url = f.server.url("curl");
  std::string body;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, +[](char* p, std::size_t s, std::size_t n, void* out) -> std::size_t {
    static_cast<std::string*>(out)->append(p, s * n);
    return s * n;
  });
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  for (auto _ : state) {
    body.clear();
    if (curl_easy_perform(h) != CURLE_OK) {
      state.SkipWithError("curl_easy_perform failed");
      break;
    }
    benchmark::DoNotOptimize(body.size());
  }
  curl_easy_cleanup(h);
}

}  // namespace

BENCHMARK(BM_Http_CredkitRefresh)->UseRealTime();
BENCHMARK(BM_Http_CredkitRefreshFromOtherThread)->UseRealTime();
BENCHMARK(BM_Http_BareCurl)->UseRealTime();

int main(int argc, char** argv) {
  std::string connections_out;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--connections_out=", 0) == 0) {
      connections_out = a.substr(18);
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  curl_global_init(CURL_GLOBAL_DEFAULT);
  benchmark::Initialize(&n, args.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  const auto [conns, requests] = fixture().server.connections("credkit");
  const auto [curl_conns, curl_requests] = fixture().server.connections("curl");
  std::ostringstream j;
  j << "{\"credkit_connections\": " << conns << ", \"credkit_requests\": " << requests
    << ", \"curl_connections\": " << curl_conns << ", \"curl_requests\": " << curl_requests << "}\n";
  if (connections_out.empty()) {
    std::cout << j.str();
  } else {
    std::ofstream(connections_out) << j.str();
  }
  return 0;
}
