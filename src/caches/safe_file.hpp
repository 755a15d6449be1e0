// credkit detail — the one way the caches open files: no links, no blocking, regular files
// only, bounded reads.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace credkit::detail {

/// An owned file descriptor (closed on destruction).
class SafeFd {
 public:
  SafeFd() = default;
  explicit SafeFd(int fd) noexcept : fd_(fd) {}
  SafeFd(SafeFd&& o) noexcept : fd_(o.release()) {}
  SafeFd& operator=(SafeFd&& o) noexcept;
  SafeFd(const SafeFd&) = delete;
  SafeFd& operator=(const SafeFd&) = delete;
  ~SafeFd();
  int get() const noexcept { return fd_; }
  int release() noexcept {
    const int f = fd_;
    fd_ = -1;
    return f;
  }
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// What a file is for, named in error messages ("token cache file", "token cache lock file").
struct SafeFileRole {
  const char* what;
};

/// The rule every cache file open follows (docs/caches.md, "Limits"):
/// - the final path component is never followed if it is a symbolic link (O_NOFOLLOW; a
///   link, dangling link or link loop is refused, and nothing is created through it);
/// - the open never blocks (O_NONBLOCK, cleared once the file is known to be regular), so a
///   FIFO or a device cannot wedge a cache I/O thread; O_CLOEXEC always;
/// - the opened descriptor must be a regular file (fstat): FIFOs, sockets, directories and
///   devices are refused;
/// - reads are bounded: a file larger than the caller's bound is refused before any byte is
///   read, and at most the bound is ever read (a file growing meanwhile is refused too).
/// Failures throw `Error(errc::cache_io_error)` naming the path and the rule broken, or
/// `Error(errc::cache_corrupt)` for a regular file larger than the bound.

/// Opens `path` read-only; nullopt if it does not exist.
std::optional<SafeFd> open_existing_regular(const std::string& path, SafeFileRole role);

/// Reads the whole of the regular file `fd` (opened by `open_existing_regular`), refusing it
/// (`cache_corrupt`) if it holds more than `max_bytes`.
std::string read_bounded(int fd, const std::string& path, std::size_t max_bytes, SafeFileRole role);

/// Opens (creating with `mode` if absent) `path` read-write: a lock file.
SafeFd open_or_create_regular(const std::string& path, SafeFileRole role, unsigned mode = 0600);

/// Creates the new file `path` write-only (O_EXCL: fails if anything, a link included, is
/// already there): a temp file for an atomic write.
SafeFd create_exclusive(const std::string& path, SafeFileRole role, unsigned mode = 0600);

}  // namespace credkit::detail
