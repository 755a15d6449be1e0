// stateless_bot — a bot that answers a burst of messages for a few users. Each user has its
// own credential in on-demand mode: no timers, no background work; a token is fetched only
// when a message needs one and the cached token is below its minimum validity. Fetchers use
// the blocking style (a plain function that may block; credkit runs it off the executor).
//
//   stateless_bot [--messages N] [--lifetime-ms MS]

#include <credkit/credkit.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const auto g_start = Clock::now();
std::mutex g_print_mutex;

template <typename... Args>
void say(const Args&... args) {
  std::ostringstream line;
  char stamp[16];
  std::snprintf(stamp, sizeof stamp, "[%5.2fs] ", std::chrono::duration<double>(Clock::now() - g_start).count());
  line << stamp;
  (line << ... << args);
  std::lock_guard lock(g_print_mutex);
  std::cout << line.str() << std::endl;
}

/// One user the bot acts for, with its own credential and counters.
struct User {
  std::string name;
  std::shared_ptr<credkit::TokenCredential> credential;
  std::atomic<int> fetches{0};
  std::atomic<int> messages{0};
};

/// Style 1 of 3: a blocking fetcher. It stands for an HTTP call to the bot's token service;
/// it returns an AccessToken with an explicit expiry (which wins over anything in the token).
credkit::Fetcher make_blocking_fetcher(User& user, std::chrono::milliseconds lifetime) {
  return credkit::Fetcher::blocking([&user, lifetime](const credkit::FetchContext& ctx) {
    const int n = ++user.fetches;
    std::this_thread::sleep_for(80ms);  // the round trip to the token service
    if (ctx.cancelled()) throw credkit::Error(credkit::errc::cancelled, "nobody waits for this token any more");
    std::random_device rd;
    credkit::AccessToken token;
    token.token = "bot-" + user.name + "-" + std::to_string(n) + "-" + std::to_string(rd()) + std::to_string(rd());
    token.expires_on = std::chrono::system_clock::now() + lifetime;
    say("fetch    ", user.name, " #", n, " (reason: ", credkit::to_string(ctx.reason()), ") -> ", token);
    return token;
  });
}

}  // namespace

int main(int argc, char** argv) try {
  int messages = 120;
  std::chrono::milliseconds lifetime = 3000ms;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--messages") {
      messages = std::max(1, std::atoi(argv[i + 1]));
    } else if (arg == "--lifetime-ms") {
      lifetime = std::chrono::milliseconds(std::max(500, std::atoi(argv[i + 1])));
    } else {
      throw std::invalid_argument("unknown option " + arg);
    }
  }

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::promise<void> io_returned;
  auto io_returned_future = io_returned.get_future();
  std::thread io_thread([&] {
    io.run();
    io_returned.set_value();
  });

  // The ACS default minimum validity is 2 min; scaled to the demo's 3 s tokens: 1 s.
  credkit::RefreshPolicy policy;
  policy.min_validity = lifetime / 3;

  std::array<User, 3> users;
  const char* names[] = {"alice", "bob", "carol"};
  for (std::size_t i = 0; i < users.size(); ++i) {
    users[i].name = names[i];
    credkit::TokenCredentialOptions options;
    options.mode = credkit::RefreshMode::on_demand;
    options.policy = policy;
    options.fetcher = make_blocking_fetcher(users[i], lifetime);
    users[i].credential = credkit::TokenCredential::create(io.get_executor(), std::move(options));
  }
  say("bot      ", users.size(), " users, ", messages, " messages on 4 worker threads; tokens live ", lifetime.count(),
      " ms and are not handed out with less than ", policy.min_validity.count(), " ms left");

  // A burst of messages, handled by 4 worker threads; each reply needs the user's token.
  std::atomic<int> next{0};
  std::atomic<int> expired_used{0};
  std::atomic<int> errors{0};
  const auto pace = 45ms;
  auto worker = [&] {
    for (int m; (m = next++) < messages;) {
      std::this_thread::sleep_until(g_start + pace * m);  // messages arrive over time
      User& user = users[static_cast<std::size_t>(m) % users.size()];
      try {
        credkit::TokenHandle token = user.credential->get_token();  // blocks only when a fetch is due
        if (token.expires_on() <= std::chrono::system_clock::now()) expired_used++;
        user.messages++;
      } catch (const credkit::Error& e) {
        errors++;
        say("error    ", user.name, ": ", e.what());
      }
    }
  };
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) workers.emplace_back(worker);
  for (auto& t : workers) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - g_start).count();

  // On-demand credentials schedule nothing: with the work guard gone, io.run() returns
  // although all three credentials are still open.
  work.reset();
  const bool no_timers = io_returned_future.wait_for(2s) == std::future_status::ready;
  say("bot      ", no_timers ? "io_context::run() returned with the credentials still open: no timers"
                             : "io_context still busy 2 s after the burst: something is scheduled");
  for (auto& u : users) u.credential->close();
  if (!no_timers) io.stop();
  io_thread.join();

  // A token serves from arrival until min_validity before expiry, so a user active for T
  // seconds needs about T / (lifetime - min_validity) fetches.
  const double window = std::chrono::duration<double>(lifetime - policy.min_validity).count();
  std::cout << "\nSummary (" << seconds << " s)\n";
  int total_fetches = 0;
  for (auto& u : users) {
    total_fetches += u.fetches;
    std::cout << "  " << u.name << ": " << u.messages << " messages, " << u.fetches << " fetches\n";
  }
  std::cout << "  fetches in all:        " << total_fetches << " for " << messages << " messages (about "
            << static_cast<int>(seconds / window + 1) << " per user expected: one per " << window
            << " s usable window)\n"
            << "  errors:                " << errors << "\n"
            << "  expired tokens used:   " << expired_used << "\n"
            << "  timers left scheduled: " << (no_timers ? "none" : "some") << "\n";
  return (expired_used == 0 && errors == 0 && no_timers) ? 0 : 1;
} catch (const std::exception& e) {
  std::cerr << "stateless_bot: " << e.what() << "\n";
  return 2;
}
