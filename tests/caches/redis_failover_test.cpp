// RedisTokenCache on real Redis topologies (tests/support/redis_topologies.hpp): a 3+3 Redis
// Cluster and a primary + replica + 3 sentinels. Keys are routed to the primary serving their
// slot, MOVED is followed, and a primary that dies (SIGKILL) or hangs (SIGSTOP) under load,
// its replica promoted, loses no caller, keeps every call within its timeout and keeps the
// fetches within the documented bound (docs/caches.md, "What happens in a failover").
#include <credkit/caches/cached_token_source.hpp>
#include <credkit/caches/redis_token_cache.hpp>
#include <credkit/credkit.hpp>

#include "caches/redis_test_support.hpp"
#include "support/redis_topologies.hpp"

#include <boost/asio/thread_pool.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

using namespace credkit;
using namespace std::chrono_literals;
using test::RedisAddress;
using test::RedisCluster;
using test::RedisSentinelSet;

namespace {

constexpr std::chrono::milliseconds token_lifetime = 3s;

RedisTokenCacheOptions topology_options(RedisDeployment deployment, const std::vector<RedisAddress>& nodes) {
  RedisTokenCacheOptions o;
  o.deployment = deployment;
  o.host = nodes.front().host;
  o.port = nodes.front().port;
  for (std::size_t i = 1; i < nodes.size(); ++i) o.nodes.push_back(nodes[i].text());
  o.keys = {CacheEncryptionKey::from_raw(std::vector<unsigned char>(32, 0x5a))};
  // Generous enough for a sanitizer build on a loaded machine (a healthy Redis must never time
  // out, or the "one fetch per expiry before the outage" check would see a fallback), short
  // enough that a hung primary is given up on well within a caller's 10 s.
  o.connect_timeout = 1s;
  o.command_timeout = 1s;
  o.retry_after_failure = 200ms;
  o.wait_timeout = 5s;
  o.lock_ttl = 5s;
  o.expiry_margin = 300ms;
  return o;
}

/// What a fleet under load saw.
struct FleetResult {
  long calls = 0;
  long errors = 0;   // get_token failed: a caller lost
  long expired = 0;  // a token past its expiry handed out
  std::chrono::milliseconds max_wait{0};
  int fetches = 0;
  int tokens = 0;             // distinct tokens seen
  int healthy_duplicates = 0;  // a key fetched again within half a lifetime, before the outage
  int duplicates = 0;          // the same over the whole run
  std::map<int, int> duplicates_by_user;
  RedisTokenCache::Stats stats;  // summed over the instances (push_up: all)
};

/// `instances` caches (each a bot instance) with one on-demand credential per user, and two
/// caller threads per instance asking for tokens in turn, for `before`; then `outage()` takes
/// a primary down, `recover()` waits for the failover, and the callers go on for `after`.
template <class Outage, class Recover>
FleetResult run_fleet(const RedisTokenCacheOptions& o, int instances, int users, std::chrono::milliseconds before,
                      Outage outage, Recover recover, std::chrono::milliseconds after) {
  cachetest::CountingTokenService service(token_lifetime, 1ms);
  boost::asio::thread_pool pool(2);
  RefreshPolicy policy;
  policy.min_validity = 1s;
  policy.min_refresh_interval = 100ms;
  const int port = service.port();
  std::vector<std::shared_ptr<RedisTokenCache>> caches;
  std::vector<std::vector<std::shared_ptr<TokenCredential>>> creds(static_cast<std::size_t>(instances));
  for (int i = 0; i < instances; ++i) {
    caches.push_back(RedisTokenCache::create(pool.get_executor(), o));
    for (int u = 0; u < users; ++u) {
      // One blocking fetcher per credential, as a bot has: a blocking fetcher runs at most a few
      // calls at once (core/fetcher.hpp), and every credential may fetch directly in a failover.
      auto inner = Fetcher::blocking([port](const FetchContext&) { return cachetest::http_get_token(port); });
      creds[static_cast<std::size_t>(i)].push_back(make_cached_credential(
          pool.get_executor(), caches.back(), TokenCacheKey("user-" + std::to_string(u), {"chat"}), inner, policy));
    }
  }
  std::mutex mutex;
  std::map<std::string, std::pair<int, std::chrono::steady_clock::time_point>> first_seen;  // token -> user, when
  std::atomic<long> calls{0}, errors{0}, expired{0};
  std::atomic<long long> max_wait_ms{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> callers;
  for (int i = 0; i < instances; ++i)
    for (int t = 0; t < 2; ++t)
      callers.emplace_back([&, i, t] {
        auto& mine = creds[static_cast<std::size_t>(i)];
        std::size_t u = static_cast<std::size_t>(t);
        while (!stop) {
          const auto start = std::chrono::steady_clock::now();
          try {
            const auto token = mine[u]->get_token(10s);
            ++calls;
            if (token.expires_on() <= std::chrono::system_clock::now()) ++expired;
            std::lock_guard lock(mutex);
            first_seen.try_emplace(token.token(), static_cast<int>(u), start);
          } catch (const std::exception& e) {
            if (errors++ == 0) MESSAGE("first lost caller: " << std::string(e.what()));
          }
          const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
          long long seen = max_wait_ms;
          while (waited.count() > seen && !max_wait_ms.compare_exchange_weak(seen, waited.count())) {
          }
          u = (u + 2) % mine.size();
          std::this_thread::sleep_for(2ms);
        }
      });
  std::this_thread::sleep_for(before);
  const auto outage_at = std::chrono::steady_clock::now();
  outage();
  recover();
  std::this_thread::sleep_for(after);
  stop = true;
  for (auto& c : callers) c.join();

  FleetResult r;
  r.calls = calls;
  r.errors = errors;
  r.expired = expired;
  r.max_wait = std::chrono::milliseconds(max_wait_ms.load());
  r.fetches = service.requests();
  r.tokens = static_cast<int>(first_seen.size());
  // Per user, tokens in the order they were first seen: a token first seen within half a
  // lifetime of the user's previous one was a second fetch for the same expiry.
  std::map<int, std::vector<std::chrono::steady_clock::time_point>> per_user;
  for (auto& [token, seen] : first_seen) per_user[seen.first].push_back(seen.second);
  for (auto& [user, times] : per_user) {
    std::sort(times.begin(), times.end());
    for (std::size_t k = 1; k < times.size(); ++k) {
      if (times[k] - times[k - 1] >= token_lifetime / 2) continue;
      ++r.duplicates;
      ++r.duplicates_by_user[user];
      if (times[k] < outage_at) ++r.healthy_duplicates;
    }
  }
  r.stats.push_up = true;
  for (auto& c : caches) {
    const auto s = c->stats();
    r.stats.redirects += s.redirects;
    r.stats.topology_reads += s.topology_reads;
    r.stats.failovers_seen += s.failovers_seen;
    r.stats.direct_fetches += s.direct_fetches;
    r.stats.push_wakeups += s.push_wakeups;
    r.stats.push_up = r.stats.push_up && s.push_up;
  }
  for (auto& list : creds)
    for (auto& c : list) c->close();
  creds.clear();
  caches.clear();
  pool.join();
  return r;
}

void report(const char* what, const FleetResult& r, std::chrono::milliseconds failover) {
  MESSAGE(std::string(what) << ": " << r.calls << " calls, callers lost " << r.errors << ", expired tokens " << r.expired
               << ", max wait " << r.max_wait.count() << " ms, failover " << failover.count() << " ms, fetches "
               << r.fetches << " (" << r.tokens << " tokens, " << r.duplicates << " for an expiry already fetched, "
               << r.healthy_duplicates << " of them before the outage), redirects " << r.stats.redirects
               << ", topology reads " << r.stats.topology_reads << ", +switch-master " << r.stats.failovers_seen
               << ", direct fetches " << r.stats.direct_fetches << ", push wake-ups " << r.stats.push_wakeups);
}

/// The documented guarantees (docs/caches.md, "What happens in a failover").
void check_guarantees(const FleetResult& r, int instances, int users, std::chrono::milliseconds failover) {
  CHECK(r.calls > 0);
  CHECK(r.errors == 0);   // no caller lost
  CHECK(r.expired == 0);  // and none handed an expired token
  CHECK(r.max_wait < 10s);  // every call within its timeout (get_token's 10 s)
  CHECK(r.healthy_duplicates == 0);  // one fetch per key per expiry while Redis answers
  // During the failover: at most one more fetch per key per instance for each refresh a
  // credential makes in the window (tokens last 3 s, refreshed below 1 s left: every 2 s).
  const int refreshes_in_window = static_cast<int>(failover / 2s) + 2;
  CHECK(r.duplicates <= users * (instances - 1) * refreshes_in_window);
}

std::chrono::milliseconds since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t);
}

/// A cluster fleet while the primary serving user-0's slot is taken down by `take_down`
/// (kill_primary_of_slot or pause_primary_of_slot) and its replica promoted.
struct ClusterFailover {
  FleetResult fleet;
  test::FailedRedisPrimary failed;
  std::chrono::milliseconds failover{0};
};

template <class TakeDown>
ClusterFailover cluster_failover(RedisCluster& cluster, const RedisTokenCacheOptions& o, int instances, int users,
                                 std::chrono::milliseconds around, TakeDown take_down) {
  const int slot = test::redis_slot_of(cachetest::redis_name(o, TokenCacheKey("user-0", {"chat"}), "tok:"));
  ClusterFailover result;
  std::chrono::steady_clock::time_point down_at;
  result.fleet = run_fleet(
      o, instances, users, around,
      [&] {
        down_at = std::chrono::steady_clock::now();
        result.failed = take_down(slot);
      },
      [&] {
        cluster.wait_for_failover(result.failed);
        result.failover = since(down_at);
      },
      around);
  return result;
}

}  // namespace

TEST_CASE("RedisTokenCache on a Redis Cluster: keys go to the primary serving their slot; MOVED is followed") {
  RedisCluster cluster;
  boost::asio::thread_pool pool(2);
  auto o = topology_options(RedisDeployment::cluster, cluster.nodes());
  // The redirects followed also reach the metrics observer, one report each.
  struct RedirectCounter : MetricsObserver {
    std::atomic<std::uint64_t> redirects{0};
    void redis_redirect(std::string_view cache) override { redirects += cache == "cluster"; }
  };
  auto observer = std::make_shared<RedirectCounter>();
  o.metrics = observer;
  o.metrics_name = "cluster";
  auto cache = RedisTokenCache::create(pool.get_executor(), o);
  std::set<unsigned short> primaries_used;
  for (int u = 0; u < 24; ++u) {
    const TokenCacheKey k("routed-" + std::to_string(u));
    const AccessToken t{"routed-token-" + std::to_string(u) + "-0123456789abcdef", std::chrono::system_clock::now() + 1h};
    cachetest::get_within(cache->async_put(k, t, boost::asio::use_future));
    const auto read = cachetest::get_within(cache->async_get(k, boost::asio::use_future));
    REQUIRE_MESSAGE(read.has_value(), "key " << u);
    CHECK(read->token == t.token);
    // The token and the lock share the key's hash tag, hence its slot and its primary.
    const auto name = cachetest::redis_name(o, k, "tok:");
    const int slot = test::redis_slot_of(name);
    CHECK(slot == test::redis_slot_of(cachetest::redis_name(o, k, "lock:")));
    const auto primary = cluster.primary_for_slot(slot);
    CHECK(cluster.command(primary.port, {"EXISTS", name}).integer == 1);
    primaries_used.insert(primary.port);
  }
  CHECK(primaries_used.size() == 3);
  CHECK(cache->stats().topology_reads >= 1);
  CHECK(cache->stats().redirects == 0);  // the map was right

  // A manual failover (CLUSTER FAILOVER on a replica) moves a slot's primary: the cache's map
  // is stale, Redis answers MOVED, the cache follows it and reads the map again.
  const TokenCacheKey k("routed-0");
  const int slot = test::redis_slot_of(cachetest::redis_name(o, k, "tok:"));
  const auto old_primary = cluster.primary_for_slot(slot);
  RedisAddress replica;
  for (const auto& range : cluster.slot_map(cluster.seed()))
    if (slot >= range.first && slot <= range.last && !range.replicas.empty()) replica = range.replicas.front();
  REQUIRE(replica.port != 0);
  CHECK(cluster.command(replica.port, {"CLUSTER", "FAILOVER"}).text == "OK");
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (cluster.primary_for_slot(slot) == old_primary && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  REQUIRE(cluster.primary_for_slot(slot) == replica);
  CHECK(cachetest::get_within(cache->async_get(k, boost::asio::use_future)).has_value());
  CHECK(cache->stats().redirects >= 1);
  CHECK(observer->redirects == cache->stats().redirects);
  CHECK(cache->stats().direct_fetches == 0);
  cache.reset();
  pool.join();
}

TEST_CASE("RedisTokenCache on a Redis Cluster: a primary killed under load, its replica promoted") {
  // cluster-require-full-coverage no (docs/caches.md recommends it): the other primaries keep
  // serving while the failed one's slots have none. (With Redis' default every node answers
  // CLUSTERDOWN then, and every key is fetched directly: the SIGSTOP case below.)
  test::RedisClusterOptions partial;
  partial.require_full_coverage = false;
  RedisCluster cluster(partial);
  const auto o = topology_options(RedisDeployment::cluster, cluster.nodes());
  const int instances = 3, users = 12;
  // The primary serving user-0's slot dies; the other primaries keep serving.
  const auto [r, failed, failover] =
      cluster_failover(cluster, o, instances, users, 2500ms, [&](int slot) { return cluster.kill_primary_of_slot(slot); });
  report("cluster, primary SIGKILLed", r, failover);
  check_guarantees(r, instances, users, failover);
  CHECK(r.stats.topology_reads >= 2);  // the map was read again after the loss
  // Only keys served by the failed primary were fetched twice: the others kept using Redis.
  for (int u = 0; u < users; ++u) {
    const int s = test::redis_slot_of(cachetest::redis_name(o, TokenCacheKey("user-" + std::to_string(u), {"chat"}), "tok:"));
    const bool on_failed = std::any_of(failed.ranges.begin(), failed.ranges.end(),
                                       [&](const test::RedisSlotRange& range) { return s >= range.first && s <= range.last; });
    if (!on_failed) CHECK_MESSAGE(!r.duplicates_by_user.count(u), "user-" << u << " (slot " << s << ")");
  }
}

TEST_CASE("RedisTokenCache on a Redis Cluster: a primary hung (SIGSTOP) under load: calls stay within their timeouts") {
  RedisCluster cluster;
  const auto o = topology_options(RedisDeployment::cluster, cluster.nodes());
  const int instances = 2, users = 8;
  const auto [r, paused, failover] =
      cluster_failover(cluster, o, instances, users, 2000ms, [&](int slot) { return cluster.pause_primary_of_slot(slot); });
  cluster.resume(paused.address);
  report("cluster, primary SIGSTOPped", r, failover);
  check_guarantees(r, instances, users, failover);
}

TEST_CASE("RedisTokenCache through Sentinel: the primary killed under load, the replica promoted") {
  RedisSentinelSet sentinels;
  auto o = topology_options(RedisDeployment::sentinel, sentinels.sentinels());
  o.sentinel_master_name = sentinels.master_name();
  const int instances = 3, users = 12;
  std::chrono::steady_clock::time_point down_at;
  std::chrono::milliseconds failover{0};
  const auto r = run_fleet(
      o, instances, users, 2500ms,
      [&] {
        down_at = std::chrono::steady_clock::now();
        sentinels.kill_primary();
      },
      [&] {
        sentinels.wait_for_failover();
        failover = since(down_at);
      },
      2500ms);
  report("sentinel, primary SIGKILLed", r, failover);
  check_guarantees(r, instances, users, failover);
  // Each instance found the primary, then the new one: told by +switch-master, or asking again.
  CHECK(r.stats.topology_reads + r.stats.failovers_seen >= 2 * instances);
}

TEST_CASE("RedisTokenCache through Sentinel: a wrong master name is a clear error, and calls fetch directly") {
  RedisSentinelSet sentinels;
  boost::asio::thread_pool pool(1);
  auto o = topology_options(RedisDeployment::sentinel, sentinels.sentinels());
  o.sentinel_master_name = "no-such-primary";
  auto cache = RedisTokenCache::create(pool.get_executor(), o);
  const auto e = cachetest::get_error(*cache, TokenCacheKey("anyone"));
  CHECK(e.code() == make_error_code(errc::cache_unavailable));
  CHECK(std::string(e.what()).find("no-such-primary") != std::string::npos);
  CHECK(std::string(e.what()).find("sentinel_master_name") != std::string::npos);
  cache.reset();
  pool.join();
}
