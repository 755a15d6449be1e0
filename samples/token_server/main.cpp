// token_server — the sample trusted token service. Runs until SIGINT/SIGTERM.
//
//   token_server [--port N] [--lifetime 20s|5m|10m20s|1h] [--fault 5xx|429|slow|garbage|expired|hang [--fault-count N]]
//                [--metrics-port N]
//
// --metrics-port serves Prometheus metrics on 127.0.0.1:N/metrics (server_metrics.hpp; needs
// credkit's credkit::prometheus component).
#include "token_server.hpp"
#ifdef TOKEN_SERVER_METRICS
#include "server_metrics.hpp"
#endif

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <charconv>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace {

// A whole-text decimal integer in [lo, hi] (no spaces, '+', hex or overflow), else an error naming `option`.
long long number(const std::string& text, long long lo, long long hi, const char* option) {
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < lo || value > hi) {
    throw std::invalid_argument(std::string(option) + " must be a whole number from " + std::to_string(lo) + " to " +
                                std::to_string(hi));
  }
  return value;
}

// "620", "620s", "10m", "10m20s", "1h30m": one or more <number><unit> parts (s, m, h; a
// lone number is seconds), each unit at most once and in h, m, s order; positive, at most a year.
std::chrono::seconds parse_duration(const std::string& text) {
  if (text.empty()) throw std::invalid_argument("empty duration");
  constexpr long long max_seconds = 366LL * 86400;
  long long total = 0;
  int last_unit = 4;  // h = 3, m = 2, s = 1: units must strictly decrease
  std::size_t i = 0;
  while (i < text.size()) {
    long long value = 0;
    const std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value = value * 10 + (text[i] - '0');
      if (value > max_seconds) throw std::invalid_argument("duration '" + text + "' is longer than a year");
      ++i;
    }
    if (i == start) throw std::invalid_argument("bad duration '" + text + "' (e.g. 20s, 5m, 10m20s, 1h)");
    const char unit = i < text.size() ? text[i++] : 's';
    const int rank = unit == 'h' ? 3 : unit == 'm' ? 2 : unit == 's' ? 1 : 0;
    if (rank == 0) throw std::invalid_argument("unknown duration unit in '" + text + "' (use s, m or h)");
    if (rank >= last_unit) throw std::invalid_argument("bad duration '" + text + "' (units in h, m, s order)");
    last_unit = rank;
    total += value * (rank == 3 ? 3600 : rank == 2 ? 60 : 1);
  }
  if (total <= 0) throw std::invalid_argument("duration must be positive");
  if (total > max_seconds) throw std::invalid_argument("duration '" + text + "' is longer than a year");
  return std::chrono::seconds(total);
}

int usage() {
  std::cerr << "usage: token_server [--port N] [--lifetime 20s|5m|10m20s|1h] "
               "[--fault 5xx|429|slow|garbage|expired|hang] [--fault-count N] [--metrics-port N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  credkit::samples::TokenServerOptions options;
  std::optional<unsigned short> metrics_port;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
        return argv[++i];
      };
      if (arg == "--port") {
        options.port = static_cast<std::uint16_t>(number(next(), 0, 65535, "--port"));
      } else if (arg == "--lifetime") {
        options.token_lifetime = parse_duration(next());
      } else if (arg == "--fault") {
        const std::string mode = next();
        bool known = false;
        for (auto m : {credkit::samples::FaultMode::server_error, credkit::samples::FaultMode::rate_limited,
                       credkit::samples::FaultMode::slow, credkit::samples::FaultMode::garbage,
                       credkit::samples::FaultMode::expired, credkit::samples::FaultMode::hang}) {
          if (credkit::samples::to_string(m) == mode) {
            options.initial_fault.mode = m;
            known = true;
          }
        }
        if (!known) throw std::invalid_argument("unknown --fault " + mode);
      } else if (arg == "--fault-count") {
        options.initial_fault.count = static_cast<int>(number(next(), 0, 1'000'000, "--fault-count"));
      } else if (arg == "--metrics-port") {
        metrics_port = static_cast<unsigned short>(number(next(), 0, 65535, "--metrics-port"));
#ifndef TOKEN_SERVER_METRICS
        throw std::invalid_argument("--metrics-port needs credkit's credkit::prometheus component (prometheus-cpp)");
#endif
      } else if (arg == "--help" || arg == "-h") {
        usage();
        return 0;
      } else {
        throw std::invalid_argument("unknown option " + arg);
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "token_server: " << e.what() << "\n";
    return usage();
  }

  credkit::samples::TokenServer server(options);
  try {
    server.start();
  } catch (const std::exception& e) {
    std::cerr << "token_server: cannot listen: " << e.what() << "\n";
    return 1;
  }
  std::cout << "token_server listening on " << server.base_url() << " (port " << server.port() << ")\n"
            << "  GET  /chat/user/{name}/token, POST /api/token, GET /api/webpubsub/client-url?user=...\n"
            << "  GET  /api/agora/chat/user/{uid}/token, ACS identity (HMAC), POST /{tenant}/oauth2/v2.0/token\n"
            << "  POST /admin/faults, GET /admin/stats; token lifetime " << options.token_lifetime.count() << " s\n"
            << std::flush;
#ifdef TOKEN_SERVER_METRICS
  std::unique_ptr<token_server_sample::ServerMetrics> metrics;
  if (metrics_port) {
    try {
      metrics = std::make_unique<token_server_sample::ServerMetrics>(server, *metrics_port);
    } catch (const std::exception& e) {
      std::cerr << "token_server: cannot serve metrics: " << e.what() << "\n";
      return 1;
    }
    std::cout << "  metrics at http://127.0.0.1:" << metrics->port() << "/metrics\n" << std::flush;
  }
#endif

  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { server.stop(); });
  io.run();
  std::cout << "token_server stopped\n";
  return 0;
}
