#include "caches/safe_file.hpp"

#include <credkit/core/error.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace credkit::detail {

SafeFd& SafeFd::operator=(SafeFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

SafeFd::~SafeFd() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

std::string errno_text(int e) {
  char buf[128];
  return ::strerror_r(e, buf, sizeof buf);
}

const char* kind_of(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISLNK(m)) return "a symbolic link";
  return "not a regular file";
}

[[noreturn]] void refuse(const std::string& path, SafeFileRole role, const std::string& why) {
  throw_error(errc::cache_io_error, std::string(role.what) + " " + path + " " + why);
}

/// Maps an open(2) failure to the rule it reveals.
[[noreturn]] void open_failed(const std::string& path, SafeFileRole role, int err) {
  switch (err) {
    case ELOOP:
      refuse(path, role,
             "is a symbolic link (or a link loop): credkit never follows links at a cache path; "
             "replace it with a regular file or point the cache at the real path");
    case EISDIR:
      refuse(path, role, "is a directory: credkit needs a regular file there; remove it or choose another path");
    case ENXIO:
    case ENODEV:
    case EOPNOTSUPP:
      refuse(path, role,
             "is a socket, FIFO or device: credkit needs a regular file there; remove it or choose another path");
    default:
      refuse(path, role, "cannot be opened: " + errno_text(err));
  }
}

/// Requires `fd` to be a regular file, then makes it blocking again (regular files never
/// block; the flag only kept the open itself from waiting).
void require_regular(int fd, const std::string& path, SafeFileRole role) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) refuse(path, role, "cannot be inspected (fstat): " + errno_text(errno));
  if (!S_ISREG(st.st_mode))
    refuse(path, role, std::string("is ") + kind_of(st.st_mode) +
                           ", not a regular file: credkit only reads and writes regular files at a cache path; "
                           "remove it or choose another path");
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
    refuse(path, role, "cannot be made blocking (fcntl): " + errno_text(errno));
}

int open_retry(const char* path, int flags, unsigned mode) {
  while (true) {
    const int fd = ::open(path, flags, static_cast<mode_t>(mode));
    if (fd >= 0 || errno != EINTR) return fd;
  }
}

constexpr int kSafeFlags = O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;

}  // namespace

std::optional<SafeFd> open_existing_regular(const std::string& path, SafeFileRole role) {
  SafeFd fd(open_retry(path.c_str(), O_RDONLY | kSafeFlags, 0));
  if (!fd) {
    const int err = errno;
    if (err == ENOENT) return std::nullopt;
    open_failed(path, role, err);
  }
  require_regular(fd.get(), path, role);
  return fd;
}

std::string read_bounded(int fd, const std::string& path, std::size_t max_bytes, SafeFileRole role) {
  const auto too_large = [&] {
    throw_error(errc::cache_corrupt, std::string(role.what) + " " + path + " is larger than " +
                                         std::to_string(max_bytes) +
                                         " bytes, the most credkit reads from a cache file; it is not a cache file "
                                         "credkit wrote (the next write replaces it, or delete it)");
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) refuse(path, role, "cannot be inspected (fstat): " + errno_text(errno));
  if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) > max_bytes) too_large();
  // One byte more than the bound tells a file that grew since fstat from one that did not.
  std::string data(static_cast<std::size_t>(st.st_size) + 1, '\0');
  std::size_t got = 0;
  while (true) {
    if (got == data.size()) {
      if (data.size() > max_bytes) too_large();
      data.resize(std::min(max_bytes + 1, data.size() * 2));
    }
    const auto n = ::read(fd, data.data() + got, data.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      refuse(path, role, "cannot be read: " + errno_text(errno));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > max_bytes) too_large();
  data.resize(got);
  return data;
}

SafeFd open_or_create_regular(const std::string& path, SafeFileRole role, unsigned mode) {
  SafeFd fd(open_retry(path.c_str(), O_RDWR | O_CREAT | kSafeFlags, mode));
  if (!fd) open_failed(path, role, errno);
  require_regular(fd.get(), path, role);
  return fd;
}

SafeFd create_exclusive(const std::string& path, SafeFileRole role, unsigned mode) {
  SafeFd fd(open_retry(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | kSafeFlags, mode));
  if (!fd) {
    const int err = errno;
    if (err == EEXIST) refuse(path, role, "already exists (a file or link in the way of a new temp file)");
    open_failed(path, role, err);
  }
  require_regular(fd.get(), path, role);
  return fd;
}

}  // namespace credkit::detail
