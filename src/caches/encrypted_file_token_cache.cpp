#include <credkit/caches/encrypted_file_token_cache.hpp>
#include <credkit/core/error.hpp>
#include <credkit/core/log.hpp>

#include "caches/cache_time.hpp"
#include "caches/io_pool.hpp"
#include "caches/record_crypto.hpp"
#include "caches/safe_file.hpp"
#include "core/metrics_name.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace credkit {

namespace {

using detail::Keyring;
using detail::Lookup;

constexpr char magic[4] = {'C', 'K', 'T', 'C'};
constexpr unsigned char file_version = 1;
constexpr std::size_t header_size = 4 + 1 + 3 + 16 + 4;
constexpr std::size_t entry_fixed = 16 + 8 + 4;
constexpr std::size_t max_record = 1 << 20;

using Salt = std::array<unsigned char, 16>;

struct FileEntry {
  Lookup lookup{};
  std::int64_t stale_ms = 0;
  std::string record;
};

struct FileImage {
  Salt salt{};
  std::vector<FileEntry> entries;
  std::unordered_map<std::string, std::size_t> index;  // lookup bytes -> entry

  void reindex() {
    index.clear();
    for (std::size_t i = 0; i < entries.size(); ++i)
      index[std::string(reinterpret_cast<const char*>(entries[i].lookup.data()), 16)] = i;
  }
};

std::uint64_t read_be(const unsigned char* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

void write_be(std::string& out, std::uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  throw_error(errc::cache_corrupt, "token cache file " + path + " is damaged (" + what +
                                       "); the next write replaces it, or delete it");
}

FileImage parse(std::string_view data, const std::string& path) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  if (data.size() < header_size) corrupt(path, "truncated header");
  if (std::memcmp(p, magic, 4) != 0) corrupt(path, "not a credkit token cache file");
  if (p[4] != file_version) corrupt(path, "unknown format version " + std::to_string(p[4]));
  FileImage img;
  std::memcpy(img.salt.data(), p + 8, 16);
  const auto count = read_be(p + 24, 4);
  std::size_t pos = header_size;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (data.size() - pos < entry_fixed) corrupt(path, "truncated entry");
    FileEntry e;
    std::memcpy(e.lookup.data(), p + pos, 16);
    e.stale_ms = static_cast<std::int64_t>(read_be(p + pos + 16, 8));
    const auto len = read_be(p + pos + 24, 4);
    pos += entry_fixed;
    if (len < Keyring::record_overhead || len > max_record) corrupt(path, "bad record length");
    if (data.size() - pos < len) corrupt(path, "truncated record");
    e.record.assign(data.data() + pos, len);
    pos += len;
    img.entries.push_back(std::move(e));
  }
  if (pos != data.size()) corrupt(path, "unexpected bytes after the last entry");
  img.reindex();
  return img;
}

std::string serialize(const FileImage& img) {
  std::string out(magic, 4);
  out += static_cast<char>(file_version);
  out.append(3, '\0');
  out.append(reinterpret_cast<const char*>(img.salt.data()), 16);
  write_be(out, img.entries.size(), 4);
  for (const auto& e : img.entries) {
    out.append(reinterpret_cast<const char*>(e.lookup.data()), 16);
    write_be(out, static_cast<std::uint64_t>(e.stale_ms), 8);
    write_be(out, e.record.size(), 4);
    out += e.record;
  }
  return out;
}

[[noreturn]] void io_error(const std::string& what, int err) {
  throw_error(errc::cache_io_error, what + ": " + std::strerror(err));
}

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

constexpr detail::SafeFileRole cache_file_role{"token cache file"};
constexpr detail::SafeFileRole lock_file_role{"token cache lock file"};
constexpr detail::SafeFileRole temp_file_role{"token cache temp file"};
constexpr std::size_t max_file_bytes = EncryptedFileTokenCacheOptions::max_file_bytes;

/// An exclusive flock on the lock file, bounded by a timeout.
class FileLock {
 public:
  FileLock(const std::string& path, std::chrono::milliseconds timeout)
      : fd_(detail::open_or_create_regular(path, lock_file_role, 0600).release()) {
    // milliseconds::max() saturates to the steady clock's end of time: no limit.
    const auto give_up = detail::add_sat(std::chrono::steady_clock::now(), timeout);
    auto pause = std::chrono::milliseconds(1);
    while (::flock(fd_.fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      if (errno != EWOULDBLOCK) io_error("cannot lock " + path, errno);
      if (std::chrono::steady_clock::now() >= give_up)
        throw_error(errc::cache_io_error, "timed out waiting for the token cache lock " + path +
                                              " (another writer holds it); raise lock_timeout or check for a stuck process");
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(20));
    }
  }
  ~FileLock() { ::flock(fd_.fd, LOCK_UN); }

 private:
  Fd fd_;
};

void write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const auto n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      io_error("cannot write " + path, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void write_atomically(const std::filesystem::path& path, const std::string& data) {
  unsigned char rnd[6];
  detail::random_bytes(rnd);
  const std::string target = path.string();
  const std::string tmp = target + ".tmp." + std::to_string(::getpid()) + "." + detail::to_hex(rnd);
  {
    Fd fd(detail::create_exclusive(tmp, temp_file_role, 0600).release());
    try {
      if (::fchmod(fd.fd, 0600) != 0) io_error("cannot set mode 0600 on " + tmp, errno);
      write_all(fd.fd, data, tmp);
      if (::fsync(fd.fd) != 0) io_error("cannot fsync " + tmp, errno);
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    io_error("cannot rename " + tmp + " to " + target, err);
  }
  auto dir = path.parent_path();
  if (dir.empty()) dir = ".";
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC));
  if (dfd.fd >= 0) ::fsync(dfd.fd);  // best effort: some filesystems refuse fsync on directories
}

std::int64_t to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

struct EncryptedFileTokenCache::Impl {
  EncryptedFileTokenCacheOptions options;
  // This cache's share of the cache I/O threads: one at a time, so a file whose I/O wedges (a
  // hung network mount) holds one thread, never the pool other caches need.
  std::shared_ptr<detail::IoLane> lane = detail::IoLane::create(1);
  std::string path;
  std::string lock_path;

  std::mutex mutex;  // guards the members below
  Salt keyring_salt{};
  std::shared_ptr<const Keyring> keyring;
  struct Snapshot {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    struct Mtime {
      std::int64_t sec = 0;
      std::int64_t nsec = 0;
      bool operator==(const Mtime&) const = default;
    } mtime;
    std::shared_ptr<const FileImage> image;
  } snapshot;
  bool warned_mode = false;
  std::mutex write_mutex;  // serializes this process's writers before the flock

  std::shared_ptr<const Keyring> keyring_for(const Salt& salt) {
    {
      std::lock_guard lock(mutex);
      if (keyring && keyring_salt == salt) return keyring;
    }
    auto kr = std::make_shared<const Keyring>(options.keys, salt);  // PBKDF2 outside the lock
    std::lock_guard lock(mutex);
    keyring = kr;
    keyring_salt = salt;
    return kr;
  }

  /// The current file, parsed (cached while the file's identity is unchanged), or null.
  std::shared_ptr<const FileImage> load() {
    // No links, no blocking, regular files only (detail::open_existing_regular).
    auto opened = detail::open_existing_regular(path, cache_file_role);
    if (!opened) return nullptr;
    Fd fd(opened->release());
    struct stat st {};
    if (::fstat(fd.fd, &st) != 0) io_error("cannot stat " + path, errno);
    // Compared, never combined: anyone may set a file's mtime to any time (touch -d).
    const Snapshot::Mtime mtime{static_cast<std::int64_t>(st.st_mtim.tv_sec), static_cast<std::int64_t>(st.st_mtim.tv_nsec)};
    {
      std::lock_guard lock(mutex);
      if ((st.st_mode & 077) && !warned_mode) {
        warned_mode = true;
        log(LogLevel::warning, "token cache file " + path + " is accessible by other users; expected mode 0600");
      }
      if (snapshot.image && snapshot.dev == st.st_dev && snapshot.ino == st.st_ino && snapshot.size == st.st_size &&
          snapshot.mtime == mtime)
        return snapshot.image;
    }
    const std::string data = detail::read_bounded(fd.fd, path, max_file_bytes, cache_file_role);
    auto image = std::make_shared<const FileImage>(parse(data, path));
    std::lock_guard lock(mutex);
    snapshot = Snapshot{st.st_dev, st.st_ino, st.st_size, mtime, image};
    return image;
  }

  std::optional<AccessToken> get(const std::string& key) {
    auto image = load();
    if (!image) return std::nullopt;
    auto kr = keyring_for(image->salt);
    const auto now_ms = to_ms(options.clock->now());
    for (const auto& k : kr->keys()) {
      const auto lk = Keyring::lookup(k, key);
      auto it = image->index.find(std::string(reinterpret_cast<const char*>(lk.data()), 16));
      if (it == image->index.end()) continue;
      const auto& e = image->entries[it->second];
      if (std::memcmp(e.record.data() + 1, k.id.data(), 8) != 0) continue;
      if (e.stale_ms <= now_ms) return std::nullopt;
      auto token = kr->decrypt(key, e.record);
      if (to_ms(detail::sub_sat(token.expires_on, options.expiry_margin)) <= now_ms) return std::nullopt;
      return token;
    }
    if (!image->entries.empty()) {
      bool any_known = false;
      for (const auto& e : image->entries) {
        detail::KeyId id;
        std::memcpy(id.data(), e.record.data() + 1, 8);
        if (kr->find(id)) {
          any_known = true;
          break;
        }
      }
      if (!any_known)
        throw_error(errc::cache_wrong_key, "token cache file " + path +
                                               " holds no entry under the keys this cache was given (wrong key or "
                                               "passphrase?); its entries cannot be read");
    }
    return std::nullopt;
  }

  /// Read-modify-write under the lock: removes `key`'s entries and expired ones, then lets
  /// `add` append.
  void modify(const std::string& key, const std::optional<AccessToken>& value,
              std::optional<std::chrono::milliseconds> ttl) {
    std::lock_guard local(write_mutex);
    FileLock lock(lock_path, options.lock_timeout);
    FileImage image;
    std::shared_ptr<const FileImage> current;
    try {
      current = load();
    } catch (const Error& e) {
      if (e.code() != make_error_code(errc::cache_corrupt)) throw;
      log(LogLevel::warning, std::string(e.what()) + " — replacing it with a new file");
    }
    if (current) {
      image = *current;
    } else {
      detail::random_bytes(image.salt);
    }
    auto kr = keyring_for(image.salt);
    const auto now = options.clock->now();
    const auto now_ms = to_ms(now);
    std::vector<std::pair<Lookup, detail::KeyId>> mine;
    for (const auto& k : kr->keys()) mine.emplace_back(Keyring::lookup(k, key), k.id);
    std::erase_if(image.entries, [&](const FileEntry& e) {
      if (e.stale_ms <= now_ms) return true;
      for (const auto& [lk, id] : mine)
        if (e.lookup == lk && std::memcmp(e.record.data() + 1, id.data(), 8) == 0) return true;
      return false;
    });
    if (value) {
      const auto stale = detail::stale_point(value->expires_on, options.expiry_margin, now, ttl);
      if (stale > now) image.entries.push_back(FileEntry{mine.front().first, to_ms(stale), kr->encrypt(key, *value)});
    }
    const auto file_bytes = [&] {
      std::size_t n = header_size;
      for (const auto& e : image.entries) n += entry_fixed + e.record.size();
      return n;
    };
    if (image.entries.size() > options.max_entries || file_bytes() > max_file_bytes) {
      std::stable_sort(image.entries.begin(), image.entries.end(),
                       [](const FileEntry& a, const FileEntry& b) { return a.stale_ms > b.stale_ms; });
      if (image.entries.size() > options.max_entries) image.entries.resize(options.max_entries);
      // Never write a file this cache (or another process's) would refuse to read.
      for (std::size_t n = file_bytes(); n > max_file_bytes && !image.entries.empty(); image.entries.pop_back())
        n -= entry_fixed + image.entries.back().record.size();
    }
    write_atomically(options.path, serialize(image));
  }
};

void EncryptedFileTokenCacheOptions::validate() const {
  constexpr const char* self = "EncryptedFileTokenCacheOptions";
  if (path.empty()) throw_error(errc::invalid_argument, "EncryptedFileTokenCacheOptions::path is empty: name the cache file");
  if (keys.empty())
    throw_error(errc::invalid_argument, "EncryptedFileTokenCacheOptions::keys is empty: give at least one key");
  if (max_entries == 0) detail::reject_option(self, "max_entries", ">= 1", "0");
  detail::require_non_negative(expiry_margin, self, "expiry_margin", "nothing is stored");
  detail::require_non_negative(lock_timeout, self, "lock_timeout", "no limit");
  detail::check_metrics_name(metrics_name, "EncryptedFileTokenCacheOptions::metrics_name");
}

std::shared_ptr<EncryptedFileTokenCache> EncryptedFileTokenCache::create(executor_type executor,
                                                                         EncryptedFileTokenCacheOptions options) {
  options.validate();
  return std::shared_ptr<EncryptedFileTokenCache>(new EncryptedFileTokenCache(std::move(executor), std::move(options)));
}

EncryptedFileTokenCache::EncryptedFileTokenCache(executor_type executor, EncryptedFileTokenCacheOptions options)
    : TokenCache(std::move(executor), options.clock, options.coalesce_in_process, options.metrics,
                 options.metrics_name),
      impl_(std::make_shared<Impl>()) {
  if (!options.clock) options.clock = Clock::system();
  impl_->path = options.path.string();
  impl_->lock_path = impl_->path + ".lock";
  impl_->options = std::move(options);
}

EncryptedFileTokenCache::~EncryptedFileTokenCache() = default;

void EncryptedFileTokenCache::do_get(std::string key, GetDone done) {
  detail::run_blocking(*impl_->lane, [impl = impl_, key = std::move(key)] { return impl->get(key); }, std::move(done));
}

void EncryptedFileTokenCache::do_put(std::string key, AccessToken value, std::optional<std::chrono::milliseconds> ttl,
                                     WriteDone done) {
  detail::run_blocking(
      *impl_->lane,
      [impl = impl_, key = std::move(key), value = std::move(value), ttl] { impl->modify(key, value, ttl); },
      std::move(done));
}

void EncryptedFileTokenCache::do_erase(std::string key, WriteDone done) {
  detail::run_blocking(*impl_->lane,
                       [impl = impl_, key = std::move(key)] { impl->modify(key, std::nullopt, std::nullopt); },
                       std::move(done));
}

}  // namespace credkit
