#include <credkit/caches/redis_token_cache.hpp>
#include <credkit/core/error.hpp>
#include <credkit/core/log.hpp>

#include "core/completion.hpp"
#include "caches/cache_time.hpp"
#include "caches/cache_metrics.hpp"
#include "caches/io_pool.hpp"
#include "caches/record_crypto.hpp"
#include "caches/redis_connection.hpp"
#include "caches/redis_flight.hpp"
#include "caches/redis_outage.hpp"
#include "caches/redis_router.hpp"
#include "caches/redis_subscriber.hpp"
#include "caches/redis_tls.hpp"
#include "core/metrics_name.hpp"
#include "core/secret_scrubber.hpp"


#include <array>
#include <atomic>
#include <initializer_list>
#include <span>
#include <mutex>
#include <cstring>
#include <string_view>
#include <unordered_map>

namespace credkit {

namespace {

using detail::Keyring;

constexpr const char* release_script =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

// The leader's last step in one round trip (the waiters' hand-off waits on it): store the
// fetched record (ARGV[1], PX ARGV[2]; none when ARGV[2] is 0), release the lock (KEYS[2]) if
// it is still ours (ARGV[3]), and announce the key's lookup id (ARGV[5]) on the push channel
// (ARGV[4]; none when empty). When ARGV[6] is '1' the stored record rides in the announcement
// ("<id> <record>"): a waiter then has the token without a GET. KEYS share a hash tag: one
// slot, one node.
constexpr const char* finish_script =
    "if ARGV[2] ~= '0' then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) end "
    "if redis.call('get', KEYS[2]) == ARGV[3] then redis.call('del', KEYS[2]) end "
    "if ARGV[4] ~= '' then "
    "if ARGV[6] == '1' and ARGV[2] ~= '0' then redis.call('publish', ARGV[4], ARGV[5] .. ' ' .. ARGV[1]) "
    "else redis.call('publish', ARGV[4], ARGV[5]) end end "
    "return 1";

// The largest record that rides in a push (finish_script): every subscribed instance receives
// every announcement, so a larger record (a token of several KiB) is announced by id only and
// the waiters GET it.
constexpr std::size_t max_pushed_record = 4096;

using detail::RedisConnection;
using Reply = detail::RedisReply;
using Args = std::initializer_list<std::string_view>;
using ArgSpan = std::span<const std::string_view>;

/// Failures that mean "Redis cannot be used now": the cache-aside path falls back quietly
/// (the outage itself is logged once).
bool is_unavailable(const std::exception_ptr& e) {
  const auto code = error_code_of(e);
  return code == make_error_code(errc::cache_unavailable) || code == make_error_code(errc::tls_error);
}

/// A PX argument: `ttl` (> 0) capped at `max_redis_ttl`.
std::string px_arg(std::chrono::milliseconds ttl) {
  return std::to_string(std::min(ttl, RedisTokenCacheOptions::max_redis_ttl).count());
}

}  // namespace

struct RedisTokenCache::Impl : std::enable_shared_from_this<Impl> {
  struct Flight;
  RedisTokenCacheOptions options;
  std::string endpoint;  // host:port, for messages
  std::unique_ptr<Keyring> keyring;

  std::unique_ptr<detail::RedisRouter> router;
  // This cache's share of the cache I/O threads: all but one, so a Redis that crawls (each
  // command still bounded by command_timeout) always leaves a thread to the other caches.
  std::shared_ptr<detail::IoLane> lane = detail::IoLane::create(detail::cache_io_threads - 1);

  std::mutex outages_mutex;
  std::unordered_map<std::string, std::shared_ptr<detail::RedisOutage>> outages;  // by node (outage_for)
  std::atomic<bool> warned_decrypt{false};
  std::atomic<std::uint64_t> direct_fetches{0};
  std::shared_ptr<const detail::CacheMetrics> metrics;  // null without an observer

  static constexpr std::size_t max_names = 4096;
  std::mutex names_mutex;
  std::unordered_map<std::string, std::string> names;  // cache key -> lookup id

  // ---- push wake-ups -----------------------------------------------------------------
  std::string stored_channel;  // <prefix>stored: payload "<lookup id>" or "<lookup id> <record>"
  std::once_flag subscriber_started;
  std::unique_ptr<detail::RedisSubscriber> subscriber;  // push_wakeups: from the first flight on
  std::mutex waiters_mutex;
  std::unordered_multimap<std::string, std::weak_ptr<Flight>> waiters;  // lookup id -> flight
  std::atomic<std::uint64_t> push_wakeups{0};
  std::atomic<std::uint64_t> pushed_records{0};
  std::atomic<std::uint64_t> waiting_flights{0};

  bool push_up() const { return subscriber && subscriber->up(0); }
  void start_subscriber();
  /// An announcement on the push channel: "<lookup id>" or "<lookup id> <record>".
  void on_stored(std::string_view payload);
  void wake_all();

  /// The `retry_after_failure` bookkeeping of the node serving `key` (its name for messages):
  /// a failing cluster primary is skipped without making the cache bypass the others. With
  /// one node (single, the Sentinel primary) one entry; "" while no node is known.
  struct NodeOutage {
    std::shared_ptr<detail::RedisOutage> outage;
    std::string node;
  };
  NodeOutage outage_for(const std::string& key) {
    const auto node = router->node_of(key);
    std::string name = node ? node->text() : std::string();
    std::lock_guard lock(outages_mutex);
    auto it = outages.find(name);
    if (it == outages.end()) {
      if (outages.size() >= 1024) outages.clear();  // nodes come and go; bounded by clearing
      it = outages.emplace(name, std::make_shared<detail::RedisOutage>(options.retry_after_failure)).first;
    }
    return {it->second, name.empty() ? endpoint : std::move(name)};
  }

  /// Starts `args` (on `key`'s node) on an idle pooled connection from the calling thread,
  /// without waiting (see RedisConnection::start); null when that node is being skipped or no
  /// connection is idle. Sending before the hand-off to the I/O threads overlaps Redis' work
  /// with that hand-off.
  std::unique_ptr<RedisConnection> try_start(const std::string& key, ArgSpan args) {
    if (outage_for(key).outage->skipping(options.clock->now())) return nullptr;
    return router->try_start(key, args);
  }
  std::unique_ptr<RedisConnection> try_start(const std::string& key, Args args) {
    return try_start(key, ArgSpan(args.begin(), args.size()));
  }

  /// Runs one command on `key`'s node, with the outage bookkeeping. `started`: the command
  /// already begun by `try_start` (then `args` is not sent again).
  Reply command(const std::string& key, Args args, std::unique_ptr<RedisConnection> started = nullptr) {
    return command(key, ArgSpan(args.begin(), args.size()), std::move(started));
  }
  Reply command(const std::string& key, ArgSpan args, std::unique_ptr<RedisConnection> started) {
    const auto [outage, node] = outage_for(key);
    if (!started && outage->skipping(options.clock->now()))
      throw_error(errc::cache_unavailable, "Redis at " + node + " is unavailable (recent failure; retrying soon)");
    try {
      Reply r = router->run(key, args, std::move(started));
      if (outage->on_success())
        log(LogLevel::warning, "Redis token cache at " + node + " is reachable again; using it");
      return r;
    } catch (const Error& e) {
      if (outage->on_failure(options.clock->now()))
        log(LogLevel::warning, std::string(e.what()) +
                                   "; the Redis token cache is bypassed (tokens are fetched directly) until it answers");
      throw;
    }
  }

  /// The hex lookup id of `key` under the primary key, remembered: an HMAC with OpenSSL 3
  /// costs several microseconds (algorithm fetches), and a hit needs it before sending GET.
  /// The ids are public (they are Redis key names); the map is bounded by clearing it.
  std::string lookup_id(const std::string& key) {
    {
      std::lock_guard lock(names_mutex);
      if (auto it = names.find(key); it != names.end()) return it->second;
    }
    std::string id = detail::to_hex(Keyring::lookup(keyring->primary(), key));
    std::lock_guard lock(names_mutex);
    if (names.size() >= max_names) names.clear();
    names.emplace(key, id);
    return id;
  }
  // The braces are a Redis Cluster hash tag: a key's token and lock live in one slot.
  std::string name_of(std::string_view kind, const std::string& id) const {
    return options.key_prefix + std::string(kind) + "{" + id + "}";
  }
  std::string token_name(const std::string& key) { return name_of("tok:", lookup_id(key)); }
  std::string lock_name(const std::string& key) { return name_of("lock:", lookup_id(key)); }

  // ---- blocking operations (run on the cache I/O threads) ------------------------------
  /// `started`: the GET already begun by `try_start`, if any.
  std::optional<AccessToken> get(const std::string& key, std::unique_ptr<RedisConnection> started = nullptr) {
    const auto name = token_name(key);
    auto r = command(name, {"GET", name}, std::move(started));
    if (r->type == REDIS_REPLY_NIL) return std::nullopt;
    if (r->type != REDIS_REPLY_STRING)
      throw_error(errc::cache_unavailable, "Redis at " + endpoint + " answered GET with an unexpected reply" +
                                               (r->type == REDIS_REPLY_ERROR ? ": " + std::string(r->str, r->len) : ""));
    return keyring->decrypt(key, std::string_view(r->str, r->len));
  }

  /// As `get`, but an undecryptable value is a miss (with one warning), not an error.
  std::optional<AccessToken> get_lenient(const std::string& key, std::unique_ptr<RedisConnection> started = nullptr) {
    try {
      return get(key, std::move(started));
    } catch (const Error& e) {
      if (is_unavailable(std::current_exception())) throw;
      if (!warned_decrypt.exchange(true)) log(LogLevel::warning, std::string("Redis token cache: ") + e.what());
      return std::nullopt;
    }
  }

  /// The record and PX argument that store `value`, or none inside the expiry margin (nothing
  /// worth storing).
  struct Stored {
    std::string record;
    std::string px;
  };
  std::optional<Stored> to_store(const std::string& key, const AccessToken& value,
                                 std::optional<std::chrono::milliseconds> ttl) {
    const auto now = options.clock->now();
    const auto stale = detail::stale_point(value.expires_on, options.expiry_margin, now, ttl);
    const auto px = detail::saturate_cast<std::chrono::milliseconds>(detail::sub_sat(stale, now));
    if (px.count() <= 0) return std::nullopt;
    return Stored{keyring->encrypt(key, value), px_arg(px)};
  }

  void put(const std::string& key, const AccessToken& value, std::optional<std::chrono::milliseconds> ttl) {
    const auto stored = to_store(key, value, ttl);
    if (!stored) return;
    const auto name = token_name(key);
    auto r = command(name, {"SET", name, stored->record, "PX", stored->px});
    if (r->type == REDIS_REPLY_ERROR)
      throw_error(errc::cache_unavailable, "Redis at " + endpoint + " refused SET (" + std::string(r->str, r->len) + ")");
  }

  void erase(const std::string& key) {
    const auto name = token_name(key);
    auto r = command(name, {"DEL", name});
    if (r->type == REDIS_REPLY_ERROR)
      throw_error(errc::cache_unavailable, "Redis at " + endpoint + " refused DEL (" + std::string(r->str, r->len) + ")");
  }

  bool try_lock(const std::string& key, const std::string& owner) {
    const auto name = lock_name(key);
    auto r = command(name, {"SET", name, owner, "NX", "PX", px_arg(options.lock_ttl)});
    if (r->type == REDIS_REPLY_ERROR)
      throw_error(errc::cache_unavailable, "Redis at " + endpoint + " refused SET NX (" + std::string(r->str, r->len) + ")");
    return r->type == REDIS_REPLY_STATUS;  // "OK"; nil when someone else holds it
  }

  void unlock(const std::string& key, const std::string& owner) noexcept {
    try {
      const auto name = lock_name(key);
      command(name, {"EVAL", release_script, "1", name, owner});
    } catch (...) {
      // The lock expires by itself after lock_ttl.
    }
  }

  /// The leader's last step (finish_script): stores the fetched token (none after a failed
  /// fetch), releases the lock if the flight still holds it, and tells the waiting instances
  /// (push). Prepared, and begun on an idle pooled connection when one is at hand, on the
  /// thread that reported the fetch (`begin_finish`): Redis stores and announces while the
  /// hand-off to the cache I/O threads runs, which then read its answer (`finish_leading`).
  struct FinishCall {
    std::string token_key, lock_key, record, px = "0", owner, id;
    std::string_view channel;  // empty: no push
    bool carry = false;        // the record rides in the push
    std::unique_ptr<RedisConnection> started;
    std::array<std::string_view, 11> args() const {
      return {"EVAL", finish_script, "2", token_key, lock_key, record, px, owner, channel, id, carry ? "1" : "0"};
    }
  };

  /// Never throws: a call that cannot be prepared (OpenSSL failing to encrypt) releases the
  /// lock and announces nothing stored.
  FinishCall begin_finish(const std::string& key, const std::string& owner, const AccessToken* fetched) noexcept {
    FinishCall call;
    try {
      call.id = lookup_id(key);
      call.token_key = name_of("tok:", call.id);
      call.lock_key = name_of("lock:", call.id);
      call.owner = owner;
      call.channel = options.push_wakeups ? std::string_view(stored_channel) : std::string_view();
      try {
        if (auto stored = fetched ? to_store(key, *fetched, std::nullopt) : std::nullopt) {
          call.record = std::move(stored->record);
          call.px = std::move(stored->px);
          call.carry = call.record.size() <= max_pushed_record;
        }
      } catch (...) {
        log(LogLevel::debug, "Redis token cache: could not encrypt the fetched token for Redis (" +
                                 message_of(std::current_exception()) + "); releasing the lock only");
      }
      const auto args = call.args();
      call.started = try_start(call.token_key, args);
    } catch (...) {
      // Nothing begun: finish_leading runs the call (and reports its failure).
    }
    return call;
  }

  /// A failure is logged at debug level: an unreleased lock expires after lock_ttl, and a lost
  /// push costs the waiters one push_poll_interval.
  void finish_leading(FinishCall call) noexcept {
    try {
      if (call.token_key.empty()) throw_error(errc::cache_unavailable, "the call could not be prepared");
      const auto args = call.args();
      auto r = command(call.token_key, args, std::move(call.started));
      if (r->type == REDIS_REPLY_ERROR)
        throw_error(errc::cache_unavailable, "Redis at " + endpoint + " refused the store-and-release script (" +
                                                 std::string(r->str, r->len) + ")");
    } catch (...) {
      log(LogLevel::debug, "Redis token cache: could not store the fetched token and release the lock (" +
                               message_of(std::current_exception()) + ")");
    }
  }
};

/// One distributed single-flight for one key (see the class comment): performs the actions
/// of its `RedisFlight` machine and feeds back their results. Redis commands run on the
/// cache's I/O lane (within its share of the cache I/O threads); the poll timer is the cache
/// clock's.
struct RedisTokenCache::Impl::Flight : std::enable_shared_from_this<Flight> {
  using Action = detail::RedisFlight::Action;
  using Kind = Action::Kind;

  Flight(std::shared_ptr<Impl> impl, std::shared_ptr<TokenCache> keep_alive, std::string key,
         detail::RedisFlight::Config config, TokenCache::UpstreamFetch fetch, TokenCache::FetchDone done)
      : impl(std::move(impl)), keep_alive(std::move(keep_alive)), key(std::move(key)), machine(config),
        fetch(std::move(fetch)), done(std::move(done)) {}

  std::shared_ptr<RedisTokenCache::Impl> impl;
  std::shared_ptr<TokenCache> keep_alive;
  std::string key;
  detail::RedisFlight machine;
  TokenCache::UpstreamFetch fetch;
  TokenCache::FetchDone done;
  std::string owner;
  std::unique_ptr<Timer> timer;
  std::unique_ptr<RedisConnection> started;  // the first GET, begun by the caller
  bool first_read = true;                    // the next read is the caller's lookup
  std::optional<AccessToken> read;           // the token the last GET returned
  std::exception_ptr redis_failure;          // why the flight goes direct, for the warning
  std::exception_ptr fetch_error;            // the upstream fetch's result
  AccessToken fetched;
  std::optional<Impl::FinishCall> finish_call;  // the leader's last step, begun where the fetch reported

  // The flight's steady timeline starts at its creation's wall time and moves by elapsed time.
  Clock::time_point anchor_wall = impl->options.clock->now();
  std::chrono::nanoseconds anchor_elapsed = impl->options.clock->elapsed();

  detail::RedisFlight::Now now() const {
    const Clock& clock = *impl->options.clock;
    const auto wall = clock.now();
    return {wall, detail::add_sat(anchor_wall, detail::sub_sat(clock.elapsed(), anchor_elapsed))};
  }

  /// Performs `a` and the actions that follow it, until one waits for an asynchronous answer
  /// (the upstream fetch, the poll timer) or the caller is completed.
  void run(Action a) {
    while (true) {
      switch (a.kind) {
        case Kind::read_token:
          a = read_token();
          break;
        case Kind::try_lock:
          a = try_lock();
          break;
        case Kind::fetch_upstream:
          return start_fetch();
        case Kind::store_and_release:
        case Kind::release_lock:  // the waiters may take the lock over now
          impl->finish_leading(finish_call ? std::move(*std::exchange(finish_call, std::nullopt))
                                           : impl->begin_finish(key, owner, a.kind == Kind::store_and_release ? &fetched : nullptr));
          a = machine.on_stored(now());
          break;
        case Kind::wait:
          return arm_timer(a.until);
        case Kind::release_then_complete_read:
          impl->unlock(key, owner);
          [[fallthrough]];
        case Kind::complete_read:
          finished();
          return done(nullptr, std::move(*read));
        case Kind::complete_fetched:
          finished();
          return done(std::move(fetch_error), std::move(fetched));
        case Kind::release_then_fetch_direct:
          impl->unlock(key, owner);
          [[fallthrough]];
        case Kind::fetch_direct:
          ++impl->direct_fetches;
          if (impl->metrics) impl->metrics->fallback();
          warn_direct(a.why);
          return start_fetch();
      }
    }
  }

  Action read_token() {
    const bool first = std::exchange(first_read, false);
    try {
      read = impl->get_lenient(key, std::move(started));
      auto next = machine.on_read(now(), read ? std::optional(read->expires_on) : std::nullopt);
      // The flight's first read is the caller's lookup; a follower's polls are not lookups.
      if (first) report_lookup(next.kind == Kind::complete_read ? CacheLookup::hit : CacheLookup::miss);
      return next;
    } catch (...) {
      redis_failure = std::current_exception();
    }
    if (first) report_lookup(CacheLookup::error);
    return machine.on_failed(now());
  }

  void report_lookup(CacheLookup outcome) const noexcept {
    if (impl->metrics) impl->metrics->lookup(outcome);
  }

  Action try_lock() {
    try {
      const bool acquired = impl->try_lock(key, owner);
      return machine.on_lock(now(), acquired);
    } catch (...) {
      redis_failure = std::current_exception();
    }
    return machine.on_failed(now());
  }

  void warn_direct(detail::RedisFlight::DirectReason why) {
    if (why == detail::RedisFlight::DirectReason::wait_timeout)
      log(LogLevel::warning, "Redis token cache: waited " + std::to_string(impl->options.wait_timeout.count()) +
                                 " ms for another instance's fetch; fetching directly");
    else if (!is_unavailable(redis_failure))
      log(LogLevel::warning, "Redis token cache failed (" + message_of(redis_failure) + "); fetching the token directly");
  }

  // The poll timer and push wake-ups race to end a wait: the first ends it, later ones find
  // it over (a push that comes while the flight reads or locks makes its next wait end at once).
  std::mutex wait_mutex;
  bool waiting = false;
  bool pushed = false;
  std::uint64_t wait_generation = 0;  // a timer's firing counts only for its own wait

  void arm_timer(Clock::time_point until) {
    std::uint64_t generation;
    {
      std::lock_guard lock(wait_mutex);
      if (std::exchange(pushed, false)) {  // a push came while this flight read or locked
        ++impl->push_wakeups;
        return end_wait();
      }
      waiting = true;
      ++impl->waiting_flights;
      generation = ++wait_generation;
    }
    const auto wait = std::max(detail::sub_sat(until, now().steady), Clock::time_point::duration::zero());
    timer->async_wait_for(wait, [self = shared_from_this(), generation](bool) { self->wake(generation); });
  }

  /// Ends the current wait: `generation` of the timer that fired, or 0 for a push (`record`:
  /// the record the push carried, if any).
  void wake(std::uint64_t generation, std::string_view record = {}) {
    {
      std::lock_guard lock(wait_mutex);
      if (!waiting || (generation != 0 && generation != wait_generation)) {
        if (generation == 0) pushed = true;
        return;
      }
      waiting = false;
      --impl->waiting_flights;
    }
    if (generation == 0) {
      // A push runs the re-read on the subscriber's thread (this cache's own, so no other
      // cache waits behind it): the hand-off to the waiting callers saves a hop to the cache
      // I/O threads. Its commands stay bounded by command_timeout; pushes for other keys wait
      // that long at most, and their flights still have their fallback poll.
      ++impl->push_wakeups;
      auto next = machine.on_timer(now());
      if (next.kind == Kind::read_token && !record.empty()) next = read_pushed(record, next);
      return run(next);
    }
    end_wait();
  }

  /// Answers `read` (a read_token action) with the record a push carried instead of a GET;
  /// `read` itself when the record does not decrypt for this flight's key.
  Action read_pushed(std::string_view record, Action read_action) {
    try {
      read = impl->keyring->decrypt(key, record);
    } catch (...) {
      return read_action;  // the GET reports what is really stored (and warns once if it is bad)
    }
    ++impl->pushed_records;
    return machine.on_read(now(), read->expires_on);
  }

  void end_wait() {
    detail::post_on(*impl->lane, [self = shared_from_this()] { self->run(self->machine.on_timer(self->now())); });
  }

  /// The flight no longer waits for pushes.
  void finished() {
    if (!impl->options.push_wakeups) return;
    const auto id = impl->lookup_id(key);
    std::lock_guard lock(impl->waiters_mutex);
    for (auto [it, end] = impl->waiters.equal_range(id); it != end;) {
      auto flight = it->second.lock();
      it = (!flight || flight.get() == this) ? impl->waiters.erase(it) : std::next(it);
    }
  }

  /// Runs the upstream fetch; its answer is fed back once (a fetch that throws after
  /// reporting, or reports twice, is answered by its first report).
  void start_fetch() {
    auto answered = std::make_shared<std::atomic<bool>>(false);
    // The leader begins its store where the fetch reports and completes it on the cache I/O
    // threads; a direct fetch completes the caller from wherever the fetch reports.
    const bool leading = machine.state() == detail::RedisFlight::State::fetching;
    auto on_done = [self = shared_from_this(), answered, leading](std::exception_ptr e, AccessToken token) {
      if (answered->exchange(true)) return;
      // Until this report nothing else touches the flight (a leader does not wait), so the
      // machine may take it on the reporting thread.
      self->fetch_error = std::move(e);
      self->fetched = std::move(token);
      const auto next = self->machine.on_fetched(self->now(), !self->fetch_error);
      if (!leading) return self->run(next);
      if (next.kind == Kind::store_and_release || next.kind == Kind::release_lock)
        self->finish_call = self->impl->begin_finish(self->key, self->owner,
                                                     next.kind == Kind::store_and_release ? &self->fetched : nullptr);
      detail::post_on(*self->impl->lane, [self, next] { self->run(next); });
    };
    if (auto thrown = detail::exception_from([&] { fetch(on_done); })) on_done(std::move(thrown), {});
  }
};

void RedisTokenCache::Impl::start_subscriber() {
  std::call_once(subscriber_started, [this] {
    std::vector<detail::RedisSubscriber::Feed> feeds;
    std::weak_ptr<Impl> weak = weak_from_this();  // the subscriber's callbacks never keep the cache alive
    feeds.push_back({[weak] {
                       auto self = weak.lock();
                       if (!self) throw_error(errc::cache_unavailable, "the Redis token cache is gone");
                       return self->router->connect_subscriber();
                     },
                     stored_channel,
                     [weak](std::string_view payload) {
                       if (auto self = weak.lock()) self->on_stored(payload);
                     },
                     [weak](bool) {
                       // Up: waits that began before were not covered; down: no push may come.
                       if (auto self = weak.lock()) self->wake_all();
                     }});
    if (options.deployment == RedisDeployment::sentinel) {
      feeds.push_back({[weak] {
                         auto self = weak.lock();
                         if (!self) throw_error(errc::cache_unavailable, "the Redis token cache is gone");
                         return self->router->connect_sentinel();
                       },
                       "+switch-master",
                       [weak](std::string_view payload) {
                         if (auto self = weak.lock()) self->router->switch_master(payload);
                       },
                       nullptr});
    }
    detail::RedisSubscriber::Timing timing;
    timing.reconnect_after = std::clamp(options.retry_after_failure, std::chrono::milliseconds(100),
                                        std::chrono::milliseconds(5000));
    subscriber = std::make_unique<detail::RedisSubscriber>(std::move(feeds), timing);
  });
}

void RedisTokenCache::Impl::on_stored(std::string_view payload) {
  // Anyone who may PUBLISH may write this: the record is only a hint, admitted exactly as a
  // GET reply would be (decrypted under the waiting flight's own cache key, so a record of
  // another key, forged or damaged, fails and that flight GETs instead).
  const auto space = payload.find(' ');
  const auto id = payload.substr(0, space);
  const auto record = space == std::string_view::npos ? std::string_view() : payload.substr(space + 1);
  std::vector<std::shared_ptr<Flight>> woken;
  {
    std::lock_guard lock(waiters_mutex);
    for (auto [it, end] = waiters.equal_range(std::string(id)); it != end; ++it)
      if (auto flight = it->second.lock()) woken.push_back(std::move(flight));
  }
  for (auto& flight : woken) flight->wake(0, record);
}

void RedisTokenCache::Impl::wake_all() {
  std::vector<std::shared_ptr<Flight>> woken;
  {
    std::lock_guard lock(waiters_mutex);
    for (auto& [id, weak] : waiters)
      if (auto flight = weak.lock()) woken.push_back(std::move(flight));
  }
  for (auto& flight : woken) flight->wake(0);
}

RedisTokenCache::Stats RedisTokenCache::stats() const {
  const auto& counters = impl_->router->counters();
  Stats s;
  s.redirects = counters.redirects;
  s.topology_reads = counters.topology_reads;
  s.failovers_seen = counters.failovers_seen;
  s.direct_fetches = impl_->direct_fetches;
  s.push_wakeups = impl_->push_wakeups;
  s.pushed_records = impl_->pushed_records;
  s.push_up = impl_->push_up();
  s.waiting = impl_->waiting_flights;
  return s;
}

void RedisTokenCacheOptions::validate() const {
  constexpr const char* self = "RedisTokenCacheOptions";
  if (!tls) {
    for (auto [value, name] : {std::pair{&tls_ca_file, "tls_ca_file"}, {&tls_ca_path, "tls_ca_path"},
                               {&tls_cert_file, "tls_cert_file"}, {&tls_key_file, "tls_key_file"},
                               {&tls_server_name, "tls_server_name"}})
      if (!value->empty())
        throw_error(errc::invalid_argument,
                    std::string("RedisTokenCacheOptions::") + name + " is set but tls is false; set tls = true");
  }
  if (tls_cert_file.empty() != tls_key_file.empty())
    throw_error(errc::invalid_argument,
                "RedisTokenCacheOptions::tls_cert_file and tls_key_file go together: set both or neither");
  if (keys.empty()) throw_error(errc::invalid_argument, "RedisTokenCacheOptions::keys is empty: give at least one key");
  if (host.empty()) throw_error(errc::invalid_argument, "RedisTokenCacheOptions::host is empty: name the Redis host");
  if (port <= 0 || port > 65535) detail::reject_option(self, "port", "in 1..65535", std::to_string(port));
  if (database < 0) detail::reject_option(self, "database", ">= 0", std::to_string(database));
  detail::require_positive(connect_timeout, self, "connect_timeout", "no limit");
  detail::require_positive(command_timeout, self, "command_timeout", "no limit");
  detail::require_non_negative(expiry_margin, self, "expiry_margin", "nothing is stored");
  detail::require_positive(lock_ttl, self, "lock_ttl", "capped at max_redis_ttl");
  detail::require_positive(poll_interval, self, "poll_interval", "one wait until wait_timeout");
  detail::require_positive(wait_timeout, self, "wait_timeout", "no limit");
  detail::require_non_negative(retry_after_failure, self, "retry_after_failure", "never retried after a failure");
  detail::require_positive(push_poll_interval, self, "push_poll_interval", "one wait until wait_timeout");
  if (max_redirects < 1 || max_redirects > 16)
    detail::reject_option(self, "max_redirects", "in 1..16", std::to_string(max_redirects));
  if (key_prefix.find_first_of("{}") != std::string::npos)
    throw_error(errc::invalid_argument, "RedisTokenCacheOptions::key_prefix contains '{' or '}': credkit adds the "
                                        "Redis Cluster hash tag itself; remove them");
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (!detail::parse_node_address(nodes[i]))
      throw_error(errc::invalid_argument, "RedisTokenCacheOptions::nodes[" + std::to_string(i) +
                                              "] is not \"host:port\" (IPv6: \"[address]:port\", port 1..65535)");
  switch (deployment) {
    case RedisDeployment::single:
      if (!nodes.empty())
        throw_error(errc::invalid_argument, "RedisTokenCacheOptions::nodes is set but deployment is single; set "
                                            "deployment to cluster (seed nodes) or sentinel (sentinels)");
      break;
    case RedisDeployment::cluster:
      if (database != 0)
        detail::reject_option(self, "database", "0 with deployment cluster (Redis Cluster has only database 0)",
                              std::to_string(database));
      break;
    case RedisDeployment::sentinel:
      if (sentinel_master_name.empty() ||
          std::any_of(sentinel_master_name.begin(), sentinel_master_name.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; }))
        throw_error(errc::invalid_argument,
                    "RedisTokenCacheOptions::sentinel_master_name is empty or has spaces or control bytes; give the "
                    "name of `sentinel monitor <name> ...`");
      break;
    default:
      detail::reject_option(self, "deployment", "single, cluster or sentinel",
                            std::to_string(static_cast<int>(deployment)));
  }
  if (deployment != RedisDeployment::sentinel && (!sentinel_username.empty() || !sentinel_password.empty()))
    throw_error(errc::invalid_argument,
                "RedisTokenCacheOptions::sentinel_username/sentinel_password are set but deployment is not sentinel");
  detail::check_metrics_name(metrics_name, "RedisTokenCacheOptions::metrics_name");
}

std::shared_ptr<RedisTokenCache> RedisTokenCache::create(executor_type executor, RedisTokenCacheOptions options) {
  options.validate();
  detail::remember_secret(options.password);  // a reply may echo it (secret_scrubber.hpp)
  detail::remember_secret(options.sentinel_password);
  return std::shared_ptr<RedisTokenCache>(new RedisTokenCache(std::move(executor), std::move(options)));
}

RedisTokenCache::RedisTokenCache(executor_type executor, RedisTokenCacheOptions options)
    : TokenCache(std::move(executor), options.clock, options.coalesce_in_process, options.metrics,
                 options.metrics_name),
      impl_(std::make_shared<Impl>()) {
  impl_->metrics = detail::make_cache_metrics(options.metrics, options.metrics_name);
  if (!options.clock) options.clock = Clock::system();
  const std::string salt = options.kdf_salt.empty() ? options.key_prefix : options.kdf_salt;
  impl_->keyring = std::make_unique<Keyring>(
      options.keys, std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(salt.data()), salt.size()));
  impl_->endpoint = options.host + ":" + std::to_string(options.port);
  auto base = std::make_shared<detail::RedisEndpoint>();
  base->host = options.host;
  base->port = options.port;
  base->endpoint = impl_->endpoint;
  base->connect_timeout = options.connect_timeout;
  base->command_timeout = options.command_timeout;
  base->clock = options.clock;
  if (options.tls) {
    base->tls = detail::make_redis_tls_context(options);  // CA and client files are read now, once
    base->server_name = options.tls_server_name;
    base->verify_peer = options.tls_verify_peer;
    if (!options.tls_verify_peer)
      log(LogLevel::warning, "Redis token cache at " + impl_->endpoint +
                                 ": tls_verify_peer is false; the server's certificate is not checked, so anyone on "
                                 "the path can impersonate Redis");
  }
  detail::RedisRouter::Settings route;
  route.deployment = options.deployment;
  route.seeds.push_back({options.host, options.port});
  for (const auto& node : options.nodes) route.seeds.push_back(*detail::parse_node_address(node));  // validated
  route.base = std::move(base);
  route.username = options.username;
  route.password = options.password;
  route.database = options.database;
  route.master_name = options.sentinel_master_name;
  route.sentinel_username = options.sentinel_username;
  route.sentinel_password = options.sentinel_password;
  route.max_redirects = options.max_redirects;
  route.pool_size = options.pool_size;
  if (auto metrics = impl_->metrics) route.on_redirect = [metrics] { metrics->redirect(); };
  impl_->router = std::make_unique<detail::RedisRouter>(std::move(route));
  impl_->stored_channel = options.key_prefix + "stored";
  impl_->options = std::move(options);
}

RedisTokenCache::~RedisTokenCache() {
  // The subscriber's thread stops now, not when the last job of this cache lets go of it.
  impl_->subscriber.reset();
}

void RedisTokenCache::do_get(std::string key, GetDone done) {
  const auto name = impl_->token_name(key);
  auto started = impl_->try_start(name, {"GET", name});
  detail::run_blocking(
      *impl_->lane,
      [impl = impl_, key = std::move(key), started = std::move(started)]() mutable {
        return impl->get(key, std::move(started));
      },
      std::move(done));
}

void RedisTokenCache::do_put(std::string key, AccessToken value, std::optional<std::chrono::milliseconds> ttl,
                             WriteDone done) {
  detail::run_blocking(
      *impl_->lane,
      [impl = impl_, key = std::move(key), value = std::move(value), ttl] { impl->put(key, value, ttl); },
      std::move(done));
}

void RedisTokenCache::do_erase(std::string key, WriteDone done) {
  detail::run_blocking(*impl_->lane, [impl = impl_, key = std::move(key)] { impl->erase(key); }, std::move(done));
}

void RedisTokenCache::do_get_or_fetch(std::string key, std::chrono::milliseconds min_validity, UpstreamFetch fetch,
                                      FetchDone done) {
  if (impl_->options.push_wakeups) impl_->start_subscriber();
  // A flight that starts while the subscription is up hears of every store after its first
  // read; one that starts before polls at the full rate (it is woken when pushes come up).
  const bool covered = impl_->push_up();
  detail::RedisFlight::Config config;
  config.min_validity = min_validity;
  config.poll_interval = covered ? impl_->options.push_poll_interval : impl_->options.poll_interval;
  config.wait_timeout = impl_->options.wait_timeout;
  unsigned char seed[8];
  detail::random_bytes(seed);
  std::memcpy(&config.seed, seed, sizeof seed);
  auto flight = std::make_shared<Impl::Flight>(impl_, shared_from_this(), std::move(key), config, std::move(fetch),
                                               std::move(done));
  unsigned char owner[16];
  detail::random_bytes(owner);
  flight->owner = detail::to_hex(owner);
  flight->timer = impl_->options.clock->make_timer(detail::cache_io_executor());
  const auto name = impl_->token_name(flight->key);
  if (impl_->options.push_wakeups) {
    std::lock_guard lock(impl_->waiters_mutex);
    impl_->waiters.emplace(impl_->lookup_id(flight->key), flight);
  }
  flight->started = impl_->try_start(name, {"GET", name});
  detail::post_on(*impl_->lane, [flight] { flight->run(flight->machine.start(flight->now())); });
}

}  // namespace credkit
