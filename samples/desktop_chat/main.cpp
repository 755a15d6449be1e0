// desktop_chat — one credkit::TokenCredential (proactive) shared by a chat client and a
// calling client. Tokens are short-lived HS256 JWTs minted in-process, so a 30 s run shows
// several proactive refreshes, a failed refresh retried with back-off, and a token revoked
// server-side (401 -> invalidate -> one refresh), while no request ever carries an expired
// token.
//
//   desktop_chat [--duration SECONDS] [--lifetime SECONDS]
//                [--token-url URL [--token-response acs|plain|oauth|web_pubsub]]
//                [--cache DIR [--keychain secret-service|kernel]]
//
// With --token-url, tokens come from that token service over HTTP (credkit::HttpTokenSource)
// instead of the in-process minter; --lifetime must then match the lifetime it issues.
//
// With --cache, the token is kept in an encrypted file in DIR whose key lives in the OS
// keychain (the desktop's Secret Service, or the kernel keyring): a second start within the
// token's life uses the cached token and does not fetch. No keychain: the demo stops with the
// keychain's error; it never falls back to a key in a file.

#include "clients.hpp"
#include "jwt.hpp"
#include "service.hpp"
#include "timeline.hpp"
#include "token_source.hpp"

#include <credkit/caches.hpp>
#include <credkit/credkit.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <future>
#include <iostream>
#include <string>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace desktop_chat;

namespace {

struct Options {
  int duration = 30;
  int lifetime = 12;
  std::string token_url;
  std::string token_response = "acs";
  std::string cache_dir;
  std::string keychain = "secret-service";
};

credkit::HttpTokenResponse response_format(const std::string& name) {
  if (name == "acs") return credkit::HttpTokenResponse::acs();
  if (name == "plain") return credkit::HttpTokenResponse::plain_text();
  if (name == "oauth") return credkit::HttpTokenResponse::oauth();
  if (name == "web_pubsub") return credkit::HttpTokenResponse::web_pubsub();
  throw std::invalid_argument("--token-response must be acs, plain, oauth or web_pubsub");
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto text = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    auto value = [&]() -> int {
      const int v = std::atoi(text().c_str());
      if (v <= 0) throw std::invalid_argument(arg + " must be a positive number of seconds");
      return v;
    };
    if (arg == "--duration") {
      o.duration = value();
    } else if (arg == "--lifetime") {
      o.lifetime = value();
    } else if (arg == "--token-url") {
      o.token_url = text();
    } else if (arg == "--token-response") {
      o.token_response = text();
    } else if (arg == "--cache") {
      o.cache_dir = text();
    } else if (arg == "--keychain") {
      o.keychain = text();
      if (o.keychain != "secret-service" && o.keychain != "kernel")
        throw std::invalid_argument("--keychain must be secret-service or kernel");
    } else if (arg == "--help" || arg == "-h") {
      std::cout << "usage: desktop_chat [--duration SECONDS (default 30)] [--lifetime SECONDS (default 12)]\n"
                   "                    [--token-url URL [--token-response acs|plain|oauth|web_pubsub (default acs)]]\n"
                   "                    [--cache DIR [--keychain secret-service|kernel (default secret-service)]]\n";
      std::exit(0);
    } else {
      throw std::invalid_argument("unknown option " + arg + " (try --help)");
    }
  }
  if (o.lifetime < 6) throw std::invalid_argument("--lifetime must be at least 6 seconds");
  return o;
}

// The ACS defaults (refresh 10 min before expiry, 2 min minimum validity) scaled down to the
// demo's short tokens: refresh when a third of the life is left, never hand out a token with
// less than a sixth left. The fetch timeout scales too (a sixth of the life, at least 2 s): the
// refresh point keeps a lead of min(fetch_timeout, half the time the token is handed out)
// before the token stops being handed out (docs/refresh-semantics.md, R6).
credkit::RefreshPolicy scaled_policy(std::chrono::seconds lifetime) {
  const auto life = std::chrono::duration_cast<std::chrono::milliseconds>(lifetime);
  credkit::RefreshPolicy p;
  p.refresh_before_expiry = life / 3;
  p.min_validity = life / 6;
  p.retry_initial = 1s;  // the defaults: 1 s doubling up to 60 s, full jitter
  p.fetch_timeout = std::max<std::chrono::milliseconds>(life / 6, 2s);
  return p;
}

asio::awaitable<void> calling_loop(CallingClient& calling, std::atomic<bool>& stop) {
  asio::steady_timer pace(co_await asio::this_coro::executor);
  for (int seq = 1; !stop; ++seq) {
    co_await calling.send_keep_alive(seq);
    pace.expires_after(1100ms);
    co_await pace.async_wait(asio::use_awaitable);
  }
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse_args(argc, argv);
  const std::chrono::seconds lifetime(opt.lifetime);

  Timeline timeline;
  Stats stats;
  const bool cached = !opt.cache_dir.empty();
  // With --cache the simulated service keeps its signing key across runs, as a real one does,
  // so a token cached by an earlier run is still accepted.
  auto keys = cached ? std::make_shared<const JwtMinter>(std::vector<unsigned char>(32, 0x5a))
                     : std::make_shared<const JwtMinter>();
  const bool over_http = !opt.token_url.empty();
  SimulatedService service(over_http ? nullptr : keys);

  // The app's own io_context: the credential's timers, events and the coroutine fetcher run
  // on it (through a strand); the calling client's coroutine too.
  asio::io_context io;
  auto work = asio::make_work_guard(io);

  // --cache: an encrypted file whose key is in the OS keychain, with its own I/O thread.
  asio::io_context cache_io;
  auto cache_work = asio::make_work_guard(cache_io);
  std::thread cache_thread([&] { cache_io.run(); });
  struct JoinCacheThread {
    decltype(cache_work)& work;
    std::thread& thread;
    ~JoinCacheThread() {
      work.reset();
      thread.join();
    }
  } join_cache_thread{cache_work, cache_thread};
  std::shared_ptr<credkit::EncryptedFileTokenCache> cache;
  const credkit::TokenCacheKey cache_key("desktop-chat-user", {"chat", "voip"});
  std::optional<credkit::AccessToken> cached_token;
  if (cached) {
    credkit::EncryptedFileTokenCacheOptions co;
    co.path = std::filesystem::path(opt.cache_dir) / "desktop_chat.tokens";
    if (opt.keychain == "kernel") {
      credkit::KernelKeyringKeyOptions where;
      where.application = "credkit-desktop-chat";
      where.keyring = credkit::KernelKeyringKeyOptions::Keyring::user;  // outlives this login session's shell
      co.keys = credkit::load_keychain_keys(where);
    } else {
      credkit::SecretServiceKeyOptions where;
      where.application = "credkit-desktop-chat";
      co.keys = credkit::load_keychain_keys(where);
    }
    co.expiry_margin = scaled_policy(lifetime).min_validity;  // the demo's tokens live seconds, not hours
    const auto co_path = co.path;
    const auto co_copy = co;
    cache = credkit::EncryptedFileTokenCache::create(cache_io.get_executor(), std::move(co));
    try {
      cached_token = cache->async_get(cache_key, asio::use_future).get();
    } catch (const credkit::Error& e) {
      if (e.code() != credkit::errc::cache_wrong_key) throw;
      // The keychain's key changed (a new keyring, a rotation that dropped the old key): the
      // file is unreadable for good. Start afresh; the next token replaces it.
      timeline.print("cache", "the cached tokens cannot be read with the keychain's key; starting a new cache file");
      cache.reset();
      std::filesystem::remove(co_path);
      cache = credkit::EncryptedFileTokenCache::create(cache_io.get_executor(), co_copy);
    }
    const auto min_validity = scaled_policy(lifetime).min_validity;
    if (cached_token && cached_token->expires_on - std::chrono::system_clock::now() > min_validity) {
      timeline.print("cache", "a cached token from an earlier run (key from the ", opt.keychain,
                     " keychain): no fetch at start");
    } else {
      cached_token.reset();
      timeline.print("cache", "no usable cached token (key from the ", opt.keychain, " keychain): fetching");
    }
  }

  credkit::TokenCredentialOptions options;
  options.mode = credkit::RefreshMode::proactive;
  options.policy = scaled_policy(lifetime);
  options.initial_token = cached_token;
  // The only line that knows where tokens come from.
  options.fetcher = over_http ? make_http_fetcher(opt.token_url, response_format(opt.token_response), timeline, stats)
                              : make_minting_fetcher(MintingSource{
                                    .minter = keys, .lifetime = lifetime, .timeline = &timeline, .stats = &stats});
  auto credential = credkit::TokenCredential::create(io.get_executor(), std::move(options));

  if (over_http) timeline.print("demo", "tokens from ", opt.token_url, " (", opt.token_response, " answers)");
  timeline.print("demo", "tokens live ", opt.lifetime, " s; refresh ", opt.lifetime / 3.0,
                 " s before expiry; minimum validity ", opt.lifetime / 6.0, " s; running ", opt.duration, " s");

  // Listeners run on the credential's executor; they only print and count here.
  auto on_will_expire = credential->on_token_will_expire([&](credkit::TokenCredential&, const credkit::TokenEvent& e) {
    stats.will_expire_events++;
    const double left =
        e.token ? std::chrono::duration<double>(e.token.expires_on() - std::chrono::system_clock::now()).count() : 0;
    timeline.print("event", "token_will_expire: token #", e.token ? stats.serial_of(e.token.token()) : 0,
                   " has ", static_cast<int>(left * 10) / 10.0, " s left -> the fetcher runs");
  });
  auto on_refreshed = credential->on_token_refreshed([&](credkit::TokenCredential&, const credkit::TokenEvent& e) {
    if (e.reason != credkit::FetchReason::initial) stats.refreshes++;
    timeline.print("event", "token_refreshed (", credkit::to_string(e.reason), "): token #",
                   stats.serial_of(e.token.token()), " = ", e.token);
  });
  std::atomic<bool> failed_once{false};
  auto on_failed = credential->on_refresh_failed([&](credkit::TokenCredential&, const credkit::TokenEvent& e) {
    std::string retry = "no automatic retry";
    if (e.next_retry) {
      stats.failures_retried++;
      failed_once = true;
      const auto in = std::chrono::duration<double>(*e.next_retry - std::chrono::system_clock::now()).count();
      retry = "retry in " + std::to_string(in).substr(0, 4) + " s (back-off with full jitter)";
    }
    // e.error is a credkit::Error (fetch_failed); its cause() is what the fetcher threw.
    std::exception_ptr cause = e.error;
    try {
      if (e.error) std::rethrow_exception(e.error);
    } catch (const credkit::Error& err) {
      if (err.cause()) cause = err.cause();
    } catch (...) {
    }
    timeline.print("event", "refresh_failed (attempt ", e.attempt, ", ", e.code.message(), "): ",
                   credkit::message_of(cause), e.token ? "; old token still in use; " : "; ", retry);
  });
  auto on_expired = credential->on_token_expired([&](credkit::TokenCredential&, const credkit::TokenEvent& e) {
    stats.expired_events++;
    timeline.print("event", "token_expired: ", e.token, " expired before it was renewed");
  });

  // --cache: every new token is written back (encrypted) for the next start.
  auto on_refreshed_cache = credential->on_token_refreshed([&](credkit::TokenCredential&, const credkit::TokenEvent& e) {
    if (!cache || !e.token) return;
    cache->async_put(cache_key, credkit::AccessToken{e.token.token(), e.token.expires_on()},
                     [&timeline](std::exception_ptr error) {
                       if (error) timeline.print("cache", "could not store the token: ", credkit::message_of(error));
                     });
  });

  // Health transitions only (fresh, refreshing, retrying, below_min_validity, expired): the
  // signal an app shows before the cliff, e.g. "reconnecting..." while retrying.
  auto on_health = credential->on_health_changed([&](credkit::TokenCredential&, const credkit::CredentialHealth& h) {
    using std::chrono::duration_cast;
    using std::chrono::seconds;
    std::string next = "none";
    if (h.next_refresh) {
      const auto in = duration_cast<seconds>(*h.next_refresh - std::chrono::system_clock::now()).count();
      next = (h.next_is_retry ? "retry in " : "refresh in ") + std::to_string(in) + " s";
    }
    timeline.print("health", credkit::to_string(h.state), ": ", duration_cast<seconds>(h.time_left).count(),
                   " s left, ", h.consecutive_failures, " failures, next ", next,
                   h.last_error_code ? ", last error: " + h.last_error_code.message() : std::string());
  });

  std::thread app_thread([&] { io.run(); });

  ChatClient chat("chat", credential, service, timeline, stats);
  CallingClient calling("calling", credential, service, timeline, stats);
  std::atomic<bool> stop{false};

  auto calling_done = asio::co_spawn(io, calling_loop(calling, stop), asio::use_future);
  std::thread chat_thread([&] {
    for (int n = 1; !stop; ++n) {
      chat.send_message("hello " + std::to_string(n));
      std::this_thread::sleep_for(700ms);
    }
  });

  // The admin revokes the current token once, a few seconds after the retried refresh, so
  // both clients get a 401 for it; only the first report triggers a refresh.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(opt.duration);
  std::optional<std::chrono::steady_clock::time_point> revoke_at;
  bool revoked = false;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
    if (!revoke_at && (failed_once || over_http) && stats.refreshes >= 2) revoke_at = std::chrono::steady_clock::now() + lifetime / 4;
    if (!revoked && revoke_at && std::chrono::steady_clock::now() >= *revoke_at) {
      if (auto current = credential->cached_token()) {
        service.revoke(current.token());
        revoked = true;
        timeline.print("admin", "revoked token #", stats.serial_of(current.token()), " server-side");
      }
    }
  }

  stop = true;
  chat_thread.join();
  calling_done.get();
  on_will_expire.reset();
  on_refreshed.reset();
  on_failed.reset();
  on_expired.reset();
  on_refreshed_cache.reset();
  credential->close();  // cancels the timers: with the work guard gone, io.run() returns
  work.reset();
  app_thread.join();
  timeline.print("demo", "credential closed; io_context::run() returned (no timer keeps the process alive)");

  std::cout << "\nSummary\n"
            << "  requests sent:          " << stats.requests_sent << " (" << stats.requests_ok << " ok, "
            << stats.rejected_401 << " rejected with 401, " << stats.requests_failed << " failed)\n"
            << "  token fetches:          " << stats.fetches << "\n"
            << "  refreshes:              " << stats.refreshes << " (" << stats.will_expire_events
            << " proactive will-expire points)\n"
            << "  failures retried:       " << stats.failures_retried << "\n"
            << "  invalidate() reports:   " << stats.invalidations_accepted + stats.invalidations_ignored << " ("
            << stats.invalidations_accepted << " caused a refresh, " << stats.invalidations_ignored << " ignored)\n"
            << "  token_expired events:   " << stats.expired_events << "\n"
            << "  expired tokens sent:    " << stats.expired_tokens_sent << "\n";
  // Fails when a request carried an expired token, or when no request got through at all.
  return (stats.expired_tokens_sent == 0 && stats.requests_ok > 0) ? 0 : 1;
} catch (const std::exception& e) {
  std::cerr << "desktop_chat: " << e.what() << "\n";
  return 2;
}
