// Test helper: scratch files. A private temporary directory removed with everything in it,
// and whole-file reads and writes for the tests that inspect or damage what lands on disk.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>

namespace credkit::test {

/// A fresh directory under /tmp (mode 0700, from mkdtemp), removed on destruction.
struct TempDir {
  std::filesystem::path path;

  TempDir() {
    char name[] = "/tmp/credkit-test-XXXXXX";
    if (!::mkdtemp(name)) throw std::runtime_error("mkdtemp failed");
    path = name;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

/// Every byte of the file at `p` ("" if it cannot be read).
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

/// Replaces the file at `p` with `data`.
inline void write_file(const std::filesystem::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

}  // namespace credkit::test
