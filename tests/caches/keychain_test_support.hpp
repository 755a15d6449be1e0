// Test helpers for the keychain keys: child processes with a chosen environment, a private
// D-Bus session bus (no service activation), a real gnome-keyring-daemon on it whose files live
// in a temporary directory, and the rotation check both backends share.
#pragma once

#include <credkit/caches/encrypted_file_token_cache.hpp>
#include <credkit/caches/keychain_key.hpp>
#include <credkit/credkit.hpp>

#include "core/crypto.hpp"
#include "support/temp_files.hpp"

#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>
#include <gio/gio.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace credkit::keychaintest {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

/// The environment of a child: this process's, with `set` replacing (or adding) entries and
/// the names in `unset` removed.
struct ChildEnvironment {
  std::map<std::string, std::string> set;
  std::vector<std::string> unset;

  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (char** e = environ; *e; ++e) {
      const std::string entry(*e);
      const std::string name = entry.substr(0, entry.find('='));
      bool drop = set.count(name) > 0;
      for (const auto& u : unset) drop = drop || u == name;
      if (!drop) out.push_back(entry);
    }
    for (const auto& [name, value] : set) out.push_back(name + "=" + value);
    return out;
  }
};

/// A started child process: its pid, its stdin (write end) and stdout (read end), or -1.
struct SpawnedChild {
  pid_t pid = -1;
  int stdin_fd = -1;
  int stdout_fd = -1;
};

/// Starts `argv` with `environment`; stderr goes to /dev/null; stdin and stdout are pipes when
/// asked. The child is killed when this process dies (PR_SET_PDEATHSIG), so a test run that
/// aborts (a sanitizer, a crash) leaves no daemon behind.
inline SpawnedChild spawn_child(const std::vector<std::string>& argv, const ChildEnvironment& environment,
                                bool pipe_stdin, bool pipe_stdout) {
  int in[2] = {-1, -1}, out[2] = {-1, -1};
  if ((pipe_stdin && ::pipe2(in, O_CLOEXEC) != 0) || (pipe_stdout && ::pipe2(out, O_CLOEXEC) != 0))
    throw std::runtime_error("pipe2 failed");
  std::vector<char*> args, envs;
  const std::vector<std::string> entries = environment.entries();
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : entries) envs.push_back(const_cast<char*>(e.c_str()));
  envs.push_back(nullptr);
  const pid_t parent = ::getpid();
  SpawnedChild child;
  child.pid = ::fork();
  if (child.pid == 0) {  // only async-signal-safe calls until exec
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int null = ::open("/dev/null", O_RDWR);
    ::dup2(pipe_stdin ? in[0] : null, 0);
    ::dup2(pipe_stdout ? out[1] : null, 1);
    ::dup2(null, 2);
    ::execvpe(args[0], args.data(), envs.data());
    ::_exit(127);
  }
  if (pipe_stdin) ::close(in[0]);
  if (pipe_stdout) ::close(out[1]);
  if (child.pid < 0) throw std::runtime_error("fork failed for " + argv[0]);
  child.stdin_fd = in[1];
  child.stdout_fd = out[0];
  return child;
}

/// Everything `fd` delivers until EOF, waiting at most until `deadline`.
inline std::string read_until_eof(int fd, SteadyClock::time_point deadline) {
  std::string text;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) throw std::runtime_error("a child's output did not end in time");
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return text;
    text.append(buf, static_cast<std::size_t>(n));
  }
}

/// Sends SIGTERM (SIGKILL after 2 s) and reaps `pid`.
inline void stop_child(pid_t pid) {
  ::kill(pid, SIGCONT);
  ::kill(pid, SIGTERM);
  const auto deadline = SteadyClock::now() + 2s;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (SteadyClock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return;
    }
    std::this_thread::sleep_for(5ms);
  }
}

/// Path of this test binary, for re-executing it as a child.
inline std::string self_exe() {
  char buf[4096];
  const auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

/// What a child role (keychain_child_main.cpp) printed, and how long it ran.
struct ChildOutcome {
  std::string output;
  std::chrono::milliseconds took{};
};

/// Runs this binary as the child `role` (CREDKIT_KEYCHAIN_CHILD) with `environment`.
inline ChildOutcome run_child_role(const std::string& role, ChildEnvironment environment) {
  environment.set["CREDKIT_KEYCHAIN_CHILD"] = role;
  const auto start = SteadyClock::now();
  const SpawnedChild child = spawn_child({self_exe()}, environment, false, true);
  std::string output;
  try {
    output = read_until_eof(child.stdout_fd, start + 20s);
  } catch (...) {
    ::close(child.stdout_fd);
    stop_child(child.pid);
    throw;
  }
  ::close(child.stdout_fd);
  int status = 0;
  ::waitpid(child.pid, &status, 0);
  return {output, std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start)};
}

/// A name no other run of the tests uses (the user keyring outlives the process).
inline std::string unique_application(const std::string& base) {
  return base + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(SteadyClock::now().time_since_epoch().count() % 1000000007);
}

/// The key's SHA-256 in hex: how a child reports a key without printing it.
inline std::string fingerprint(const CacheEncryptionKey& key) {
  const std::string digest =
      detail::sha256({reinterpret_cast<const char*>(key.material().data()), key.material().size()});
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  for (const unsigned char byte : digest) {
    hex += digits[byte >> 4];
    hex += digits[byte & 0xf];
  }
  return hex;
}

/// The child's report of a key list: "keys <fingerprint>..." (keychain_child_main.cpp).
inline std::string keys_report(const std::vector<CacheEncryptionKey>& keys) {
  std::string line = "keys";
  for (const auto& key : keys) line += " " + fingerprint(key);
  return line;
}

inline bool same_material(const CacheEncryptionKey& a, const CacheEncryptionKey& b) {
  return std::equal(a.material().begin(), a.material().end(), b.material().begin(), b.material().end());
}

/// The credkit code `call` failed with (the test fails if it did not), and its message.
inline std::pair<errc, std::string> failure_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return {static_cast<errc>(e.code().value()), e.what()};
  }
  FAIL("the call did not fail");
  return {};
}

/// Both `load_keychain_keys(options)` and `rotate_keychain_key(options)` fail with `code` and a
/// message containing `text`, within 2 s.
template <typename Options>
void check_load_and_rotate_fail(const Options& options, errc code, const std::string& text) {
  for (const bool rotate : {false, true}) {
    CAPTURE(rotate);
    const auto start = SteadyClock::now();
    const auto [failed_with, message] = failure_of([&] {
      if (rotate)
        rotate_keychain_key(options);
      else
        load_keychain_keys(options);
    });
    CHECK(failed_with == code);
    CHECK(message.find(text) != std::string::npos);
    CHECK(SteadyClock::now() - start < 2s);
  }
}

/// A private session bus: a dbus-daemon without service activation (nothing is started behind
/// the tests' back, and the real keyring is never touched), in a temporary directory. Started
/// once per process, before anything uses GIO, and exported as DBUS_SESSION_BUS_ADDRESS.
class PrivateSessionBus {
 public:
  static PrivateSessionBus& instance() {
    static PrivateSessionBus bus;
    return bus;
  }
  const std::string& address() const { return address_; }

 private:
  PrivateSessionBus() {
    const auto config = directory_.path / "bus.conf";
    test::write_file(config,
                     "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                     " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                     "<busconfig><type>session</type><listen>unix:dir=" + directory_.path.string() +
                         "</listen><auth>EXTERNAL</auth><policy context=\"default\"><allow send_destination=\"*\" "
                         "eavesdrop=\"true\"/><allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>\n");
    const SpawnedChild child = spawn_child(
        {"dbus-daemon", "--config-file=" + config.string(), "--print-address=1", "--nofork", "--nopidfile"}, {},
        false, true);
    pid_ = child.pid;
    // The address is the first line the daemon prints; it keeps stdout open, so read a line.
    const auto deadline = SteadyClock::now() + 10s;
    while (address_.find('\n') == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
      pollfd p{child.stdout_fd, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) < 0) break;
      char buf[512];
      const ssize_t n = ::read(child.stdout_fd, buf, sizeof buf);
      if (n <= 0) break;
      address_.append(buf, static_cast<std::size_t>(n));
    }
    ::close(child.stdout_fd);
    if (address_.find('\n') == std::string::npos) throw std::runtime_error("dbus-daemon printed no address");
    address_.erase(address_.find('\n'));
    ::setenv("DBUS_SESSION_BUS_ADDRESS", address_.c_str(), 1);
  }
  ~PrivateSessionBus() { stop_child(pid_); }

  test::TempDir directory_;
  pid_t pid_ = -1;
  std::string address_;
};

/// One D-Bus method call on the shared session connection, null on any error.
inline GVariant* bus_call(const char* destination, const char* path, const char* interface, const char* method,
                          GVariant* arguments, const char* reply_type) {
  GDBusConnection* bus = g_bus_get_sync(G_BUS_TYPE_SESSION, nullptr, nullptr);
  if (!bus) return nullptr;
  g_dbus_connection_set_exit_on_close(bus, FALSE);  // the tests stop the bus at exit
  GVariant* reply = g_dbus_connection_call_sync(bus, destination, path, interface, method, arguments,
                                                G_VARIANT_TYPE(reply_type), G_DBUS_CALL_FLAGS_NONE, 1000, nullptr,
                                                nullptr);
  g_object_unref(bus);
  return reply;
}

/// A real gnome-keyring-daemon (Secret Service only) on the private bus, its login keyring
/// created and unlocked with a fixed password, its files under `data` (kept across restarts).
class GnomeKeyring {
 public:
  explicit GnomeKeyring(const std::filesystem::path& data) {
    PrivateSessionBus::instance();
    for (const char* sub : {"home", "data", "config", "cache", "runtime"})
      std::filesystem::create_directories(data / sub);
    std::filesystem::permissions(data / "runtime", std::filesystem::perms::owner_all);
    ChildEnvironment environment;
    environment.set = {{"HOME", (data / "home").string()},
                       {"XDG_DATA_HOME", (data / "data").string()},
                       {"XDG_CONFIG_HOME", (data / "config").string()},
                       {"XDG_CACHE_HOME", (data / "cache").string()},
                       {"XDG_RUNTIME_DIR", (data / "runtime").string()}};
    environment.unset = {"GNOME_KEYRING_CONTROL", "DISPLAY"};
    const SpawnedChild child = spawn_child(
        {"gnome-keyring-daemon", "--unlock", "--components=secrets", "--foreground"}, environment, true, false);
    pid_ = child.pid;
    static constexpr char password[] = "credkit-test-keyring-password";
    const bool written = ::write(child.stdin_fd, password, sizeof password - 1) == sizeof password - 1;
    ::close(child.stdin_fd);
    if (!written || !wait_until_ready(SteadyClock::now() + 10s)) {
      stop_child(pid_);
      throw std::runtime_error("gnome-keyring-daemon did not come up with an unlocked default collection");
    }
  }
  ~GnomeKeyring() { stop(); }
  GnomeKeyring(const GnomeKeyring&) = delete;
  GnomeKeyring& operator=(const GnomeKeyring&) = delete;

  /// Freezes the daemon (SIGSTOP): it keeps its bus name but answers nothing.
  void freeze() { ::kill(pid_, SIGSTOP); }
  void stop() {
    if (pid_ > 0) stop_child(pid_);
    pid_ = -1;
  }

 private:
  /// Ready when the daemon owns org.freedesktop.secrets and the default alias names a collection.
  static bool wait_until_ready(SteadyClock::time_point deadline) {
    while (SteadyClock::now() < deadline) {
      if (GVariant* alias = bus_call("org.freedesktop.secrets", "/org/freedesktop/secrets",
                                     "org.freedesktop.Secret.Service", "ReadAlias", g_variant_new("(s)", "default"),
                                     "(o)")) {
        const char* path = nullptr;
        g_variant_get(alias, "(&o)", &path);
        const bool named = std::string(path) != "/";
        g_variant_unref(alias);
        if (named) return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  pid_t pid_ = -1;
};

/// Rotation end to end, for either backend: a file cache written under the key `load` gives is
/// still read after `rotate`, and one written under the rotated list is unreadable with the old.
inline void check_rotation_against_file_cache(const std::function<std::vector<CacheEncryptionKey>()>& load,
                                              const std::function<std::vector<CacheEncryptionKey>()>& rotate) {
  test::TempDir directory;
  boost::asio::thread_pool pool(1);
  const auto cache_on = [&](const std::string& file, std::vector<CacheEncryptionKey> keys) {
    EncryptedFileTokenCacheOptions options;
    options.path = directory.path / file;
    options.keys = std::move(keys);
    return EncryptedFileTokenCache::create(pool.get_executor(), std::move(options));
  };
  const auto expiry = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now() + 1h);
  const TokenCacheKey user("user-1");
  const AccessToken token{"token-before-rotation-0123456789", expiry};

  const std::vector<CacheEncryptionKey> before = load();
  REQUIRE(before.size() == 1);
  cache_on("old.cache", before)->async_put(user, token, boost::asio::use_future).get();

  const std::vector<CacheEncryptionKey> after = rotate();
  REQUIRE(after.size() == 2);
  CHECK_FALSE(same_material(after[0], before[0]));
  CHECK(same_material(after[1], before[0]));
  const std::vector<CacheEncryptionKey> reloaded = load();
  REQUIRE(reloaded.size() == 2);
  CHECK(same_material(reloaded[0], after[0]));
  CHECK(same_material(reloaded[1], after[1]));

  const auto read_back = cache_on("old.cache", reloaded)->async_get(user, boost::asio::use_future).get();
  REQUIRE(read_back.has_value());
  CHECK(read_back->token == token.token);

  cache_on("new.cache", reloaded)->async_put(user, token, boost::asio::use_future).get();
  const auto [code, message] =
      failure_of([&] { cache_on("new.cache", before)->async_get(user, boost::asio::use_future).get(); });
  CHECK(code == errc::cache_wrong_key);
  pool.join();
}

}  // namespace credkit::keychaintest
