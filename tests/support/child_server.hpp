// Test and benchmark helper: a server program (redis-server, nginx) run as a child process on a
// loopback port for the helper's lifetime. No Asio, no doctest: the benchmarks include it too.
#pragma once

#include "support/loopback_port.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace credkit::test {

class ChildServer {
 public:
  /// Starts `argv` (argv[0] searched in PATH, output discarded) and waits, at most
  /// `start_limit`, until `port` accepts connections on loopback; throws if it does not.
  /// Destruction sends `stop_signal` and reaps the child.
  ChildServer(const std::vector<std::string>& argv, unsigned short port, int stop_signal = SIGTERM,
              std::chrono::milliseconds start_limit = std::chrono::seconds(5))
      : stop_signal_(stop_signal) {
    std::vector<char*> av;
    for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    posix_spawn_file_actions_t quiet;
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&quiet, 2, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawnp(&pid_, av[0], &quiet, nullptr, av.data(), environ);
    posix_spawn_file_actions_destroy(&quiet);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
    const auto end = std::chrono::steady_clock::now() + start_limit;
    while (!loopback_accepts(port)) {
      if (std::chrono::steady_clock::now() >= end) {
        stop();
        throw std::runtime_error(argv[0] + " did not start on port " + std::to_string(port));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;
  ~ChildServer() { stop(); }

 private:
  void stop() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, stop_signal_);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  int stop_signal_;
  pid_t pid_ = -1;
};

}  // namespace credkit::test
