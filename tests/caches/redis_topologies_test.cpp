// The real Redis topologies the cluster and sentinel tests stand on (tests/support/
// redis_topologies.hpp): a 3+3 Redis Cluster and a primary + replica + 3 sentinels start
// healthy, route keys as Redis does, fail over when a primary is killed (SIGKILL) or hung
// (SIGSTOP, then resumed: it rejoins as a replica), with and without a password. Prints how
// long start-up and failover took.
#include "support/redis_topologies.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

using namespace std::chrono_literals;
using credkit::test::RedisAddress;
using credkit::test::RedisCluster;
using credkit::test::RedisClusterOptions;
using credkit::test::RedisReply;
using credkit::test::RedisSentinelOptions;
using credkit::test::RedisSentinelSet;
using credkit::test::redis_command;
using credkit::test::redis_commands;
using credkit::test::redis_slot_of;

namespace {

long long ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
}

/// A topology built from `options`, once healthy; prints how long that took.
template <class Topology, class Options>
std::unique_ptr<Topology> started(const Options& options, const std::string& what) {
  const auto start = std::chrono::steady_clock::now();
  auto topology = std::make_unique<Topology>(options);
  MESSAGE(what << " start-up: " << ms_since(start) << " ms");
  return topology;
}

/// How a test takes a primary down: SIGKILL (gone; connections refused at once) or SIGSTOP
/// (hung; connections accepted, never answered), resumed after the failover.
enum class Outage { killed, paused };

std::string name_of(Outage o) { return o == Outage::killed ? "SIGKILLed" : "SIGSTOPped"; }

/// The node on `port` accepts a connection but answers nothing (a hung process).
void check_hung(unsigned short port) {
  CHECK_THROWS_AS(redis_command(port, {"PING"}, {}, 300ms), credkit::test::RedisUnreachable);
}

bool contains(const std::vector<RedisAddress>& all, const RedisAddress& a) {
  return std::find(all.begin(), all.end(), a) != all.end();
}

/// Commands without the password are refused, and so is a wrong password.
void check_password_required(unsigned short port) {
  const auto anonymous = redis_command(port, {"PING"});
  CHECK(anonymous.is_error());
  CHECK(anonymous.text.rfind("NOAUTH", 0) == 0);
  const auto wrong = redis_command(port, {"PING"}, "not-the-password");
  CHECK(wrong.is_error());
  CHECK(wrong.text.rfind("WRONGPASS", 0) == 0);
}

/// Every node's slot map covers 0..16383 without a gap, 3 primaries with one replica each.
void check_cluster_healthy(const RedisCluster& cluster) {
  for (const auto& node : cluster.nodes()) {
    int next = 0;
    for (const auto& range : cluster.slot_map(node.port)) {
      CHECK(range.first == next);
      CHECK(range.replicas.size() == 1);
      next = range.last + 1;
    }
    CHECK(next == 16384);
  }
  const auto primaries = cluster.primaries();
  const auto replicas = cluster.replicas();
  CHECK(primaries.size() == 3);
  CHECK(replicas.size() == 3);
  for (const auto& r : replicas) CHECK_FALSE(contains(primaries, r));
}

/// A key set on the primary of its slot, MOVED from another primary, the primary taken down,
/// its replica promoted with the key, and MOVED pointing at the promoted node. A paused primary,
/// resumed, rejoins as a replica of the promoted node.
void check_cluster_failover(RedisCluster& cluster, Outage outage) {
  const std::string key = "credkit:{bot-7}:token";
  const int slot = RedisCluster::slot_of(key);
  const auto owner = cluster.primary_for_slot(slot);
  const auto written = redis_commands(owner.port, {{"SET", key, "first"}, {"WAIT", "1", "2000"}}, cluster.password());
  CHECK(written[0].text == "OK");
  CHECK(written[1].integer == 1);  // on its replica too
  RedisAddress other;
  for (const auto& p : cluster.primaries())
    if (!(p == owner)) other = p;
  const auto moved = cluster.command(other.port, {"GET", key});
  CHECK(moved.is_error());
  CHECK(moved.text == "MOVED " + std::to_string(slot) + " " + owner.text());

  const auto primaries_before = cluster.primaries();
  const auto replicas_before = cluster.replicas();
  const auto start = std::chrono::steady_clock::now();
  const auto index = static_cast<std::size_t>(
      std::find(primaries_before.begin(), primaries_before.end(), owner) - primaries_before.begin());
  const auto failed = outage == Outage::killed ? cluster.kill_primary(index) : cluster.pause_primary_of_slot(slot);
  if (outage == Outage::paused) check_hung(owner.port);
  const auto promoted = cluster.wait_for_failover(failed);
  MESSAGE("cluster failover (primary " << name_of(outage)
                                       << " -> its replica serves its slots on every node, cluster_state:ok): "
                                       << ms_since(start) << " ms");
  CHECK(failed.address == owner);
  REQUIRE(failed.ranges.size() == 1);
  CHECK(failed.ranges[0].replicas == std::vector<RedisAddress>{promoted});
  CHECK(contains(replicas_before, promoted));
  CHECK(cluster.primary_for_slot(slot) == promoted);
  CHECK(cluster.command(promoted.port, {"GET", key}).text == "first");
  CHECK(cluster.command(promoted.port, {"SET", key, "second"}).text == "OK");
  CHECK(cluster.command(other.port, {"GET", key}).text == "MOVED " + std::to_string(slot) + " " + promoted.text());
  const auto primaries = cluster.primaries();
  CHECK(primaries.size() == 3);
  CHECK(contains(primaries, promoted));
  CHECK_FALSE(contains(primaries, owner));
  CHECK(cluster.replicas().size() == 2);
  if (outage == Outage::paused) {
    const auto resumed = std::chrono::steady_clock::now();
    cluster.resume(owner);
    credkit::test::wait_until_replica_of(owner.port, promoted, cluster.password());
    MESSAGE("resumed primary replicating its successor after " << ms_since(resumed) << " ms");
    CHECK(cluster.command(owner.port, {"GET", key}).text == "MOVED " + std::to_string(slot) + " " + promoted.text());
  }
}

/// Each sentinel names the primary; a key written there reaches the replica; the primary taken
/// down, the sentinels name the replica, which answers as master with the key. A paused
/// primary, resumed, is made a replica of the promoted node by the sentinels.
void check_sentinel_failover(RedisSentinelSet& set, Outage outage) {
  const auto first_primary = set.primary();
  const auto first_replica = set.replica();
  for (const auto& s : set.sentinels()) {
    const auto addr = redis_command(s.port, {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", set.master_name()});
    REQUIRE(addr.elements.size() == 2);
    CHECK(addr.elements[1].text == std::to_string(first_primary.port));
  }
  CHECK(set.command(first_primary.port, {"ROLE"}).elements.at(0).text == "master");
  CHECK(set.command(first_replica.port, {"ROLE"}).elements.at(0).text == "slave");
  const auto written =
      redis_commands(first_primary.port, {{"SET", "credkit:token", "first"}, {"WAIT", "1", "2000"}}, set.password());
  CHECK(written[0].text == "OK");
  CHECK(written[1].integer == 1);  // on the replica too
  CHECK(set.command(first_replica.port, {"GET", "credkit:token"}).text == "first");

  const auto start = std::chrono::steady_clock::now();
  CHECK((outage == Outage::killed ? set.kill_primary() : set.pause_primary()) == first_primary);
  if (outage == Outage::paused) check_hung(first_primary.port);
  const auto promoted = set.wait_for_failover();
  MESSAGE("sentinel failover (primary " << name_of(outage)
                                        << " -> all 3 sentinels name the replica, it answers ROLE master): "
                                        << ms_since(start) << " ms");
  CHECK(promoted == first_replica);
  CHECK(set.primary() == first_replica);
  CHECK(set.replica() == first_primary);
  for (const auto& s : set.sentinels()) {
    const auto addr = redis_command(s.port, {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", set.master_name()});
    REQUIRE(addr.elements.size() == 2);
    CHECK(addr.elements[1].text == std::to_string(promoted.port));
  }
  CHECK(set.command(promoted.port, {"GET", "credkit:token"}).text == "first");
  CHECK(set.command(promoted.port, {"SET", "credkit:token", "second"}).text == "OK");
  if (outage == Outage::paused) {
    const auto resumed = std::chrono::steady_clock::now();
    set.resume(first_primary);
    credkit::test::wait_until_replica_of(first_primary.port, promoted, set.password());
    MESSAGE("resumed primary replicating its successor after " << ms_since(resumed) << " ms");
    const auto rewritten =
        redis_commands(promoted.port, {{"SET", "credkit:token", "third"}, {"WAIT", "1", "2000"}}, set.password());
    CHECK(rewritten[1].integer == 1);
    CHECK(set.command(first_primary.port, {"GET", "credkit:token"}).text == "third");
  }
}

}  // namespace

TEST_CASE("redis_slot_of: CRC16 XMODEM mod 16384, with the hash tag rule") {
  CHECK(redis_slot_of("123456789") == 0x31C3);  // the CRC16/XMODEM check value
  CHECK(redis_slot_of("foo") == 12182);         // from the Redis documentation
  CHECK(redis_slot_of("") == 0);
  CHECK(redis_slot_of("{user1000}.following") == redis_slot_of("user1000"));
  CHECK(redis_slot_of("{user1000}.followers") == redis_slot_of("user1000"));
  CHECK(redis_slot_of("foo{}{bar}") != redis_slot_of("bar"));  // an empty tag: the whole key
  CHECK(redis_slot_of("foo{{bar}}zap") == redis_slot_of("{bar"));
  CHECK(redis_slot_of("foo{bar}{zap}") == redis_slot_of("bar"));
  CHECK(redis_slot_of("no{close") != redis_slot_of("close"));
}

TEST_CASE("RedisCluster: 3 primaries + 3 replicas start healthy, route as Redis does, fail over") {
  const auto cluster = started<RedisCluster>(RedisClusterOptions{}, "cluster (6 nodes, 3 primaries + 3 replicas, healthy)");
  check_cluster_healthy(*cluster);
  for (const std::string key : {"foo", "credkit:{bot-7}:token", "credkit:{bot-7}:lock", "foo{}{bar}", "foo{{bar}}zap",
                                "user:1000", "\xff\x01 binary"})
    CHECK(cluster->command(cluster->seed(), {"CLUSTER", "KEYSLOT", key}).integer == RedisCluster::slot_of(key));
  CHECK(cluster->command(cluster->seed(), {"CLUSTER", "SHARDS"}).elements.size() == 3);  // exists in 7.0
  check_cluster_failover(*cluster, Outage::killed);
}

TEST_CASE("RedisCluster with a password: every node requires it; a paused primary is failed over and rejoins") {
  RedisClusterOptions options;
  options.password = "cluster-test-password";
  const auto cluster = started<RedisCluster>(options, "cluster with a password");
  for (const auto& node : cluster->nodes()) check_password_required(node.port);
  check_cluster_healthy(*cluster);
  check_cluster_failover(*cluster, Outage::paused);
}

TEST_CASE("RedisSentinelSet: primary + replica + 3 sentinels start agreed and fail over") {
  const auto set = started<RedisSentinelSet>(RedisSentinelOptions{}, "sentinel set (2 servers, 3 sentinels, quorum)");
  CHECK(set->sentinels().size() == 3);
  check_sentinel_failover(*set, Outage::killed);
}

TEST_CASE("RedisSentinelSet with a password: data nodes require it; a paused primary is failed over and rejoins") {
  RedisSentinelOptions options;
  options.password = "sentinel-test-password";
  const auto set = started<RedisSentinelSet>(options, "sentinel set with a password");
  check_password_required(set->primary().port);
  check_password_required(set->replica().port);
  check_sentinel_failover(*set, Outage::paused);
}
