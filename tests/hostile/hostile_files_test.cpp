// Hostile files (issue 12, class 5): every kind of file a hostile local user can put at the
// encrypted file cache's path or at its lock path, times every operation. Each call must
// complete (a 10 s watchdog fails the test instead of hanging), with the right error, without
// following a link (a link's target is untouched, a dangling link's target never created) and
// without reading more than EncryptedFileTokenCacheOptions::max_file_bytes. Plus: a cache
// wedged on a FIFO (or on blocking I/O) never stalls healthy caches sharing the I/O threads.
#include <credkit/caches/encrypted_file_token_cache.hpp>

#include "caches/cache_test_support.hpp"
#include "caches/io_pool.hpp"
#include "support/temp_files.hpp"

#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <sstream>

using namespace credkit;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr auto watchdog = 10s;  // far above any normal call; a hang fails the test instead
constexpr std::size_t max_file = EncryptedFileTokenCacheOptions::max_file_bytes;

using cachetest::key_of;
using test::read_file;
using test::TempDir;

void sparse_file(const fs::path& p, off_t size) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, size) == 0);
  ::close(fd);
}

/// What a variant plants at the path under attack.
enum class Kind {
  empty,          // regular, 0 bytes
  at_max,         // regular, exactly max_file_bytes (sparse zeros)
  over_max,       // regular, max_file_bytes + 1 (sparse)
  gib,            // regular, sparse 1 GiB
  link_regular,   // symlink to a regular file outside the cache's names
  link_dangling,  // symlink to a name that does not exist
  link_loop,      // symlink to itself
  fifo,
  unix_socket,
  directory,
  link_dev_zero,  // symlink to /dev/zero (a character device)
};
constexpr Kind all_kinds[] = {Kind::empty,         Kind::at_max,    Kind::over_max,    Kind::gib,
                              Kind::link_regular,  Kind::link_dangling, Kind::link_loop, Kind::fifo,
                              Kind::unix_socket,   Kind::directory,  Kind::link_dev_zero};

const char* name_of(Kind k) {
  switch (k) {
    case Kind::empty: return "empty file";
    case Kind::at_max: return "file of max_file_bytes";
    case Kind::over_max: return "file of max_file_bytes+1";
    case Kind::gib: return "sparse 1 GiB file";
    case Kind::link_regular: return "symlink to a regular file";
    case Kind::link_dangling: return "dangling symlink";
    case Kind::link_loop: return "symlink loop";
    case Kind::fifo: return "FIFO";
    case Kind::unix_socket: return "UNIX socket";
    case Kind::directory: return "directory";
    case Kind::link_dev_zero: return "symlink to /dev/zero";
  }
  return "?";
}

bool is_regular_kind(Kind k) { return k == Kind::empty || k == Kind::at_max || k == Kind::over_max || k == Kind::gib; }

struct Planted {
  fs::path link_target;      // for links: what they point at
  std::string target_bytes;  // link_regular: the target's content before the call
  int socket_fd = -1;
  ~Planted() {
    if (socket_fd >= 0) ::close(socket_fd);
  }
};

void plant(Kind kind, const fs::path& at, Planted& p) {
  const std::string victim = "victim file: must never be read, written or created through a link\n";
  switch (kind) {
    case Kind::empty: sparse_file(at, 0); break;
    case Kind::at_max: sparse_file(at, static_cast<off_t>(max_file)); break;
    case Kind::over_max: sparse_file(at, static_cast<off_t>(max_file) + 1); break;
    case Kind::gib: sparse_file(at, off_t{1} << 30); break;
    case Kind::link_regular:
      p.link_target = at.parent_path() / "victim.txt";
      { std::ofstream(p.link_target, std::ios::binary) << victim; }
      p.target_bytes = victim;
      fs::create_symlink(p.link_target, at);
      break;
    case Kind::link_dangling:
      p.link_target = at.parent_path() / "not-yet-there";
      fs::create_symlink(p.link_target, at);
      break;
    case Kind::link_loop: fs::create_symlink(at, at); break;
    case Kind::fifo: REQUIRE(::mkfifo(at.c_str(), 0600) == 0); break;
    case Kind::unix_socket: {
      p.socket_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      REQUIRE(at.native().size() < sizeof a.sun_path);
      std::strcpy(a.sun_path, at.c_str());
      REQUIRE(::bind(p.socket_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
      REQUIRE(::listen(p.socket_fd, 1) == 0);
      break;
    }
    case Kind::directory: fs::create_directory(at); break;
    case Kind::link_dev_zero:
      p.link_target = "/dev/zero";
      fs::create_symlink("/dev/zero", at);
      break;
  }
}

enum class Op { get, put, erase };
constexpr Op all_ops[] = {Op::get, Op::put, Op::erase};
const char* name_of(Op op) { return op == Op::get ? "get" : op == Op::put ? "put" : "erase"; }

struct Outcome {
  bool completed = false;
  std::optional<errc> error;  // nullopt: success
  std::string message;
  std::chrono::milliseconds elapsed{};
};

/// Runs one operation with the watchdog; never blocks the test for longer than `watchdog`.
Outcome run(TokenCache& cache, Op op) {
  const TokenCacheKey k("alice@example.com", {"chat"});
  const AccessToken t{"tok-hostile-files-test-token-0123456789abcdef",
                      std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now() + 1h)};
  Outcome o;
  const auto start = std::chrono::steady_clock::now();
  auto finish = [&](auto fut) {
    if (fut.wait_for(watchdog) != std::future_status::ready) return;
    o.completed = true;
    o.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    try {
      fut.get();
    } catch (const Error& e) {
      o.error = static_cast<errc>(e.code().value());
      o.message = e.what();
    }
  };
  switch (op) {
    case Op::get: finish(cache.async_get(k, boost::asio::use_future)); break;
    case Op::put: finish(cache.async_put(k, t, boost::asio::use_future)); break;
    case Op::erase: finish(cache.async_erase(k, boost::asio::use_future)); break;
  }
  return o;
}

struct Env {
  boost::asio::thread_pool pool{1};
  ~Env() { pool.join(); }
  std::shared_ptr<EncryptedFileTokenCache> make(const fs::path& path) {
    EncryptedFileTokenCacheOptions o;
    o.path = path;
    o.keys = {key_of(7)};
    o.lock_timeout = 2s;
    return EncryptedFileTokenCache::create(pool.get_executor(), o);
  }
};

std::string errc_name(std::optional<errc> e) {
  return e ? std::to_string(static_cast<int>(*e)) + " (" + make_error_code(*e).message() + ")" : "success";
}

}  // namespace

TEST_CASE("hostile files: every file kind at the cache path and at the lock path x get/put/erase") {
  int variants = 0;
  for (const bool at_lock : {false, true}) {
    for (const Kind kind : all_kinds) {
      for (const Op op : all_ops) {
        ++variants;
        TempDir dir;
        Env env;
        const fs::path cache_path = dir.path / "tokens.bin";
        const fs::path attacked = at_lock ? fs::path(cache_path.string() + ".lock") : cache_path;
        Planted planted;
        plant(kind, attacked, planted);
        const auto before = fs::symlink_status(attacked).type();
        auto cache = env.make(cache_path);

        const Outcome o = run(*cache, op);
        const std::string context_text = [&] { std::ostringstream os; os << (at_lock ? "lock path" : "cache path") << ": " << name_of(kind) << ", " << name_of(op) << " -> "
                                                   << errc_name(o.error) << " " << o.message; return os.str(); }();
        INFO(context_text);  // eager: INFO keeps references, temporaries would dangle
        REQUIRE_MESSAGE(o.completed, "the call did not complete within the 10 s watchdog (wedged)");

        // The expected result.
        if (!at_lock) {
          if (is_regular_kind(kind)) {
            if (op == Op::get) {
              CHECK(o.error == errc::cache_corrupt);  // never a valid cache file
              if (kind == Kind::over_max || kind == Kind::gib) {
                CHECK(o.message.find("larger than " + std::to_string(max_file)) != std::string::npos);
                CHECK(o.elapsed < 2s);  // refused by size, not read
                CHECK(fs::file_size(attacked) > max_file);  // a read leaves the file alone
              }
            } else {
              CHECK(!o.error);  // a write replaces a damaged regular file with a valid one
              CHECK(fs::file_size(attacked) < 4096);
            }
          } else {
            CHECK(o.error == errc::cache_io_error);
            // Names the file (its path, which credkit's error scrubber may redact) and the rule.
            CHECK(o.message.find("token cache file ") != std::string::npos);
            CHECK(o.message.find("credkit") != std::string::npos);
            CHECK(fs::symlink_status(attacked).type() == before);            // never replaced
          }
        } else {
          if (op == Op::get) {
            CHECK(!o.error);  // reads never touch the lock file: a miss
          } else if (is_regular_kind(kind)) {
            CHECK(!o.error);  // a regular lock file of any size is locked, never read
            CHECK(fs::file_size(attacked) ==
                  (kind == Kind::empty ? 0 : kind == Kind::at_max ? max_file
                                         : kind == Kind::over_max ? max_file + 1
                                                                  : std::uintmax_t{1} << 30));
          } else {
            CHECK(o.error == errc::cache_io_error);
            CHECK(o.message.find("token cache lock file ") != std::string::npos);
            CHECK(o.message.find("credkit") != std::string::npos);
            CHECK(fs::symlink_status(attacked).type() == before);
            CHECK(!fs::exists(cache_path));  // nothing written without the lock
          }
        }
        // Links are never followed: the target is untouched, a dangling one stays dangling.
        if (kind == Kind::link_regular) CHECK(read_file(planted.link_target) == planted.target_bytes);
        if (kind == Kind::link_dangling) CHECK(!fs::exists(fs::symlink_status(planted.link_target)));
        if (kind == Kind::link_dangling || kind == Kind::link_regular || kind == Kind::link_loop ||
            kind == Kind::link_dev_zero)
          CHECK(fs::is_symlink(attacked));
        // The error text names the rule, never file contents.
        CHECK(o.message.find("victim file") == std::string::npos);
        // No stray temp files left behind.
        for (const auto& e : fs::directory_iterator(dir.path))
          CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
      }
    }
  }
  MESSAGE("hostile file variants tried: " << variants << " (2 paths x " << std::size(all_kinds) << " kinds x "
                                          << std::size(all_ops) << " operations)");
  CHECK(variants == 2 * 11 * 3);
}

TEST_CASE("hostile files: the cache path set to a character device itself (/dev/zero, /dev/null), get") {
  // Reads only: a write would need <path>.lock next to the device.
  int variants = 0;
  for (const char* dev : {"/dev/zero", "/dev/null"}) {
    ++variants;
    Env env;
    auto cache = env.make(dev);
    const Outcome o = run(*cache, Op::get);
    const std::string context_text = [&] { std::ostringstream os; os << dev << " -> " << errc_name(o.error) << " " << o.message; return os.str(); }();
    INFO(context_text);  // eager: INFO keeps references, temporaries would dangle
    REQUIRE(o.completed);
    CHECK(o.error == errc::cache_io_error);
    CHECK(o.message.find("not a regular file") != std::string::npos);
  }
  MESSAGE("device variants tried: " << variants);
}

TEST_CASE("hostile files: a FIFO-path cache hammered concurrently never stalls healthy caches") {
  TempDir dir;
  Env env;
  const fs::path fifo = dir.path / "wedge.bin";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto wedged = env.make(fifo);
  constexpr int wedge_calls = 16;  // 4x the cache I/O threads
  constexpr int healthy = 6;
  const TokenCacheKey k("bob");
  std::vector<std::future<std::optional<AccessToken>>> wedge_futures;
  for (int i = 0; i < wedge_calls; ++i) wedge_futures.push_back(wedged->async_get(k, boost::asio::use_future));

  std::vector<std::shared_ptr<EncryptedFileTokenCache>> caches;
  for (int i = 0; i < healthy; ++i) caches.push_back(env.make(dir.path / ("healthy-" + std::to_string(i) + ".bin")));
  const AccessToken t{"tok-healthy-cache-token-0123456789abcdefghij",
                      std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now() + 1h)};
  for (auto& c : caches) {
    auto put = c->async_put(k, t, boost::asio::use_future);
    REQUIRE_MESSAGE(put.wait_for(watchdog) == std::future_status::ready, "a healthy cache was stalled");
    put.get();
    auto got = c->async_get(k, boost::asio::use_future);
    REQUIRE_MESSAGE(got.wait_for(watchdog) == std::future_status::ready, "a healthy cache was stalled");
    CHECK(got.get() == t);
  }
  for (auto& f : wedge_futures) {
    REQUIRE_MESSAGE(f.wait_for(watchdog) == std::future_status::ready, "a get on the FIFO path hung");
    try {
      f.get();
      FAIL("a get on a FIFO path succeeded");
    } catch (const Error& e) {
      CHECK(e.code() == make_error_code(errc::cache_io_error));
    }
  }
  MESSAGE("FIFO wedge attempt: " << wedge_calls << " calls on the FIFO cache vs " << healthy << " healthy caches");
}

TEST_CASE("hostile files: a lane whose jobs block holds at most its share of the cache I/O threads") {
  // Blocking I/O that no open flag can prevent (a hung network mount): simulated with jobs
  // that wait on a promise. Each wedged lane holds one thread; other lanes keep running.
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::vector<std::shared_ptr<detail::IoLane>> wedged;
  const std::size_t wedged_lanes = detail::cache_io_threads - 1;  // file caches: 1 thread each
  for (std::size_t i = 0; i < wedged_lanes; ++i) {
    wedged.push_back(detail::IoLane::create(1));
    for (int j = 0; j < 8; ++j) detail::post_on(*wedged.back(), [gate] { gate.wait(); });
  }
  int variants = 0;
  for (int i = 0; i < 8; ++i) {
    ++variants;
    auto lane = detail::IoLane::create(1);
    std::promise<int> done;
    auto f = done.get_future();
    detail::post_on(*lane, [&done, i] { done.set_value(i); });
    REQUIRE_MESSAGE(f.wait_for(watchdog) == std::future_status::ready, "a healthy lane was stalled");
    CHECK(f.get() == i);
  }
  release.set_value();
  // Every wedged job then runs.
  std::promise<void> last;
  detail::post_on(*wedged.front(), [&last] { last.set_value(); });
  REQUIRE(last.get_future().wait_for(watchdog) == std::future_status::ready);
  MESSAGE("lane isolation: " << wedged_lanes << " wedged lanes x 8 jobs vs " << variants << " healthy lanes");
}
