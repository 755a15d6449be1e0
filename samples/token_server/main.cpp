// token_server — the sample trusted token service. Runs until SIGINT/SIGTERM.
//
//   token_server [--port N] [--lifetime 20s|5m|1h] [--fault 5xx|429|slow|garbage|expired|hang [--fault-count N]]
#include "token_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <cstdlib>
#include <iostream>
#include <string>

namespace {

std::chrono::seconds parse_duration(const std::string& text) {
  std::size_t used = 0;
  long long value = std::stoll(text, &used);
  std::string unit = text.substr(used);
  if (value <= 0) throw std::invalid_argument("duration must be positive");
  if (unit.empty() || unit == "s") return std::chrono::seconds(value);
  if (unit == "m") return std::chrono::minutes(value);
  if (unit == "h") return std::chrono::hours(value);
  throw std::invalid_argument("unknown duration unit '" + unit + "' (use s, m or h)");
}

int usage() {
  std::cerr << "usage: token_server [--port N] [--lifetime 20s|5m|1h] "
               "[--fault 5xx|429|slow|garbage|expired|hang] [--fault-count N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  credkit::samples::TokenServerOptions options;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
        return argv[++i];
      };
      if (arg == "--port") {
        int port = std::stoi(next());
        if (port < 0 || port > 65535) throw std::invalid_argument("--port must be 0-65535");
        options.port = static_cast<std::uint16_t>(port);
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
        options.initial_fault.count = std::stoi(next());
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

  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { server.stop(); });
  io.run();
  std::cout << "token_server stopped\n";
  return 0;
}
