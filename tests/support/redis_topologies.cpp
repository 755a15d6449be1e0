// Real Redis topologies for tests and benchmarks: see redis_topologies.hpp.
#include "support/redis_topologies.hpp"

#include <hiredis/hiredis.h>

#include <signal.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace credkit::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr int kSlots = 16384;
constexpr int kStartAttempts = 3;  // a port picked free can be taken before the server binds it
constexpr milliseconds kPollInterval{20};
constexpr milliseconds kProcessStartLimit{5000};

RedisReply copy_reply(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = r.type == REDIS_REPLY_STRING   ? RedisReply::Type::string
                 : r.type == REDIS_REPLY_STATUS ? RedisReply::Type::status
                                                : RedisReply::Type::error;
      out.text.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::integer;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::array;
      for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(copy_reply(*r.element[i]));
      break;
    default:
      out.type = RedisReply::Type::nil;
  }
  return out;
}

/// Polls `problem` every kPollInterval until it returns "" (the awaited state holds); throws
/// naming `what`, `limit` and the last problem seen if `limit` since `since` passes first. A
/// node that cannot be reached is a problem to wait out, not an error.
void wait_until(const std::string& what, steady_clock::time_point since, milliseconds limit,
                const std::function<std::string()>& problem) {
  for (;;) {
    std::string last;
    try {
      last = problem();
    } catch (const RedisUnreachable& e) {
      last = e.what();
    }
    if (last.empty()) return;
    if (steady_clock::now() - since >= limit)
      throw std::runtime_error(what + " did not happen within " + std::to_string(limit.count()) + " ms: " + last);
    std::this_thread::sleep_for(kPollInterval);
  }
}

/// A loopback port free a moment ago and not among `in_use`, which it joins.
unsigned short unused_port(std::vector<unsigned short>& in_use) {
  for (;;) {
    const unsigned short p = free_loopback_port();
    if (p != 0 && std::find(in_use.begin(), in_use.end(), p) == in_use.end()) {
      in_use.push_back(p);
      return p;
    }
  }
}

/// Calls `attempt(retrying)` until it returns without throwing, at most kStartAttempts times;
/// the last failure propagates.
template <class Attempt>
void with_start_attempts(Attempt attempt) {
  for (int i = 1;; ++i) {
    try {
      attempt(i > 1);
      return;
    } catch (const std::exception&) {
      if (i == kStartAttempts) throw;
    }
  }
}

/// The value of `name` in INFO or CLUSTER INFO text ("" if absent).
std::string info_field(const std::string& info, std::string_view name) {
  std::istringstream lines(info);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 && line[name.size()] == ':')
      return line.substr(name.size() + 1);
  }
  return {};
}

/// The value after `name` in a flat name/value array (SENTINEL MASTER, SENTINEL REPLICAS).
std::string pair_field(const RedisReply& flat, std::string_view name) {
  for (std::size_t i = 0; i + 1 < flat.elements.size(); i += 2)
    if (flat.elements[i].text == name) return flat.elements[i + 1].text;
  return {};
}

/// Throws naming `command` unless `r` is the status OK.
void require_ok(const RedisReply& r, const std::string& command) {
  if (r.type != RedisReply::Type::status || r.text != "OK") throw std::runtime_error(command + " answered " + r.describe());
}

/// The text of a reply expected to be a string or status; throws naming `command` otherwise.
std::string text_of(const RedisReply& r, const std::string& command) {
  if (r.type != RedisReply::Type::string && r.type != RedisReply::Type::status)
    throw std::runtime_error(command + " answered " + r.describe());
  return r.text;
}

std::vector<RedisSlotRange> parse_slot_map(const RedisReply& r) {
  if (r.type != RedisReply::Type::array) throw std::runtime_error("CLUSTER SLOTS answered " + r.describe());
  const auto node_of = [&](const RedisReply& n) {
    if (n.elements.size() < 2) throw std::runtime_error("CLUSTER SLOTS answered " + r.describe());
    return RedisAddress{n.elements[0].text, static_cast<unsigned short>(n.elements[1].integer)};
  };
  std::vector<RedisSlotRange> ranges;
  for (const auto& e : r.elements) {
    if (e.elements.size() < 3) throw std::runtime_error("CLUSTER SLOTS answered " + r.describe());
    RedisSlotRange range{static_cast<int>(e.elements[0].integer), static_cast<int>(e.elements[1].integer),
                         node_of(e.elements[2]), {}};
    for (std::size_t i = 3; i < e.elements.size(); ++i) range.replicas.push_back(node_of(e.elements[i]));
    ranges.push_back(std::move(range));
  }
  std::sort(ranges.begin(), ranges.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return ranges;
}

const RedisSlotRange* range_of(const std::vector<RedisSlotRange>& map, int slot) {
  for (const auto& r : map)
    if (r.first <= slot && slot <= r.last) return &r;
  return nullptr;
}

/// The distinct primaries of `map`, in map order.
std::vector<RedisAddress> primaries_of(const std::vector<RedisSlotRange>& map) {
  std::vector<RedisAddress> out;
  for (const auto& r : map)
    if (std::find(out.begin(), out.end(), r.primary) == out.end()) out.push_back(r.primary);
  return out;
}

std::vector<std::string> data_node_argv(unsigned short port, const std::filesystem::path& dir,
                                        const std::string& password) {
  std::vector<std::string> argv{"redis-server",
                                "--port", std::to_string(port),
                                "--bind", "127.0.0.1",
                                "--daemonize", "no",
                                "--save", "",
                                "--appendonly", "no",
                                // A replica syncs at once instead of waiting 5 s for more replicas.
                                "--repl-diskless-sync-delay", "0",
                                // The primary pings its replicas every second instead of 10, which
                                // moves their replication offset off 0 without a write: a cluster
                                // lists a replica whose offset is 0 nowhere (CLUSTER SLOTS, SHARDS).
                                "--repl-ping-replica-period", "1",
                                "--dir", dir.string(),
                                "--logfile", (dir / "redis.log").string()};
  if (!password.empty()) argv.insert(argv.end(), {"--requirepass", password, "--masterauth", password});
  return argv;
}

/// Problem text if the node on `port` is a replica whose link to its primary is not up.
std::string replica_link_problem(unsigned short port, const std::string& password) {
  const auto info = text_of(redis_command(port, {"INFO", "replication"}, password), "INFO replication");
  if (info_field(info, "role") == "slave" && info_field(info, "master_link_status") != "up")
    return "the replica on port " + std::to_string(port) + " has no link to its primary yet";
  return {};
}

/// 40 random hex digits, a sentinel's run id.
std::string random_run_id(std::mt19937_64& random) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 40; ++i) id += digits[random() % 16];
  return id;
}

}  // namespace

std::string RedisReply::describe() const {
  switch (type) {
    case Type::string:
    case Type::status:
      return text;
    case Type::error:
      return "(error) " + text;
    case Type::integer:
      return std::to_string(integer);
    case Type::nil:
      return "(nil)";
    case Type::array: {
      std::string out = "[";
      for (std::size_t i = 0; i < elements.size(); ++i) out += (i ? ", " : "") + elements[i].describe();
      return out + "]";
    }
  }
  return {};
}

std::vector<RedisReply> redis_commands(unsigned short port, const std::vector<std::vector<std::string>>& commands,
                                       const std::string& password, milliseconds timeout) {
  const timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  std::unique_ptr<redisContext, void (*)(redisContext*)> c(redisConnectWithTimeout("127.0.0.1", port, tv), redisFree);
  const auto where = "127.0.0.1:" + std::to_string(port);
  if (!c || c->err) throw RedisUnreachable("cannot connect to " + where + (c ? std::string(": ") + c->errstr : ""));
  redisSetTimeout(c.get(), tv);
  const auto run = [&](const std::vector<std::string>& command) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const auto& a : command) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (!r) throw RedisUnreachable(where + " did not answer " + command.at(0) + ": " + c->errstr);
    RedisReply out = copy_reply(*r);
    freeReplyObject(r);
    return out;
  };
  std::vector<RedisReply> replies;
  if (!password.empty()) {
    auto auth = run({"AUTH", password});
    if (auth.is_error()) return std::vector<RedisReply>(commands.size(), auth);
  }
  for (const auto& command : commands) replies.push_back(run(command));
  return replies;
}

RedisReply redis_command(unsigned short port, const std::vector<std::string>& args, const std::string& password,
                         milliseconds timeout) {
  return redis_commands(port, {args}, password, timeout).front();
}

void wait_until_replica_of(unsigned short port, const RedisAddress& primary, const std::string& password,
                           milliseconds limit) {
  const auto what = "127.0.0.1:" + std::to_string(port) + " replicating " + primary.text();
  wait_until(what, steady_clock::now(), limit, [&]() -> std::string {
    const auto role = redis_command(port, {"ROLE"}, password);
    // A replica answers [slave, host, port, state, offset].
    if (role.elements.size() < 4 || role.elements[0].text != "slave" || role.elements[1].text != primary.host ||
        role.elements[2].integer != primary.port || role.elements[3].text != "connected")
      return "ROLE answers " + role.describe();
    return {};
  });
}

int redis_slot_of(std::string_view key) {
  const auto open = key.find('{');
  if (open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  // CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection.
  std::uint16_t crc = 0;
  for (const unsigned char byte : key) {
    crc ^= static_cast<std::uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit)
      crc = static_cast<std::uint16_t>(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc % kSlots;
}

// ---- RedisCluster ----------------------------------------------------------------------------

RedisCluster::RedisCluster(RedisClusterOptions options) : options_(std::move(options)) {
  const auto start = steady_clock::now();
  std::vector<unsigned short> ports_in_use;
  nodes_.resize(6);
  // All started before any is awaited: each takes tens of milliseconds to listen.
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    nodes_[i].dir = dir_.path / ("node" + std::to_string(i));
    std::filesystem::create_directory(nodes_[i].dir);
    spawn_node(nodes_[i], ports_in_use);
  }
  for (auto& n : nodes_)
    with_start_attempts([&](bool retrying) {
      if (retrying) spawn_node(n, ports_in_use);
      n.server->wait_until_accepting(n.address.port, kProcessStartLimit);
    });
  create_cluster(options_.start_limit - std::chrono::duration_cast<milliseconds>(steady_clock::now() - start));
  wait_until("a healthy Redis Cluster", start, options_.start_limit, [this] { return health_problem(); });
}

RedisCluster::~RedisCluster() = default;

void RedisCluster::spawn_node(Node& node, std::vector<unsigned short>& ports_in_use) {
  node.server.reset();
  std::filesystem::remove(node.dir / "nodes.conf");  // a failed attempt's identity and ports
  node.address.port = unused_port(ports_in_use);
  // The bus port is given, not port + 10000: that can pass 65535 for an ephemeral port.
  node.bus_port = unused_port(ports_in_use);
  auto argv = data_node_argv(node.address.port, node.dir, options_.password);
  argv.insert(argv.end(), {"--cluster-enabled", "yes",
                           "--cluster-config-file", "nodes.conf",
                           "--cluster-port", std::to_string(node.bus_port),
                           "--cluster-node-timeout", std::to_string(options_.node_timeout.count()),
                           // A replica may be promoted however long its link was down: failover
                           // tests do not depend on replication lag.
                           "--cluster-replica-validity-factor", "0",
                           "--cluster-require-full-coverage", options_.require_full_coverage ? "yes" : "no"});
  node.server = std::make_unique<ChildServer>(argv, ChildServer::NoWait{}, SIGKILL);
}

void RedisCluster::create_cluster(milliseconds limit) {
  // What redis-cli --cluster create --cluster-replicas 1 does, without its 1 s sleeps: nodes
  // 0-2 are the primaries with a third of the slots each, node 3 + i the replica of node i,
  // every node with its own config epoch (set before it meets the others).
  const auto start = steady_clock::now();
  const int first_slot[4] = {0, 5461, 10923, kSlots};
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const auto port = nodes_[i].address.port;
    ids.push_back(text_of(command(port, {"CLUSTER", "MYID"}), "CLUSTER MYID"));
    require_ok(command(port, {"CLUSTER", "SET-CONFIG-EPOCH", std::to_string(i + 1)}), "CLUSTER SET-CONFIG-EPOCH");
    if (i < 3)
      require_ok(command(port, {"CLUSTER", "ADDSLOTSRANGE", std::to_string(first_slot[i]),
                                std::to_string(first_slot[i + 1] - 1)}),
                 "CLUSTER ADDSLOTSRANGE");
    if (i > 0)
      require_ok(command(port, {"CLUSTER", "MEET", "127.0.0.1", std::to_string(nodes_[0].address.port),
                                std::to_string(nodes_[0].bus_port)}),
                 "CLUSTER MEET");
  }
  // A node accepts REPLICATE once gossip has told it of its primary.
  wait_until("the replicas attaching to their primaries", start, limit, [&]() -> std::string {
    for (std::size_t i = 3; i < nodes_.size(); ++i) {
      const auto r = command(nodes_[i].address.port, {"CLUSTER", "REPLICATE", ids[i - 3]});
      if (r.is_error()) return "CLUSTER REPLICATE on " + nodes_[i].address.text() + " answered " + r.text;
    }
    return {};
  });
}

std::string RedisCluster::health_problem() const {
  int primaries = 0;
  for (const auto& n : nodes_) {
    const auto port = n.address.port;
    const auto at = " on " + n.address.text();
    const auto info = text_of(command(port, {"CLUSTER", "INFO"}), "CLUSTER INFO");
    if (info_field(info, "cluster_state") != "ok") return "cluster_state is " + info_field(info, "cluster_state") + at;
    if (info_field(info, "cluster_slots_ok") != std::to_string(kSlots))
      return "cluster_slots_ok is " + info_field(info, "cluster_slots_ok") + at;
    if (info_field(info, "cluster_known_nodes") != std::to_string(nodes_.size()))
      return "cluster_known_nodes is " + info_field(info, "cluster_known_nodes") + at;
    if (auto p = replica_link_problem(port, options_.password); !p.empty()) return p;
    const auto map = slot_map(port);
    const auto owners = primaries_of(map);
    if (owners.size() != 3) return std::to_string(owners.size()) + " primaries in the slot map" + at;
    for (const auto& r : map)
      if (r.replicas.size() != 1)
        return std::to_string(r.replicas.size()) + " replicas for slots " + std::to_string(r.first) + "-" +
               std::to_string(r.last) + at;
    if (std::find(owners.begin(), owners.end(), n.address) != owners.end()) ++primaries;
  }
  if (primaries != 3) return std::to_string(primaries) + " nodes count themselves among the primaries";
  return {};
}

std::vector<RedisAddress> RedisCluster::nodes() const {
  std::vector<RedisAddress> out;
  for (const auto& n : nodes_) out.push_back(n.address);
  return out;
}

std::vector<RedisAddress> RedisCluster::primaries() const { return primaries_of(slot_map(seed())); }

std::vector<RedisAddress> RedisCluster::replicas() const {
  std::vector<RedisAddress> out;
  for (const auto& r : slot_map(seed()))
    for (const auto& a : r.replicas)
      if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  return out;
}

unsigned short RedisCluster::seed() const {
  for (const auto& n : nodes_)
    if (n.answers()) return n.address.port;
  throw std::runtime_error("no node of the Redis Cluster is running unpaused");
}

std::vector<RedisSlotRange> RedisCluster::slot_map(unsigned short port) const {
  return parse_slot_map(command(port, {"CLUSTER", "SLOTS"}));
}

RedisAddress RedisCluster::primary_for_slot(int slot) const {
  const auto map = slot_map(seed());
  if (const auto* r = range_of(map, slot)) return r->primary;
  throw std::runtime_error("no primary serves slot " + std::to_string(slot));
}

RedisReply RedisCluster::command(unsigned short port, const std::vector<std::string>& args) const {
  return redis_command(port, args, options_.password);
}

RedisCluster::Node& RedisCluster::node_at(const RedisAddress& address) {
  for (auto& n : nodes_)
    if (n.address == address) return n;
  throw std::runtime_error(address.text() + " is not a node of this cluster");
}

FailedRedisPrimary RedisCluster::primary_of_slot(int slot) const {
  const auto map = slot_map(seed());
  const auto* range = range_of(map, slot);
  if (!range) throw std::runtime_error("no primary serves slot " + std::to_string(slot));
  FailedRedisPrimary primary{range->primary, {}};
  for (const auto& r : map)
    if (r.primary == primary.address) primary.ranges.push_back(r);
  return primary;
}

FailedRedisPrimary RedisCluster::kill_primary_of_slot(int slot) {
  auto killed = primary_of_slot(slot);
  node_at(killed.address).server->stop();  // the node's stop signal is SIGKILL
  return killed;
}

FailedRedisPrimary RedisCluster::pause_primary_of_slot(int slot) {
  auto paused = primary_of_slot(slot);
  auto& node = node_at(paused.address);
  node.server->signal(SIGSTOP);
  node.paused = true;
  return paused;
}

void RedisCluster::resume(const RedisAddress& address) {
  auto& node = node_at(address);
  node.server->signal(SIGCONT);
  node.paused = false;
}

FailedRedisPrimary RedisCluster::kill_primary(std::size_t i) {
  const auto map = slot_map(seed());
  const auto all = primaries_of(map);
  if (i >= all.size()) throw std::out_of_range("the cluster has " + std::to_string(all.size()) + " primaries");
  const auto first = std::find_if(map.begin(), map.end(), [&](const auto& r) { return r.primary == all[i]; });
  return kill_primary_of_slot(first->first);
}

RedisAddress RedisCluster::wait_for_failover(const FailedRedisPrimary& failed, milliseconds limit) {
  if (failed.ranges.empty()) throw std::invalid_argument(failed.address.text() + " served no slots");
  RedisAddress promoted;
  wait_until("the failover of " + failed.address.text(), steady_clock::now(), limit, [&]() -> std::string {
    const auto& candidates = failed.ranges.front().replicas;
    std::vector<RedisAddress> owners;
    for (const auto& n : nodes_) {
      if (!n.answers()) continue;
      const auto at = " according to " + n.address.text();
      const auto info = text_of(command(n.address.port, {"CLUSTER", "INFO"}), "CLUSTER INFO");
      if (info_field(info, "cluster_state") != "ok") return "cluster_state is " + info_field(info, "cluster_state") + at;
      const auto map = slot_map(n.address.port);
      for (const auto& r : failed.ranges) {
        for (const int slot : {r.first, r.last}) {
          const auto* now = range_of(map, slot);
          if (!now) return "no node serves slot " + std::to_string(slot) + at;
          if (std::find(candidates.begin(), candidates.end(), now->primary) == candidates.end())
            return now->primary.text() + " serves slot " + std::to_string(slot) + at;
          owners.push_back(now->primary);
        }
      }
    }
    if (owners.empty()) return "no node of the cluster is running";
    if (std::any_of(owners.begin(), owners.end(), [&](const auto& o) { return !(o == owners.front()); }))
      return "the running nodes disagree on who serves the slots of " + failed.address.text();
    promoted = owners.front();
    return {};
  });
  return promoted;
}

// ---- RedisSentinelSet ------------------------------------------------------------------------

RedisSentinelSet::RedisSentinelSet(RedisSentinelOptions options) : options_(std::move(options)) {
  const auto start = steady_clock::now();
  std::vector<unsigned short> ports_in_use;
  const char* names[2] = {"primary", "replica"};
  for (int i = 0; i < 2; ++i) {
    auto& p = data_[i];
    p.dir = dir_.path / names[i];
    std::filesystem::create_directory(p.dir);
    with_start_attempts([&](bool) {
      p.address.port = unused_port(ports_in_use);
      auto argv = data_node_argv(p.address.port, p.dir, options_.password);
      if (i == 1) argv.insert(argv.end(), {"--replicaof", "127.0.0.1", std::to_string(data_[0].address.port)});
      p.server = std::make_unique<ChildServer>(argv, p.address.port, SIGKILL, kProcessStartLimit);
    });
  }

  // The sentinels are started together: each one's config names the others' ports and ids, so
  // a port taken meanwhile restarts all three on fresh ports.
  std::mt19937_64 random(std::random_device{}());
  with_start_attempts([&](bool) {
    sentinels_.clear();
    sentinels_.resize(3);
    std::vector<std::string> ids;
    for (auto& s : sentinels_) {
      s.address.port = unused_port(ports_in_use);
      ids.push_back(random_run_id(random));
    }
    const auto& name = options_.master_name;
    for (std::size_t i = 0; i < sentinels_.size(); ++i) {
      auto& s = sentinels_[i];
      s.dir = dir_.path / ("sentinel" + std::to_string(i) + "-" + std::to_string(s.address.port));
      std::filesystem::create_directory(s.dir);
      std::ostringstream conf;
      conf << "port " << s.address.port << "\nbind 127.0.0.1\ndaemonize no\n"
           << "dir " << s.dir.string() << "\nlogfile " << (s.dir / "sentinel.log").string() << "\n"
           << "sentinel myid " << ids[i] << "\n"
           << "sentinel monitor " << name << " 127.0.0.1 " << data_[0].address.port << " 2\n"
           << "sentinel down-after-milliseconds " << name << " " << options_.down_after.count() << "\n"
           << "sentinel failover-timeout " << name << " " << options_.failover_timeout.count() << "\n"
           << "sentinel parallel-syncs " << name << " 1\n"
           << "sentinel known-replica " << name << " 127.0.0.1 " << data_[1].address.port << "\n";
      if (!options_.password.empty()) conf << "sentinel auth-pass " << name << " " << options_.password << "\n";
      for (std::size_t j = 0; j < sentinels_.size(); ++j)
        if (j != i)
          conf << "sentinel known-sentinel " << name << " 127.0.0.1 " << sentinels_[j].address.port << " " << ids[j]
               << "\n";
      const auto file = s.dir / "sentinel.conf";
      write_file(file, conf.str());
      s.server = std::make_unique<ChildServer>(std::vector<std::string>{"redis-sentinel", file.string()},
                                               ChildServer::NoWait{}, SIGKILL);
    }
    for (auto& s : sentinels_) s.server->wait_until_accepting(s.address.port, kProcessStartLimit);
  });
  wait_until("a healthy Sentinel set", start, options_.start_limit, [this] { return health_problem(); });
}

RedisSentinelSet::~RedisSentinelSet() = default;

std::string RedisSentinelSet::health_problem() const {
  if (auto p = replica_link_problem(replica().port, options_.password); !p.empty()) return p;
  const auto& name = options_.master_name;
  for (const auto& s : sentinels_) {
    const auto port = s.address.port;
    const auto at = " according to the sentinel on " + s.address.text();
    const auto master = redis_command(port, {"SENTINEL", "MASTER", name});
    if (pair_field(master, "port") != std::to_string(primary().port))
      return "the primary is " + pair_field(master, "ip") + ":" + pair_field(master, "port") + at;
    if (pair_field(master, "flags") != "master") return "the primary's flags are " + pair_field(master, "flags") + at;
    if (pair_field(master, "num-slaves") != "1") return pair_field(master, "num-slaves") + " replicas" + at;
    if (pair_field(master, "num-other-sentinels") != "2")
      return pair_field(master, "num-other-sentinels") + " other sentinels" + at;
    const auto replicas = redis_command(port, {"SENTINEL", "REPLICAS", name});
    if (replicas.elements.size() != 1 || pair_field(replicas.elements[0], "flags") != "slave")
      return "the replicas are " + replicas.describe() + at;
    const auto quorum = redis_command(port, {"SENTINEL", "CKQUORUM", name});
    if (quorum.is_error()) return "CKQUORUM: " + quorum.text + at;
  }
  return {};
}

std::vector<RedisAddress> RedisSentinelSet::sentinels() const {
  std::vector<RedisAddress> out;
  for (const auto& s : sentinels_) out.push_back(s.address);
  return out;
}

RedisAddress RedisSentinelSet::primary() const { return data_[primary_].address; }

RedisAddress RedisSentinelSet::replica() const { return data_[1 - primary_].address; }

RedisReply RedisSentinelSet::command(unsigned short port, const std::vector<std::string>& args) const {
  return redis_command(port, args, options_.password);
}

RedisAddress RedisSentinelSet::kill_primary() {
  data_[primary_].server->stop();  // its stop signal is SIGKILL
  return primary();
}

RedisAddress RedisSentinelSet::pause_primary() {
  data_[primary_].server->signal(SIGSTOP);
  return primary();
}

void RedisSentinelSet::resume(const RedisAddress& node) {
  for (auto& p : data_)
    if (p.address == node) return p.server->signal(SIGCONT);
  throw std::runtime_error(node.text() + " is not the primary or the replica of this set");
}

RedisAddress RedisSentinelSet::wait_for_failover(milliseconds limit) {
  const auto candidate = replica();
  const auto what = "the failover of " + primary().text() + " to " + candidate.text();
  wait_until(what, steady_clock::now(), limit, [&]() -> std::string {
    for (const auto& s : sentinels_) {
      const auto addr = redis_command(s.address.port, {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", options_.master_name});
      if (addr.elements.size() != 2 || addr.elements[1].text != std::to_string(candidate.port))
        return "the sentinel on " + s.address.text() + " names " + addr.describe();
    }
    const auto role = command(candidate.port, {"ROLE"});
    if (role.elements.empty() || role.elements[0].text != "master")
      return candidate.text() + " answers ROLE with " + role.describe();
    return {};
  });
  primary_ = 1 - primary_;
  return candidate;
}

}  // namespace credkit::test
