#include "caches/redis_router.hpp"

#include <credkit/core/error.hpp>
#include <credkit/core/log.hpp>

#include <algorithm>
#include <initializer_list>

namespace credkit::detail {

namespace {

using Words = std::initializer_list<std::string_view>;

std::string_view error_text(const redisReply& r) { return {r.str, r.len}; }

bool is_error(const RedisReply& r, std::string_view prefix) {
  return r->type == REDIS_REPLY_ERROR && error_text(*r).starts_with(prefix);
}

/// AUTH with `username` (ACL) or the password alone; nothing when no password.
void authenticate(RedisConnection& c, const std::string& username, const std::string& password, const char* whom) {
  if (password.empty()) return;
  auto r = username.empty() ? c.command(Words{"AUTH", password}) : c.command(Words{"AUTH", username, password});
  if (r->type == REDIS_REPLY_ERROR)
    throw_error(errc::cache_unavailable, std::string(whom) + " at " + c.where().endpoint + " refused AUTH (" +
                                             std::string(error_text(*r)) + "); check username and password");
}

}  // namespace

RedisRouter::RedisRouter(Settings settings) : settings_(std::move(settings)) {
  if (settings_.deployment == RedisDeployment::single) primary_ = settings_.seeds.front();
}

std::shared_ptr<const RedisEndpoint> RedisRouter::endpoint_for(const RedisNodeAddress& at) {
  const std::string name = at.text();
  std::lock_guard lock(mutex_);
  if (auto it = endpoints_.find(name); it != endpoints_.end()) return it->second;
  // Nodes come and go in a cluster's life; the table is bounded by clearing it (each entry is
  // rebuilt on use).
  if (endpoints_.size() >= 1024) endpoints_.clear();
  auto e = std::make_shared<RedisEndpoint>(*settings_.base);
  e->host = at.host;
  e->port = at.port;
  e->endpoint = name;
  // A certificate names the host the node was reached by, unless one name was configured.
  if (settings_.base->server_name.empty()) e->server_name = at.host;
  endpoints_.emplace(name, e);
  return e;
}

std::unique_ptr<RedisConnection> RedisRouter::connect_data(const RedisNodeAddress& at) {
  auto c = RedisConnection::open(endpoint_for(at));
  authenticate(*c, settings_.username, settings_.password, "Redis");
  if (settings_.database != 0) {
    const auto db = std::to_string(settings_.database);
    auto r = c->command(Words{"SELECT", db});
    if (r->type == REDIS_REPLY_ERROR)
      throw_error(errc::cache_unavailable, "Redis at " + at.text() + " refused SELECT " + db + " (" +
                                               std::string(error_text(*r)) + ")");
  }
  return c;
}

std::unique_ptr<RedisConnection> RedisRouter::take_idle(const std::string& node) {
  while (true) {
    std::unique_ptr<RedisConnection> c;
    {
      std::lock_guard lock(mutex_);
      auto it = idle_.find(node);
      if (it == idle_.end() || it->second.empty()) return nullptr;
      c = std::move(it->second.back());
      it->second.pop_back();
    }
    if (c->idle_alive()) return c;  // one Redis closed meanwhile is dropped (outside the lock)
  }
}

void RedisRouter::give_back(std::unique_ptr<RedisConnection> c) {
  std::lock_guard lock(mutex_);
  auto& pool = idle_[c->where().endpoint];
  if (pool.size() < settings_.pool_size) pool.push_back(std::move(c));
}

std::optional<RedisNodeAddress> RedisRouter::known_node_for(std::uint16_t slot) {
  std::lock_guard lock(mutex_);
  if (settings_.deployment == RedisDeployment::cluster) {
    if (const auto* owner = slots_.owner(slot)) return *owner;
    return std::nullopt;
  }
  return primary_;
}

RedisNodeAddress RedisRouter::node_for(std::uint16_t slot) {
  bool stale;
  {
    std::lock_guard lock(mutex_);
    stale = settings_.deployment == RedisDeployment::cluster ? slots_stale_ || slots_.empty() : !primary_;
  }
  if (stale) {
    // One reader at a time; while it reads, others go by what is known (a stale owner answers
    // with MOVED), and wait for it only when nothing is known.
    std::unique_lock reading(reading_topology_, std::try_to_lock);
    if (!reading.owns_lock()) {
      if (auto known = known_node_for(slot)) return *known;
      reading.lock();
    }
    if (settings_.deployment == RedisDeployment::cluster) {
      std::unique_lock lock(mutex_);
      if (slots_stale_ || slots_.empty()) {
        lock.unlock();
        read_slot_map();
      }
    } else {
      std::unique_lock lock(mutex_);
      if (!primary_) {
        lock.unlock();
        auto found = ask_sentinels();
        lock.lock();
        primary_ = std::move(found);
      }
    }
  }
  if (auto known = known_node_for(slot)) return *known;
  throw_error(errc::cache_unavailable, "Redis Cluster has no primary for slot " + std::to_string(slot) +
                                           " (the cluster is failing over, or its slots are not all assigned)");
}

void RedisRouter::read_slot_map() {
  std::vector<RedisNodeAddress> candidates;
  {
    std::lock_guard lock(mutex_);
    candidates = slots_.primaries();
  }
  for (const auto& seed : settings_.seeds)
    if (std::find(candidates.begin(), candidates.end(), seed) == candidates.end()) candidates.push_back(seed);
  std::string why = "no node answered";
  for (const auto& node : candidates) {
    try {
      auto c = take_idle(node.text());
      if (!c) c = connect_data(node);
      auto r = c->command(Words{"CLUSTER", "SLOTS"});
      if (r->type == REDIS_REPLY_ERROR) {
        why = node.text() + " refused CLUSTER SLOTS (" + std::string(error_text(*r)) +
              "; is it a cluster node? deployment = cluster needs one)";
        continue;
      }
      RedisSlotMap map;
      if (!map.load(*r, node)) {
        why = node.text() + " sent a CLUSTER SLOTS reply credkit cannot read";
        continue;
      }
      give_back(std::move(c));
      ++counters_.topology_reads;
      std::lock_guard lock(mutex_);
      slots_ = std::move(map);
      slots_stale_ = false;
      return;
    } catch (const Error& e) {
      why = e.what();
    }
  }
  throw_error(errc::cache_unavailable, "cannot read Redis Cluster's slot map: " + why);
}

RedisNodeAddress RedisRouter::ask_sentinels() {
  const auto& sentinels = settings_.seeds;
  std::string why = "no sentinel answered";
  for (std::size_t i = 0; i < sentinels.size(); ++i) {
    const std::size_t index = (next_sentinel_ + i) % sentinels.size();
    const auto& sentinel = sentinels[index];
    try {
      auto s = RedisConnection::open(endpoint_for(sentinel));
      authenticate(*s, settings_.sentinel_username, settings_.sentinel_password, "Sentinel");
      auto r = s->command(Words{"SENTINEL", "get-master-addr-by-name", settings_.master_name});
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
          r->element[1]->type != REDIS_REPLY_STRING) {
        why = "sentinel " + sentinel.text() + " does not know a primary named '" + settings_.master_name +
              "' (sentinel_master_name)";
        continue;
      }
      const auto primary = parse_node_address(std::string(error_text(*r->element[0])) + ":" +
                                              std::string(error_text(*r->element[1])));
      if (!primary) {
        why = "sentinel " + sentinel.text() + " named a primary address credkit cannot read";
        continue;
      }
      // A sentinel may lag behind a failover: the node must say it is the primary.
      auto c = connect_data(*primary);
      auto role = c->command(Words{"ROLE"});
      if (role->type != REDIS_REPLY_ARRAY || role->elements == 0 || role->element[0]->type != REDIS_REPLY_STRING ||
          error_text(*role->element[0]) != "master") {
        why = primary->text() + " (named by sentinel " + sentinel.text() + ") is not a primary now";
        continue;
      }
      give_back(std::move(c));
      ++counters_.topology_reads;
      next_sentinel_ = index;  // keep asking the one that answered
      return *primary;
    } catch (const Error& e) {
      why = e.what();
    }
  }
  throw_error(errc::cache_unavailable, "cannot find the Redis primary '" + settings_.master_name +
                                           "' through Sentinel: " + why);
}

bool RedisRouter::known_member(const RedisNodeAddress& to) {
  {
    std::lock_guard lock(mutex_);
    if (slots_.member(to)) return true;
  }
  // A node added since the map was read (resharding, a new replica): read it again, once.
  std::lock_guard reading(reading_topology_);
  read_slot_map();
  std::lock_guard lock(mutex_);
  return slots_.member(to);
}

void RedisRouter::forget(const RedisNodeAddress& at) {
  std::vector<std::unique_ptr<RedisConnection>> dropped;  // destroyed outside the lock
  std::lock_guard lock(mutex_);
  if (auto it = idle_.find(at.text()); it != idle_.end()) dropped = std::move(it->second), idle_.erase(it);
  if (settings_.deployment == RedisDeployment::cluster) slots_stale_ = true;
  if (settings_.deployment == RedisDeployment::sentinel && primary_ == at) primary_.reset();
}

void RedisRouter::switch_master(std::string_view payload) {
  // "<name> <old host> <old port> <new host> <new port>"
  std::vector<std::string_view> words;
  while (!payload.empty() && words.size() < 6) {
    const auto space = payload.find(' ');
    words.push_back(payload.substr(0, space));
    payload = space == std::string_view::npos ? std::string_view{} : payload.substr(space + 1);
  }
  if (words.size() != 5 || words[0] != settings_.master_name) return;
  const auto to = parse_node_address(std::string(words[3]) + ":" + std::string(words[4]));
  if (!to) return;
  std::vector<std::unique_ptr<RedisConnection>> dropped;
  std::lock_guard lock(mutex_);
  if (primary_ == to) return;
  if (primary_) {
    if (auto it = idle_.find(primary_->text()); it != idle_.end()) dropped = std::move(it->second), idle_.erase(it);
  }
  // Verified on the next command: a connection to it that answers READONLY sends us back to
  // the sentinels.
  primary_ = *to;
  ++counters_.failovers_seen;
}

RedisReply RedisRouter::run(std::string_view key, Args args, std::unique_ptr<RedisConnection> started) {
  const bool cluster = settings_.deployment == RedisDeployment::cluster;
  const std::uint16_t slot = cluster ? redis_key_slot(key) : 0;
  std::optional<RedisNodeAddress> redirected;  // MOVED or ASK target, for the next attempt
  bool asking = false;
  int redirects = 0;
  bool relearned = settings_.deployment == RedisDeployment::single;  // one retry after the topology moved
  while (true) {
    std::unique_ptr<RedisConnection> c = std::move(started);
    RedisNodeAddress at;
    RedisReply r;
    try {
      if (c) {
        at = {c->where().host, c->where().port};
        r = c->finish();
      } else {
        at = redirected ? *redirected : node_for(slot);
        c = take_idle(at.text());
        if (!c) c = connect_data(at);
        if (asking) {
          auto ok = c->command(Words{"ASKING"});
          if (ok->type == REDIS_REPLY_ERROR) r = std::move(ok);
        }
        if (!r) r = c->command(args);
      }
    } catch (const Error&) {
      c.reset();  // a failed connection is never reused
      if (!at.host.empty()) forget(at);
      if (relearned) throw;
      relearned = true;
      redirected.reset();
      asking = false;
      continue;
    }
    give_back(std::move(c));
    if (r->type != REDIS_REPLY_ERROR) return r;
    if (cluster) {
      if (auto redirect = parse_redirect(error_text(*r), at)) {
        if (++redirects > settings_.max_redirects)
          throw_error(errc::cache_unavailable, "Redis Cluster redirected a command more than max_redirects (" +
                                                   std::to_string(settings_.max_redirects) + ") times; last to " +
                                                   redirect->to.text());
        if (!known_member(redirect->to))
          throw_error(errc::cache_unavailable, "Redis at " + at.text() + " redirected a command to " +
                                                   redirect->to.text() +
                                                   ", which the cluster's slot map does not list; not followed");
        ++counters_.redirects;
        if (settings_.on_redirect) settings_.on_redirect();
        asking = redirect->kind == RedisRedirect::Kind::ask;
        if (!asking) {
          std::lock_guard lock(mutex_);
          slots_.moved(redirect->slot, redirect->to);
          slots_stale_ = true;  // one slot moved: others may have too (a failover, resharding)
        }
        redirected = std::move(redirect->to);
        continue;
      }
    }
    // A cluster mid-failover (CLUSTERDOWN, TRYAGAIN) or a primary turned replica (READONLY):
    // learn the topology again and retry once; the error stands after that.
    const bool moved_under_us = is_error(r, "READONLY") || is_error(r, "CLUSTERDOWN") || is_error(r, "TRYAGAIN") ||
                                is_error(r, "MASTERDOWN") || is_error(r, "LOADING");
    if (moved_under_us && !relearned) {
      forget(at);
      relearned = true;
      redirected.reset();
      asking = false;
      continue;
    }
    return r;
  }
}

std::optional<RedisNodeAddress> RedisRouter::node_of(std::string_view key) {
  return known_node_for(settings_.deployment == RedisDeployment::cluster ? redis_key_slot(key) : 0);
}

std::unique_ptr<RedisConnection> RedisRouter::try_start(std::string_view key, Args args) {
  const auto node = node_of(key);
  if (!node) return nullptr;
  auto c = take_idle(node->text());
  if (c) c->start(args);
  return c;
}

std::unique_ptr<RedisConnection> RedisRouter::connect_subscriber() {
  if (settings_.deployment == RedisDeployment::cluster) {
    std::vector<RedisNodeAddress> candidates;
    {
      std::lock_guard lock(mutex_);
      candidates = slots_.primaries();
    }
    candidates.insert(candidates.end(), settings_.seeds.begin(), settings_.seeds.end());
    std::string why = "no node";
    for (const auto& node : candidates) {
      try {
        return connect_data(node);
      } catch (const Error& e) {
        why = e.what();
      }
    }
    throw_error(errc::cache_unavailable, "cannot subscribe to any Redis Cluster node: " + why);
  }
  return connect_data(node_for(0));
}

std::unique_ptr<RedisConnection> RedisRouter::connect_sentinel() {
  std::string why = "no sentinel";
  for (const auto& sentinel : settings_.seeds) {
    try {
      auto s = RedisConnection::open(endpoint_for(sentinel));
      authenticate(*s, settings_.sentinel_username, settings_.sentinel_password, "Sentinel");
      return s;
    } catch (const Error& e) {
      why = e.what();
    }
  }
  throw_error(errc::cache_unavailable, "cannot reach any sentinel: " + why);
}

}  // namespace credkit::detail
