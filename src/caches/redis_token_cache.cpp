#include <credkit/caches/redis_token_cache.hpp>
#include <credkit/core/error.hpp>
#include <credkit/core/log.hpp>

#include "caches/io_pool.hpp"
#include "caches/record_crypto.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <hiredis/hiredis.h>

#include <atomic>
#include <mutex>
#include <random>

namespace credkit {

namespace {

using detail::Keyring;
using steady = std::chrono::steady_clock;

constexpr const char* release_script =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms.count() / 1000);
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms.count() % 1000) * 1000);
  return tv;
}

bool is_unavailable(const std::exception_ptr& e) {
  return error_code_of(e) == make_error_code(errc::cache_unavailable);
}

}  // namespace

struct RedisTokenCache::Impl : std::enable_shared_from_this<Impl> {
  struct Flight;
  RedisTokenCacheOptions options;
  std::string endpoint;  // host:port, for messages
  std::unique_ptr<Keyring> keyring;

  std::mutex pool_mutex;
  std::vector<redisContext*> idle;

  std::atomic<std::int64_t> down_until{0};  // steady ns; Redis skipped until then
  std::atomic<bool> outage{false};
  std::atomic<bool> warned_decrypt{false};

  ~Impl() {
    for (auto* c : idle) redisFree(c);
  }

  // ---- connections -------------------------------------------------------------------
  redisContext* connect() {
    const auto tv = to_timeval(options.connect_timeout);
    redisContext* c = redisConnectWithTimeout(options.host.c_str(), options.port, tv);
    if (!c) throw_error(errc::cache_unavailable, "cannot connect to Redis at " + endpoint + ": out of memory");
    if (c->err) {
      std::string why = c->errstr;
      redisFree(c);
      throw_error(errc::cache_unavailable, "cannot connect to Redis at " + endpoint + ": " + why);
    }
    redisSetTimeout(c, to_timeval(options.command_timeout));
    try {
      if (!options.password.empty()) {
        std::vector<std::string> argv{"AUTH"};
        if (!options.username.empty()) argv.push_back(options.username);
        argv.push_back(options.password);
        auto r = run(c, argv);
        if (r->type == REDIS_REPLY_ERROR)
          throw_error(errc::cache_unavailable, "Redis at " + endpoint + " refused AUTH (" +
                                                   std::string(r->str, r->len) + "); check username and password");
      }
      if (options.database != 0) {
        auto r = run(c, {"SELECT", std::to_string(options.database)});
        if (r->type == REDIS_REPLY_ERROR)
          throw_error(errc::cache_unavailable, "Redis at " + endpoint + " refused SELECT " +
                                                   std::to_string(options.database) + " (" +
                                                   std::string(r->str, r->len) + ")");
      }
    } catch (...) {
      redisFree(c);
      throw;
    }
    return c;
  }

  /// One command on `c`; throws `cache_unavailable` on a transport failure or timeout.
  Reply run(redisContext* c, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (!r)
      throw_error(errc::cache_unavailable,
                  "Redis at " + endpoint + " failed a command: " + (c->errstr[0] ? std::string(c->errstr) : "I/O error"));
    return Reply(r);
  }

  /// Runs one command on a pooled connection, with the outage bookkeeping.
  Reply command(const std::vector<std::string>& args) {
    const auto now = steady::now().time_since_epoch().count();
    if (now < down_until.load(std::memory_order_acquire))
      throw_error(errc::cache_unavailable, "Redis at " + endpoint + " is unavailable (recent failure; retrying soon)");
    redisContext* c = nullptr;
    {
      std::lock_guard lock(pool_mutex);
      if (!idle.empty()) {
        c = idle.back();
        idle.pop_back();
      }
    }
    try {
      if (!c) c = connect();
      auto r = run(c, args);
      {
        std::lock_guard lock(pool_mutex);
        if (idle.size() < options.pool_size) {
          idle.push_back(c);
          c = nullptr;
        }
      }
      if (c) redisFree(c);
      if (outage.exchange(false, std::memory_order_acq_rel))
        log(LogLevel::warning, "Redis token cache at " + endpoint + " is reachable again; using it");
      return r;
    } catch (const Error& e) {
      if (c) redisFree(c);  // a failed connection is never reused
      down_until.store(steady::now().time_since_epoch().count() +
                           std::chrono::duration_cast<steady::duration>(options.retry_after_failure).count(),
                       std::memory_order_release);
      if (!outage.exchange(true, std::memory_order_acq_rel))
        log(LogLevel::warning, std::string(e.what()) +
                                   "; the Redis token cache is bypassed (tokens are fetched directly) until it answers");
      throw;
    }
  }

  std::string token_name(const std::string& key) const {
    return options.key_prefix + "tok:" + detail::to_hex(Keyring::lookup(keyring->primary(), key));
  }
  std::string lock_name(const std::string& key) const {
    return options.key_prefix + "lock:" + detail::to_hex(Keyring::lookup(keyring->primary(), key));
  }

  // ---- blocking operations (run on the cache I/O threads) ------------------------------
  std::optional<AccessToken> get(const std::string& key) {
    auto r = command({"GET", token_name(key)});
    if (r->type == REDIS_REPLY_NIL) return std::nullopt;
    if (r->type != REDIS_REPLY_STRING)
      throw_error(errc::cache_unavailable, "Redis at " + endpoint + " answered GET with an unexpected reply" +
                                               (r->type == REDIS_REPLY_ERROR ? ": " + std::string(r->str, r->len) : ""));
    return keyring->decrypt(key, std::string_view(r->str, r->len));
  }

  /// As `get`, but an undecryptable value is a miss (with one warning), not an error.
  std::optional<AccessToken> get_lenient(const std::string& key) {
    try {
      return get(key);
    } catch (const Error& e) {
      if (e.code() == make_error_code(errc::cache_unavailable)) throw;
      if (!warned_decrypt.exchange(true)) log(LogLevel::warning, std::string("Redis token cache: ") + e.what());
      return std::nullopt;
    }
  }

  void put(const std::string& key, const AccessToken& value, std::optional<std::chrono::milliseconds> ttl) {
    const auto now = options.clock->now();
    auto px = std::chrono::duration_cast<std::chrono::milliseconds>(value.expires_on - options.expiry_margin - now);
    if (ttl && *ttl < px) px = *ttl;
    if (px.count() <= 0) return;  // inside the margin: nothing worth storing
    auto r = command({"SET", token_name(key), keyring->encrypt(key, value), "PX", std::to_string(px.count())});
    if (r->type == REDIS_REPLY_ERROR)
      throw_error(errc::cache_unavailable, "Redis at " + endpoint + " refused SET (" + std::string(r->str, r->len) + ")");
  }

  void erase(const std::string& key) {
    auto r = command({"DEL", token_name(key)});
    if (r->type == REDIS_REPLY_ERROR)
      throw_error(errc::cache_unavailable, "Redis at " + endpoint + " refused DEL (" + std::string(r->str, r->len) + ")");
  }

  bool try_lock(const std::string& key, const std::string& owner) {
    auto r = command({"SET", lock_name(key), owner, "NX", "PX", std::to_string(options.lock_ttl.count())});
    if (r->type == REDIS_REPLY_ERROR)
      throw_error(errc::cache_unavailable, "Redis at " + endpoint + " refused SET NX (" + std::string(r->str, r->len) + ")");
    return r->type == REDIS_REPLY_STATUS;  // "OK"; nil when someone else holds it
  }

  void unlock(const std::string& key, const std::string& owner) noexcept {
    try {
      command({"EVAL", release_script, "1", lock_name(key), owner});
    } catch (...) {
      // The lock expires by itself after lock_ttl.
    }
  }
};

/// One distributed single-flight for one key (see the class comment).
struct RedisTokenCache::Impl::Flight : std::enable_shared_from_this<Flight> {
  std::shared_ptr<RedisTokenCache::Impl> impl;
  std::shared_ptr<TokenCache> keep_alive;
  std::string key;
  std::chrono::milliseconds min_validity;
  TokenCache::UpstreamFetch fetch;
  TokenCache::FetchDone done;
  std::string owner;
  steady::time_point give_up;
  std::shared_ptr<boost::asio::steady_timer> timer;
  std::minstd_rand rng{std::random_device{}()};

  bool fresh(const std::optional<AccessToken>& t) const {
    return t && t->expires_on - impl->options.clock->now() > min_validity;
  }

  void start() {
    try {
      auto cached = impl->get_lenient(key);
      if (fresh(cached)) return done(nullptr, std::move(*cached));
      if (impl->try_lock(key, owner)) return lead();
      schedule_poll();
    } catch (...) {
      fall_back(std::current_exception());
    }
  }

  void lead() {
    try {
      // The token may have landed between our GET and the lock.
      auto cached = impl->get_lenient(key);
      if (fresh(cached)) {
        impl->unlock(key, owner);
        return done(nullptr, std::move(*cached));
      }
    } catch (...) {
      impl->unlock(key, owner);
      return fall_back(std::current_exception());
    }
    auto self = shared_from_this();
    run_fetch([self](std::exception_ptr e, AccessToken token) {
      boost::asio::post(detail::cache_io_executor(), [self, e = std::move(e), token = std::move(token)]() mutable {
        if (!e) {
          try {
            self->impl->put(self->key, token, std::nullopt);
          } catch (...) {
            log(LogLevel::debug, "Redis token cache: could not store the fetched token (" +
                                     message_of(std::current_exception()) + ")");
          }
        }
        self->impl->unlock(self->key, self->owner);
        self->done(std::move(e), std::move(token));
      });
    });
  }

  void schedule_poll() {
    if (steady::now() >= give_up) {
      log(LogLevel::warning, "Redis token cache: waited " + std::to_string(impl->options.wait_timeout.count()) +
                                 " ms for another instance's fetch; fetching directly");
      return run_fetch(done);
    }
    const auto base = impl->options.poll_interval.count();
    std::uniform_int_distribution<long long> jitter(base * 3 / 4, base * 5 / 4 + 1);
    timer->expires_after(std::chrono::milliseconds(jitter(rng)));
    timer->async_wait([self = shared_from_this()](boost::system::error_code) { self->poll(); });
  }

  void poll() {
    try {
      auto cached = impl->get_lenient(key);
      if (fresh(cached)) return done(nullptr, std::move(*cached));
      // The holder released (failed fetch) or died and its lock expired: take over.
      if (impl->try_lock(key, owner)) return lead();
      schedule_poll();
    } catch (...) {
      fall_back(std::current_exception());
    }
  }

  void fall_back(std::exception_ptr why) {
    if (!is_unavailable(why))
      log(LogLevel::warning, "Redis token cache failed (" + message_of(why) + "); fetching the token directly");
    run_fetch(done);
  }

  void run_fetch(TokenCache::FetchDone on_done) {
    try {
      fetch(std::move(on_done));
    } catch (...) {
      done(std::current_exception(), {});
    }
  }
};

std::shared_ptr<RedisTokenCache> RedisTokenCache::create(executor_type executor, RedisTokenCacheOptions options) {
  auto positive = [](std::chrono::milliseconds d, const char* name) {
    if (d.count() <= 0) throw_error(errc::invalid_argument, std::string("RedisTokenCacheOptions::") + name + " must be > 0");
  };
  if (options.tls)
    throw_error(errc::invalid_argument,
                "RedisTokenCacheOptions::tls: this build's hiredis (0.14) has no TLS support (no hiredis_ssl); "
                "reach Redis through a local TLS tunnel such as stunnel, or build credkit against hiredis >= 1.0");
  if (options.keys.empty())
    throw_error(errc::invalid_argument, "RedisTokenCacheOptions::keys is empty: give at least one key");
  if (options.host.empty()) throw_error(errc::invalid_argument, "RedisTokenCacheOptions::host is empty");
  if (options.port <= 0 || options.port > 65535) throw_error(errc::invalid_argument, "RedisTokenCacheOptions::port is out of range");
  positive(options.connect_timeout, "connect_timeout");
  positive(options.command_timeout, "command_timeout");
  positive(options.lock_ttl, "lock_ttl");
  positive(options.poll_interval, "poll_interval");
  positive(options.wait_timeout, "wait_timeout");
  if (options.retry_after_failure.count() < 0)
    throw_error(errc::invalid_argument, "RedisTokenCacheOptions::retry_after_failure must not be negative");
  return std::shared_ptr<RedisTokenCache>(new RedisTokenCache(std::move(executor), std::move(options)));
}

RedisTokenCache::RedisTokenCache(executor_type executor, RedisTokenCacheOptions options)
    : TokenCache(std::move(executor), options.clock, options.coalesce_in_process), impl_(std::make_shared<Impl>()) {
  if (!options.clock) options.clock = Clock::system();
  const std::string salt = options.kdf_salt.empty() ? options.key_prefix : options.kdf_salt;
  impl_->keyring = std::make_unique<Keyring>(
      options.keys, std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(salt.data()), salt.size()));
  impl_->endpoint = options.host + ":" + std::to_string(options.port);
  impl_->options = std::move(options);
}

RedisTokenCache::~RedisTokenCache() = default;

void RedisTokenCache::do_get(std::string key, std::function<void(std::exception_ptr, std::optional<AccessToken>)> done) {
  boost::asio::post(detail::cache_io_executor(), [impl = impl_, key = std::move(key), done = std::move(done)] {
    std::optional<AccessToken> token;
    std::exception_ptr failure;
    try {
      token = impl->get(key);
    } catch (...) {
      failure = std::current_exception();
    }
    // Completed outside the catch block: the handler may run on another thread at once.
    if (failure) return done(std::move(failure), std::nullopt);
    done(nullptr, std::move(token));
  });
}

void RedisTokenCache::do_put(std::string key, AccessToken value, std::optional<std::chrono::milliseconds> ttl,
                             std::function<void(std::exception_ptr)> done) {
  boost::asio::post(detail::cache_io_executor(),
                    [impl = impl_, key = std::move(key), value = std::move(value), ttl, done = std::move(done)] {
                      std::exception_ptr failure;
                      try {
                        impl->put(key, value, ttl);
                      } catch (...) {
                        failure = std::current_exception();
                      }
                      // Completed outside the catch block: the handler may run on another thread at once.
                      if (failure) return done(std::move(failure));
                      done(nullptr);
                    });
}

void RedisTokenCache::do_erase(std::string key, std::function<void(std::exception_ptr)> done) {
  boost::asio::post(detail::cache_io_executor(), [impl = impl_, key = std::move(key), done = std::move(done)] {
    std::exception_ptr failure;
    try {
      impl->erase(key);
    } catch (...) {
      failure = std::current_exception();
    }
    // Completed outside the catch block: the handler may run on another thread at once.
    if (failure) return done(std::move(failure));
    done(nullptr);
  });
}

void RedisTokenCache::do_get_or_fetch(std::string key, std::chrono::milliseconds min_validity, UpstreamFetch fetch,
                                      FetchDone done) {
  auto flight = std::make_shared<Impl::Flight>();
  flight->impl = impl_;
  flight->keep_alive = shared_from_this();
  flight->key = std::move(key);
  flight->min_validity = min_validity;
  flight->fetch = std::move(fetch);
  flight->done = std::move(done);
  unsigned char owner[16];
  detail::random_bytes(owner);
  flight->owner = detail::to_hex(owner);
  flight->give_up = steady::now() + impl_->options.wait_timeout;
  flight->timer = std::make_shared<boost::asio::steady_timer>(detail::cache_io_executor());
  boost::asio::post(detail::cache_io_executor(), [flight] { flight->start(); });
}

}  // namespace credkit
