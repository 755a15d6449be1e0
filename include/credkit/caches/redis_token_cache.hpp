// credkit — a token cache in Redis shared by many bot instances, with a distributed single-flight.
#pragma once

#include <credkit/caches/cache_encryption_key.hpp>
#include <credkit/caches/token_cache.hpp>
#include <credkit/core/clock.hpp>
#include <credkit/core/metrics_observer.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace credkit {

/// How a `RedisTokenCache` finds the Redis server that holds a key (docs/caches.md, "Deployments").
enum class RedisDeployment {
  /// One server at `host:port`, or an endpoint that hides its topology (a managed service's
  /// proxy, a Sentinel-aware load balancer).
  single,
  /// Redis Cluster. `host:port` and `nodes` are seed nodes: the cache reads the slot map
  /// (`CLUSTER SLOTS`) from the first that answers, sends each command to the primary serving
  /// its key's slot, follows `MOVED` (updating the map) and `ASK` redirects, at most
  /// `max_redirects` per command, and reloads the map after a redirect or a lost connection.
  cluster,
  /// A primary with replicas watched by Sentinel. `host:port` and `nodes` are sentinels: the
  /// cache asks them for the primary named `sentinel_master_name` (`SENTINEL
  /// get-master-addr-by-name`), checks its `ROLE`, and asks again when the primary fails, turns
  /// read-only, or a sentinel announces a failover (`+switch-master`, with `push_wakeups`).
  sentinel,
};

/// Options of a `RedisTokenCache`. `RedisTokenCache::create` calls `validate()`.
struct RedisTokenCacheOptions {
  /// Redis host (name or address), not empty, and port, 1 to 65535: the server (`single`), the
  /// first seed node (`cluster`) or the first sentinel (`sentinel`).
  std::string host = "127.0.0.1";
  int port = 6379;
  /// What `host:port` and `nodes` are (see `RedisDeployment`).
  RedisDeployment deployment = RedisDeployment::single;
  /// More seed nodes (`cluster`) or sentinels (`sentinel`), "host:port" each (IPv6: "[addr]:port"),
  /// tried in order after `host:port`. Must be empty for `single`.
  std::vector<std::string> nodes;
  /// `sentinel`: the name the sentinels monitor the primary under (`sentinel monitor <name> ...`).
  std::string sentinel_master_name = "mymaster";
  /// `sentinel`: AUTH to the sentinels themselves (`requirepass` / ACL in sentinel.conf), which
  /// may differ from the data nodes' `username`/`password`. Empty: no AUTH. Never logged.
  std::string sentinel_username;
  std::string sentinel_password;
  /// `cluster`: the most `MOVED`/`ASK` redirects one command follows, 1 to 16; one more fails
  /// it with `cache_unavailable` (a cluster resharding faster than the cache can follow).
  int max_redirects = 5;
  /// Push wake-ups: the instance that stores a fetched token (or gives up the lock after a
  /// failed fetch) publishes the key's id on `<key_prefix>stored`, with the stored record when
  /// it is at most 4 KiB; every instance of the cache keeps one subscription to it (its own
  /// connection and thread, opened on the first `async_get_or_fetch`), and an instance waiting
  /// on another's fetch takes the record from the message (decrypted and checked as a GET
  /// reply; one that fails is ignored) or re-reads at once. While
  /// the subscription is up, waiting instances poll only every `push_poll_interval` as a fallback
  /// (a message lost in a failover); while it is down, every `poll_interval`. With `sentinel`,
  /// the same connection to a sentinel also follows `+switch-master`.
  bool push_wakeups = true;
  /// The fallback poll of a waiting instance while push wake-ups are up: > 0.
  std::chrono::milliseconds push_poll_interval = std::chrono::milliseconds(250);
  /// AUTH: `password` alone (`AUTH <password>`), or with `username` (Redis 6 ACL:
  /// `AUTH <username> <password>`). Empty: no AUTH. Never logged.
  std::string username;
  std::string password;
  /// SELECT this database after connecting, 0 or more (0: none sent). Redis Cluster has only
  /// database 0.
  int database = 0;
  /// TLS to Redis (its `tls-port`), through OpenSSL, TLS 1.2 or later. The peer's certificate
  /// is verified (chain and host name) unless `tls_verify_peer` is false. The `tls_*` options
  /// below require `tls`; `create` rejects them otherwise.
  bool tls = false;
  /// PEM file of the CA certificate(s) that signed Redis' certificate. Empty (and no
  /// `tls_ca_path`): the system's default CA store.
  std::string tls_ca_file;
  /// Directory of CA certificates in OpenSSL's hashed layout (`openssl rehash`).
  std::string tls_ca_path;
  /// Client certificate chain (PEM) and its private key (PEM, unencrypted), for a Redis with
  /// `tls-auth-clients yes` (Redis' default). Set both or neither. The key is read once, by
  /// `create`; its content never appears in messages.
  std::string tls_cert_file;
  std::string tls_key_file;
  /// The name the certificate must carry (and the SNI sent, for names). Empty: `host`. Set it
  /// when connecting by an address the certificate does not list.
  std::string tls_server_name;
  /// Verify Redis' certificate and host name. `false` encrypts without authenticating the
  /// server (anyone on the path can impersonate it): for tests only; `create` logs a warning.
  bool tls_verify_peer = true;
  /// Bounds of connecting (TCP and TLS handshake together) and of each command (sending and
  /// reading the reply); beyond them Redis counts as unavailable. Host names are resolved
  /// before `connect_timeout` starts (prefer an address or a local resolver). Each > 0;
  /// `milliseconds::max()`: no limit of credkit's own (the kernel's TCP timeouts still apply).
  std::chrono::milliseconds connect_timeout = std::chrono::milliseconds(500);
  std::chrono::milliseconds command_timeout = std::chrono::milliseconds(500);
  /// Idle connections kept for reuse, 0 or more (0: every command opens a connection;
  /// connections are opened on demand).
  std::size_t pool_size = 4;
  /// Prefix of every Redis key this cache writes (`<prefix>tok:{<id>}`, `<prefix>lock:{<id>}`:
  /// the braces are a Redis Cluster hash tag, so a key's token and lock share a slot) and of
  /// the push channel (`<prefix>stored`). Without `{` or `}`.
  std::string key_prefix = "credkit:";
  /// Encryption keys: the first encrypts, all decrypt (rotation). At least one.
  std::vector<CacheEncryptionKey> keys;
  /// Salt for passphrase keys (all instances must use the same); empty: the key prefix.
  std::string kdf_salt;
  /// An entry expires (Redis PX) this long before its token does: 0 or more.
  /// `milliseconds::max()` (or any margin at least a token's lifetime) stores nothing.
  std::chrono::milliseconds expiry_margin = std::chrono::seconds(30);
  /// Single-flight lock lifetime: the longest a fetch may hold others back, including when
  /// its holder died. Keep it above the token service's worst fetch time. > 0; Redis PX values
  /// (this and token TTLs) are capped at `max_redis_ttl`, so `milliseconds::max()` means a
  /// lock that outlives any fetch (should its holder die, others wait `wait_timeout` each
  /// time, then fetch directly, until the lock is deleted).
  std::chrono::milliseconds lock_ttl = std::chrono::seconds(15);
  /// How often an instance waiting on another's fetch re-reads Redis (±25 % jitter): > 0.
  /// A wait never runs past `wait_timeout`, so `milliseconds::max()` means one wait until
  /// `wait_timeout`, then a direct fetch.
  std::chrono::milliseconds poll_interval = std::chrono::milliseconds(20);
  /// The longest an instance waits on another's fetch before fetching itself: > 0.
  /// `milliseconds::max()`: no limit (waits until the holder stores the token, releases the
  /// lock, or the lock expires after `lock_ttl`).
  std::chrono::milliseconds wait_timeout = std::chrono::seconds(20);
  /// After Redis fails, calls skip it (fall back at once) for this long, then try again:
  /// 0 or more (0: every call tries Redis). `milliseconds::max()`: never again after a failure.
  std::chrono::milliseconds retry_after_failure = std::chrono::seconds(1);
  /// Share one fetch among concurrent `async_get_or_fetch` calls for a key in this process
  /// before going to Redis (fewer lock attempts).
  bool coalesce_in_process = true;
  /// Time source for TTLs and freshness; null: `Clock::system()`.
  std::shared_ptr<Clock> clock;
  /// Receives the outcome of every lookup (`async_get`, and the first read of each
  /// `async_get_or_fetch` flight), the cluster redirects followed and the direct fetches
  /// (`MetricsObserver::cache_lookup`, `redis_redirect`, `redis_fallback`); null: none.
  std::shared_ptr<MetricsObserver> metrics;
  /// The cache's label in metrics: 1 to 64 characters from `A-Z a-z 0-9 _ . : / -`.
  std::string metrics_name = "redis";

  /// The longest PX credkit sends to Redis (about 1000 years): longer lock and token TTLs are
  /// capped to it (Redis refuses expiries past its 64-bit millisecond range; older versions
  /// may overflow).
  static constexpr std::chrono::milliseconds max_redis_ttl{1000LL * 365 * 24 * 3600 * 1000};

  /// Limits on one Redis reply, whatever the peer sends (docs/caches.md, "Limits"). credkit
  /// checks every RESP header with its own bounded scanner before the decoder sees it, so a
  /// reply claiming a huge size allocates nothing: a reply past a limit fails the command with
  /// `cache_unavailable` and the connection is closed. `command_timeout` is a deadline for
  /// the whole reply (a peer dripping bytes or never ending a line fails at the deadline).
  /// Total bytes of one reply (bulk payloads included): 4 MiB.
  static constexpr std::size_t max_reply_bytes = std::size_t{4} << 20;
  /// Longest header or simple-string/error/integer line: 64 KiB.
  static constexpr std::size_t max_reply_line_bytes = std::size_t{64} << 10;
  /// Sum of the element counts of all arrays in one reply: 1024.
  static constexpr std::size_t max_reply_elements = 1024;
  /// Deepest array nesting in one reply: 8.
  static constexpr std::size_t max_reply_depth = 8;

  /// Throws `Error(errc::invalid_argument)` naming the first out-of-range field
  /// (`RedisTokenCacheOptions::<field> ...`) with its allowed range: the ranges above, no
  /// key, a `tls_*` option without `tls`, a certificate without its key or the reverse. Files
  /// are not read here (`create` reads them).
  void validate() const;
};

/// A `TokenCache` in Redis (hiredis), for many bot instances sharing tokens.
///
/// Values are AES-256-GCM records (the same format as `EncryptedFileTokenCache`'s) under
/// `<prefix>tok:<keyed hash of the cache key>`, with a Redis TTL (PX) of expiry − margin.
/// Connections (plain TCP or TLS) are pooled; waiting for Redis happens on credkit's cache I/O
/// threads, never on the caller's or a credential's executor. A read (`async_get`, and the
/// first read of `async_get_or_fetch`) on an idle pooled connection is sent from the calling
/// thread without waiting, so Redis works while the I/O thread wakes up.
///
/// `async_get_or_fetch` is a distributed single-flight: when the token is missing or stale,
/// only the instance that wins `SET <prefix>lock:<id> <random owner> NX PX lock_ttl` fetches;
/// it stores the token and releases the lock with a compare-and-delete script, so it never
/// deletes a lock it no longer owns. The others poll the value until it lands, or take the
/// lock over once it is released or has expired (a dead holder blocks nobody past `lock_ttl`).
/// If Redis is down or slow, `async_get_or_fetch` fetches directly and logs one warning per
/// outage; it uses Redis again once Redis answers.
///
/// Errors of `async_get`/`async_put`/`async_erase`: `cache_unavailable` (connect, AUTH,
/// timeout including a TLS handshake timeout, Redis error), `tls_error` (certificate verify
/// failed, host name mismatch, TLS handshake or protocol failure), `cache_corrupt`,
/// `cache_wrong_key`, `crypto_error`. Both `cache_unavailable` and `tls_error` make
/// `async_get_or_fetch` bypass Redis (one warning per outage).
class RedisTokenCache final : public TokenCache {
 public:
  /// Creates the cache (connects lazily; reads the TLS CA and client files now). Throws
  /// `Error(errc::invalid_argument)` for a bad option (`options.validate()`, or an unreadable
  /// TLS file), or `Error(errc::tls_error)` if OpenSSL cannot build the TLS context.
  static std::shared_ptr<RedisTokenCache> create(executor_type executor, RedisTokenCacheOptions options);
  ~RedisTokenCache() override;

  /// What the cache has done since it was created, for monitoring and tests.
  struct Stats {
    std::uint64_t redirects = 0;       ///< Redis Cluster `MOVED`/`ASK` redirects followed
    std::uint64_t topology_reads = 0;  ///< slot maps read, primaries found through Sentinel
    std::uint64_t failovers_seen = 0;  ///< `+switch-master` announcements followed
    std::uint64_t direct_fetches = 0;  ///< flights that fetched without Redis (it failed, or a wait timed out)
    std::uint64_t push_wakeups = 0;    ///< waits ended by a push rather than the poll timer
    bool push_up = false;              ///< the push subscription is confirmed and alive
    std::uint64_t waiting = 0;         ///< flights waiting now on another instance's fetch
    std::uint64_t pushed_records = 0;  ///< of push_wakeups, those answered by the record the push carried (no GET)
  };
  /// A snapshot of the counters. Thread-safe.
  Stats stats() const;

 protected:
  void do_get(std::string key, GetDone done) override;
  void do_put(std::string key, AccessToken value, std::optional<std::chrono::milliseconds> ttl,
              WriteDone done) override;
  void do_erase(std::string key, WriteDone done) override;
  void do_get_or_fetch(std::string key, std::chrono::milliseconds min_validity, UpstreamFetch fetch,
                       FetchDone done) override;

 private:
  struct Impl;
  RedisTokenCache(executor_type executor, RedisTokenCacheOptions options);
  std::shared_ptr<Impl> impl_;
};

}  // namespace credkit
