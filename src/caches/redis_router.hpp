// credkit detail — which Redis node runs a command, and the pooled connections to each node:
// one server, a Redis Cluster (slot map, MOVED/ASK redirects) or a primary found through
// Sentinel. Blocking, bounded I/O (RedisConnection), called from the cache I/O threads.
#pragma once

#include <credkit/caches/redis_token_cache.hpp>

#include "caches/redis_connection.hpp"
#include "caches/redis_slot_map.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace credkit::detail {

class RedisRouter {
 public:
  struct Settings {
    RedisDeployment deployment = RedisDeployment::single;
    /// The server, the seed nodes or the sentinels, in the order to try them (not empty).
    std::vector<RedisNodeAddress> seeds;
    /// Timeouts, TLS and clock of every connection; host, port and server name set per node.
    std::shared_ptr<const RedisEndpoint> base;
    std::string username, password;
    int database = 0;
    std::string master_name, sentinel_username, sentinel_password;
    int max_redirects = 5;
    std::size_t pool_size = 4;
    /// Called (no lock held) for each MOVED or ASK followed; empty: nothing to tell.
    std::function<void()> on_redirect;
  };

  /// What the router has done, for `RedisTokenCache::stats()`.
  struct Counters {
    std::atomic<std::uint64_t> redirects{0};       ///< MOVED and ASK followed
    std::atomic<std::uint64_t> topology_reads{0};  ///< slot maps read, primaries asked of Sentinel
    std::atomic<std::uint64_t> failovers_seen{0};  ///< primaries replaced (Sentinel, or MOVED of a whole map)
  };

  explicit RedisRouter(Settings settings);

  /// Runs `args`, whose keys all hash to `key`'s slot, on the node that serves it: follows
  /// redirects (at most `max_redirects`), and after a lost connection, a read-only reply or a
  /// cluster that is down, learns the topology again and retries once. `started`: the command
  /// already begun on a connection by `try_start`. Each attempt is bounded by the connect and
  /// command timeouts. Throws `Error` (`cache_unavailable`, `tls_error`).
  RedisReply run(std::string_view key, std::span<const std::string_view> args,
                 std::unique_ptr<RedisConnection> started = nullptr);
  /// Begins `args` on an idle pooled connection to `key`'s node, from the calling thread and
  /// without waiting, if the node is known without I/O and has one; else null.
  std::unique_ptr<RedisConnection> try_start(std::string_view key, std::span<const std::string_view> args);
  /// The node `key` goes to as far as is known now (no I/O); none before the topology is read.
  std::optional<RedisNodeAddress> node_of(std::string_view key);
  /// A new connection (AUTH done) for a subscription to data channels: the server, the
  /// primary, or a node of the cluster (Redis Cluster forwards PUBLISH to every node).
  std::unique_ptr<RedisConnection> connect_subscriber();
  /// `sentinel`: a new connection to a sentinel (its AUTH done), to follow `+switch-master`.
  std::unique_ptr<RedisConnection> connect_sentinel();
  /// A sentinel announced that `master_name` moved (a `+switch-master` payload:
  /// "<name> <old host> <old port> <new host> <new port>"). Payloads of other names, or that do
  /// not parse, are ignored.
  void switch_master(std::string_view payload);

  const Counters& counters() const noexcept { return counters_; }
  const Settings& settings() const noexcept { return settings_; }

 private:
  using Args = std::span<const std::string_view>;
  RedisNodeAddress node_for(std::uint16_t slot);
  std::optional<RedisNodeAddress> known_node_for(std::uint16_t slot);
  void read_slot_map();
  /// Whether the cluster lists `to` (reading the map again if the one known does not).
  bool known_member(const RedisNodeAddress& to);
  RedisNodeAddress ask_sentinels();
  /// The topology may have changed under `at` (lost connection, READONLY, CLUSTERDOWN).
  void forget(const RedisNodeAddress& at);
  std::shared_ptr<const RedisEndpoint> endpoint_for(const RedisNodeAddress& at);
  std::unique_ptr<RedisConnection> connect_data(const RedisNodeAddress& at);
  std::unique_ptr<RedisConnection> take_idle(const std::string& node);
  void give_back(std::unique_ptr<RedisConnection> c);

  Settings settings_;
  Counters counters_;
  std::mutex mutex_;  // everything below
  RedisSlotMap slots_;
  bool slots_stale_ = true;
  std::optional<RedisNodeAddress> primary_;  // sentinel: the verified primary
  std::size_t next_sentinel_ = 0;
  std::map<std::string, std::shared_ptr<const RedisEndpoint>> endpoints_;
  std::map<std::string, std::vector<std::unique_ptr<RedisConnection>>> idle_;
  std::mutex reading_topology_;  // one topology read at a time; others use what is known
};

}  // namespace credkit::detail
