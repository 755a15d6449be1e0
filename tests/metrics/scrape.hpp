// Test helpers for /metrics: a real HTTP GET on loopback, promtool's verdict on the body, and
// the exposition read back into series -> value.
#pragma once

#include "support/loopback_port.hpp"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

namespace credkit::metricstest {

/// GET `path` from 127.0.0.1:`port` (HTTP/1.0, each read bounded by 5 s): the body of a 200
/// answer; throws on anything else.
inline std::string http_get(unsigned short port, const std::string& path = "/metrics") {
  const int fd = test::connect_loopback(port);
  if (fd < 0) throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buffer[4096];
  while (true) {
    const auto n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const auto body_at = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.1 200", 0) != 0 && response.rfind("HTTP/1.0 200", 0) != 0)
    throw std::runtime_error("GET " + path + " answered: " + response.substr(0, response.find('\r')));
  if (body_at == std::string::npos) throw std::runtime_error("GET " + path + ": no body");
  return response.substr(body_at + 4);
}

/// What `promtool check metrics` says of `exposition`: its exit status and everything it
/// printed (lint warnings included).
struct PromtoolVerdict {
  int status = -1;
  std::string output;
};

inline PromtoolVerdict promtool_check(const std::string& exposition) {
  char path[] = "/tmp/credkit-metrics-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  ::close(fd);
  std::ofstream(path, std::ios::binary) << exposition;
  const std::string command = std::string(CREDKIT_PROMTOOL) + " check metrics < " + path + " 2>&1";
  PromtoolVerdict verdict;
  if (FILE* p = ::popen(command.c_str(), "r")) {
    char buffer[512];
    while (std::fgets(buffer, sizeof buffer, p)) verdict.output += buffer;
    const int status = ::pclose(p);
    verdict.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  ::unlink(path);
  return verdict;
}

/// The samples of an exposition: `name{labels}` as serialized -> value (comments skipped).
inline std::map<std::string, double> parse_samples(const std::string& exposition) {
  std::map<std::string, double> samples;
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

/// The value of `series` (as serialized, e.g. `name{a="b"}`); fails the test when it is absent.
inline double value_of(const std::map<std::string, double>& samples, const std::string& series) {
  auto it = samples.find(series);
  INFO("series " << series);
  REQUIRE(it != samples.end());
  return it->second;
}

}  // namespace credkit::metricstest
