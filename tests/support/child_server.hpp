// Test and benchmark helper: a server program (redis-server, nginx) run as a child process on a
// loopback port for the helper's lifetime. No Asio, no doctest: the benchmarks include it too.
#pragma once

#include "support/loopback_port.hpp"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace credkit::test {

/// The program `name` names: itself if it holds a '/', else the first executable of that name
/// in PATH ("" if none).
inline std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = ::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (std::size_t start = 0; start <= dirs.size();) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::filesystem::path candidate = std::filesystem::path(dirs.substr(start, end - start)) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return {};
}

/// Starts `argv` (argv[0] searched in PATH) with stdin, and unless `keep_output` stdout and
/// stderr, on /dev/null; returns its pid, or throws if it cannot be executed.
/// The child gets SIGKILL when the thread that started it ends, so a test killed by its
/// runner leaves no server behind (Linux ties the parent-death signal to the starting thread:
/// start children from a thread that outlives them, as a test body does).
inline pid_t spawn_child(const std::vector<std::string>& argv, bool keep_output = false) {
  const std::string program = find_program(argv.at(0));
  if (program.empty()) throw std::runtime_error("cannot start " + argv[0] + ": not found in PATH");
  std::vector<char*> av;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  // The child writes its exec error here; the pipe closes on a successful exec.
  int exec_error[2];
  if (null_fd < 0 || ::pipe2(exec_error, O_CLOEXEC) != 0) {
    if (null_fd >= 0) ::close(null_fd);
    throw std::runtime_error("cannot start " + argv[0] + ": no descriptors");
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec: the parent may have other threads.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent ended before prctl took effect
    for (int fd = 0; fd <= (keep_output ? 0 : 2); ++fd) ::dup2(null_fd, fd);
    ::execv(program.c_str(), av.data());
    const int e = errno;
    (void)!::write(exec_error[1], &e, sizeof e);
    ::_exit(127);
  }
  ::close(exec_error[1]);
  ::close(null_fd);
  if (pid < 0) {
    ::close(exec_error[0]);
    throw std::runtime_error("cannot start " + argv[0] + ": fork failed");
  }
  int e = 0;
  ssize_t n;
  while ((n = ::read(exec_error[0], &e, sizeof e)) < 0 && errno == EINTR) {
  }
  ::close(exec_error[0]);
  if (n > 0) {
    ::waitpid(pid, nullptr, 0);
    throw std::runtime_error("cannot start " + program + ": " + std::strerror(e));
  }
  return pid;
}

class ChildServer {
 public:
  /// Tag: start without waiting for the port, so several servers start at once and are then
  /// awaited one by one with wait_until_accepting.
  struct NoWait {};

  /// Starts `argv` (argv[0] searched in PATH, output discarded) and waits, at most
  /// `start_limit`, until `port` accepts connections on loopback; throws if it does not, or
  /// at once if the program exits first (its port taken, a bad option).
  /// Destruction sends `stop_signal` and reaps the child.
  ChildServer(const std::vector<std::string>& argv, unsigned short port, int stop_signal = SIGTERM,
              std::chrono::milliseconds start_limit = std::chrono::seconds(5))
      : ChildServer(argv, NoWait{}, stop_signal) {
    wait_until_accepting(port, start_limit);
  }
  /// Starts `argv` as above without waiting for it to listen.
  ChildServer(const std::vector<std::string>& argv, NoWait, int stop_signal = SIGTERM)
      : stop_signal_(stop_signal), name_(argv.at(0)), pid_(spawn_child(argv)) {}

  /// Waits, at most `limit`, until `port` accepts connections on loopback; throws if it does
  /// not (the child stopped), or at once if the child exits first.
  void wait_until_accepting(unsigned short port, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!loopback_accepts(port)) {
      int status = 0;
      if (pid_ <= 0 || ::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error(name_ + " exited (status " + std::to_string(status) + ") before port " +
                                 std::to_string(port) + " accepted");
      }
      if (std::chrono::steady_clock::now() >= end) {
        stop();
        throw std::runtime_error(name_ + " did not start on port " + std::to_string(port));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;
  ~ChildServer() { stop(); }

  /// The child's process id (-1 once stopped).
  pid_t pid() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0; }

  /// Sends `sig` to the child (SIGSTOP, SIGCONT...) without reaping it.
  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  /// Ends the child now: sends the stop signal and reaps it. Later calls do nothing.
  void stop() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);  // a stopped child acts on SIGTERM only once continued
    ::kill(pid_, stop_signal_);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  int stop_signal_;
  std::string name_;
  pid_t pid_ = -1;
};

}  // namespace credkit::test
