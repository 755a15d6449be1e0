// Test and benchmark helper: real Redis topologies on loopback, started as child processes and
// torn down on destruction — a Redis Cluster of 3 primaries and 3 replicas, and a primary with
// one replica watched by 3 Sentinels — with bounded waits for health and for failover, and a
// small blocking client (hiredis) to inspect them. No Asio, no doctest: benchmarks include it.
// Link tests/support/redis_topologies.cpp and hiredis; needs redis-server and redis-sentinel
// in PATH (scripts/setup installs them).
#pragma once

#include "support/child_server.hpp"
#include "support/temp_files.hpp"

#include <boost/core/noncopyable.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace credkit::test {

/// Where a Redis node listens.
struct RedisAddress {
  std::string host = "127.0.0.1";
  unsigned short port = 0;

  /// "127.0.0.1:7000", the form MOVED, CLUSTER NODES and redis-cli use.
  std::string text() const { return host + ":" + std::to_string(port); }
  friend bool operator==(const RedisAddress&, const RedisAddress&) = default;
};

/// A Redis reply copied out of hiredis (RESP2, the protocol hiredis 0.14 speaks).
struct RedisReply {
  enum class Type { string, status, error, integer, nil, array };
  Type type = Type::nil;
  std::string text;  ///< string, status or error text
  long long integer = 0;
  std::vector<RedisReply> elements;

  bool is_error() const { return type == Type::error; }
  /// The reply on one line, for failure messages: "OK", "(nil)", "(error) MOVED 12 ...", "[a, b]".
  std::string describe() const;
};

/// A node that cannot be reached or did not answer in time (down, killed, stopped).
struct RedisUnreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Runs one command on a fresh connection to 127.0.0.1:`port`, after `AUTH password` when
/// `password` is not empty (a failed AUTH is returned as the error reply). Throws
/// RedisUnreachable if the node does not accept or answer within `timeout`.
RedisReply redis_command(unsigned short port, const std::vector<std::string>& args, const std::string& password = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(2));

/// Runs `commands` in order on one fresh connection (as redis_command), for those that act on
/// the connection's earlier commands: `SET` then `WAIT` (a WAIT on another connection has no
/// write to wait for and returns at once).
std::vector<RedisReply> redis_commands(unsigned short port, const std::vector<std::vector<std::string>>& commands,
                                       const std::string& password = {},
                                       std::chrono::milliseconds timeout = std::chrono::seconds(2));

/// Waits, at most `limit`, until the node on `port` answers ROLE as a replica of `primary` with
/// its link up ("connected"); throws naming what it answered otherwise. For a failed primary
/// brought back (resumed) and rejoining as a replica of its successor.
void wait_until_replica_of(unsigned short port, const RedisAddress& primary, const std::string& password = {},
                           std::chrono::milliseconds limit = std::chrono::seconds(30));

/// The hash slot of `key`, as Redis Cluster computes it: CRC16 (XMODEM) mod 16384 of the key,
/// or of its hash tag — the text between the first '{' and the next '}', when not empty.
int redis_slot_of(std::string_view key);

/// One range of a cluster's slot map (CLUSTER SLOTS), inclusive.
struct RedisSlotRange {
  int first = 0;
  int last = 0;
  RedisAddress primary;
  std::vector<RedisAddress> replicas;  ///< those not flagged failed
};

struct RedisClusterOptions {
  /// Not empty: every node gets `requirepass` and `masterauth` (its replicas authenticate to it).
  std::string password;
  /// cluster-node-timeout: a primary silent this long is suspected; failover takes about 2-3 times it.
  std::chrono::milliseconds node_timeout{1000};
  /// Bound on start-up: each node accepting, the cluster formed, and the cluster healthy.
  std::chrono::milliseconds start_limit{std::chrono::seconds(20)};
  /// cluster-require-full-coverage: with `true` (Redis' default) every node answers
  /// CLUSTERDOWN while any slot has no primary (a failover's window); with `false` the other
  /// slots stay served.
  bool require_full_coverage = true;
};

/// The primary kill_primary_of_slot or pause_primary_of_slot took down, for wait_for_failover.
struct FailedRedisPrimary {
  RedisAddress address;
  std::vector<RedisSlotRange> ranges;  ///< the slots it served, with its replicas then
};

/// A Redis Cluster of 3 primaries and 3 replicas (one each) on free loopback ports, each node in
/// its own directory, nothing persisted. It is formed as `redis-cli --cluster create
/// --cluster-replicas 1` would (same slot ranges, distinct config epochs), by CLUSTER commands,
/// which saves redis-cli's 1 s sleeps. The constructor returns once the cluster is healthy:
/// every node says cluster_state:ok with all 16384 slots served and knows all 6 nodes, every
/// replica's link to its primary is up, and every node's slot map names each primary's replica.
/// Otherwise it throws, naming what did not happen. The destructor kills (SIGKILL) and reaps
/// every node and removes the directories.
class RedisCluster : boost::noncopyable {
 public:
  explicit RedisCluster(RedisClusterOptions options = {});
  ~RedisCluster();

  const std::string& password() const { return options_.password; }
  /// Every node, in start order, running or killed.
  std::vector<RedisAddress> nodes() const;
  /// The primaries serving slots now, by their lowest slot (from the seed's slot map).
  std::vector<RedisAddress> primaries() const;
  /// The replicas of those primaries now, not flagged failed (from the seed's slot map).
  std::vector<RedisAddress> replicas() const;
  /// The port of a running node, to start a client from.
  unsigned short seed() const;
  /// CLUSTER SLOTS as answered by the node on `port`, by first slot.
  std::vector<RedisSlotRange> slot_map(unsigned short port) const;
  /// The primary serving `slot` now, according to the seed.
  RedisAddress primary_for_slot(int slot) const;
  static int slot_of(std::string_view key) { return redis_slot_of(key); }
  /// One command on the node on `port`, authenticated with the cluster's password.
  RedisReply command(unsigned short port, const std::vector<std::string>& args) const;

  /// SIGKILLs the primary serving `slot`: it does not come back, and on loopback a connection
  /// to it is refused at once. Its replica is promoted after about 2-3 node timeouts.
  FailedRedisPrimary kill_primary_of_slot(int slot);
  /// SIGKILLs primaries()[i].
  FailedRedisPrimary kill_primary(std::size_t i);
  /// SIGSTOPs the primary serving `slot`: a hung node, whose port still accepts connections
  /// (the kernel completes them) but never answers, so clients meet their timeouts. The cluster
  /// fails it over as if dead; resume() continues it.
  FailedRedisPrimary pause_primary_of_slot(int slot);
  /// SIGCONTs a node paused by pause_primary_of_slot. A failed-over primary then rejoins as a
  /// replica of its successor.
  void resume(const RedisAddress& node);
  /// Waits, at most `limit`, until one of `failed`'s replicas serves all its slots according
  /// to every running, unpaused node and each of them says cluster_state:ok; returns that
  /// replica. Throws naming what is still missing otherwise.
  RedisAddress wait_for_failover(const FailedRedisPrimary& failed,
                                 std::chrono::milliseconds limit = std::chrono::seconds(30));

 private:
  struct Node {
    RedisAddress address;
    unsigned short bus_port = 0;
    std::filesystem::path dir;
    std::unique_ptr<ChildServer> server;
    bool paused = false;

    bool answers() const { return server && server->running() && !paused; }
  };

  FailedRedisPrimary primary_of_slot(int slot) const;
  void spawn_node(Node& node, std::vector<unsigned short>& ports_in_use);
  void create_cluster(std::chrono::milliseconds limit);
  std::string health_problem() const;
  Node& node_at(const RedisAddress& address);

  RedisClusterOptions options_;
  TempDir dir_;  // declared before the nodes: removed after they are killed
  std::vector<Node> nodes_;
};

struct RedisSentinelOptions {
  std::string master_name = "credkit-primary";
  /// Not empty: the primary and the replica get `requirepass` and `masterauth`, the sentinels
  /// `sentinel auth-pass`. The sentinels themselves take no password.
  std::string password;
  /// down-after-milliseconds: the primary silent this long is subjectively down.
  std::chrono::milliseconds down_after{1000};
  /// failover-timeout (a failover in progress is abandoned, and retried, after this).
  std::chrono::milliseconds failover_timeout{3000};
  /// Bound on start-up: each process accepting, the replica in sync, the sentinels agreed.
  std::chrono::milliseconds start_limit{std::chrono::seconds(20)};
};

/// A primary, one replica of it (--replicaof) and 3 sentinels monitoring it with quorum 2, on
/// free loopback ports, each in its own directory (a sentinel rewrites its config file there).
/// The sentinels are configured knowing each other and the replica, so they agree without
/// waiting for hello messages. The constructor returns once the replica's link is up and every
/// sentinel names the primary, counts the replica and the 2 other sentinels, and reaches
/// quorum (SENTINEL CKQUORUM); otherwise it throws. The destructor kills (SIGKILL) and reaps
/// every process and removes the directories.
class RedisSentinelSet : boost::noncopyable {
 public:
  explicit RedisSentinelSet(RedisSentinelOptions options = {});
  ~RedisSentinelSet();

  std::vector<RedisAddress> sentinels() const;
  const std::string& master_name() const { return options_.master_name; }
  const std::string& password() const { return options_.password; }
  /// The node started as primary; after wait_for_failover, the promoted replica.
  RedisAddress primary() const;
  /// The node started as replica; after wait_for_failover, the primary taken down.
  RedisAddress replica() const;
  /// One command on the primary or replica on `port`, authenticated with the password.
  RedisReply command(unsigned short port, const std::vector<std::string>& args) const;

  /// SIGKILLs the primary; returns its address.
  RedisAddress kill_primary();
  /// SIGSTOPs the primary: a hung node, its port accepting connections that are never
  /// answered. The sentinels fail it over as if dead. Returns its address.
  RedisAddress pause_primary();
  /// SIGCONTs a node paused by pause_primary. After a failover the sentinels turn it into a
  /// replica of the new primary, but only at their next INFO of it (every 10 s, fixed in
  /// Redis): until then it answers as a primary with stale data.
  void resume(const RedisAddress& node);
  /// Waits, at most `limit`, until every sentinel answers SENTINEL get-master-addr-by-name
  /// with the replica and the replica answers ROLE as master; returns it (now primary()).
  /// Throws naming what is still missing otherwise.
  RedisAddress wait_for_failover(std::chrono::milliseconds limit = std::chrono::seconds(30));

 private:
  struct Process {
    RedisAddress address;
    std::filesystem::path dir;
    std::unique_ptr<ChildServer> server;
  };

  std::string health_problem() const;

  RedisSentinelOptions options_;
  TempDir dir_;  // declared before the processes: removed after they are killed
  Process data_[2];  // data_[primary_] is the primary, the other its replica
  int primary_ = 0;
  std::vector<Process> sentinels_;
};

}  // namespace credkit::test
