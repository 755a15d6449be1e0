#include <credkit/caches/memory_token_cache.hpp>
#include <credkit/core/error.hpp>

#include "caches/cache_time.hpp"
#include "core/metrics_name.hpp"

#include <functional>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace credkit {

struct MemoryTokenCache::Impl {
  struct Entry {
    std::string key;
    AccessToken token;
    std::chrono::system_clock::time_point stale_at;
  };
  struct Shard {
    mutable std::mutex mutex;
    std::list<Entry> lru;  // front: most recently used
    std::unordered_map<std::string_view, std::list<Entry>::iterator> index;
  };

  MemoryTokenCacheOptions options;
  std::size_t per_shard = 1;
  std::vector<Shard> shards;

  Shard& shard_for(std::string_view key) {
    return shards[std::hash<std::string_view>{}(key) & (shards.size() - 1)];
  }

  std::optional<AccessToken> get(const std::string& key) {
    auto& s = shard_for(key);
    const auto now = options.clock->now();
    std::lock_guard lock(s.mutex);
    auto it = s.index.find(key);
    if (it == s.index.end()) return std::nullopt;
    if (it->second->stale_at <= now) {
      auto entry = it->second;
      s.index.erase(it);
      s.lru.erase(entry);
      return std::nullopt;
    }
    s.lru.splice(s.lru.begin(), s.lru, it->second);
    return it->second->token;
  }

  void put(std::string key, AccessToken token, std::optional<std::chrono::milliseconds> ttl) {
    const auto now = options.clock->now();
    const auto stale_at = detail::stale_point(token.expires_on, options.expiry_margin, now, ttl);
    auto& s = shard_for(key);
    std::lock_guard lock(s.mutex);
    remove_locked(s, key);
    if (stale_at <= now) return;  // already inside the margin: nothing worth keeping
    s.lru.push_front(Entry{std::move(key), std::move(token), stale_at});
    s.index.emplace(s.lru.front().key, s.lru.begin());
    while (s.lru.size() > per_shard) {
      s.index.erase(s.lru.back().key);
      s.lru.pop_back();
    }
  }

  void erase(const std::string& key) {
    auto& s = shard_for(key);
    std::lock_guard lock(s.mutex);
    remove_locked(s, key);
  }

  /// Drops `key`'s entry from `s`, whose mutex the caller holds.
  static void remove_locked(Shard& s, const std::string& key) {
    if (auto it = s.index.find(key); it != s.index.end()) {
      auto entry = it->second;
      s.index.erase(it);
      s.lru.erase(entry);
    }
  }
};

void MemoryTokenCacheOptions::validate() const {
  constexpr const char* self = "MemoryTokenCacheOptions";
  if (max_entries == 0) detail::reject_option(self, "max_entries", ">= 1", "0");
  if (shards < 1 || shards > 256) detail::reject_option(self, "shards", "in 1..256", std::to_string(shards));
  detail::require_non_negative(expiry_margin, self, "expiry_margin", "nothing is stored");
  detail::check_metrics_name(metrics_name, "MemoryTokenCacheOptions::metrics_name");
}

std::shared_ptr<MemoryTokenCache> MemoryTokenCache::create(executor_type executor, MemoryTokenCacheOptions options) {
  options.validate();
  return std::shared_ptr<MemoryTokenCache>(new MemoryTokenCache(std::move(executor), std::move(options)));
}

MemoryTokenCache::MemoryTokenCache(executor_type executor, MemoryTokenCacheOptions options)
    : TokenCache(std::move(executor), options.clock, options.coalesce_in_process, options.metrics,
                 options.metrics_name),
      impl_(std::make_unique<Impl>()) {
  if (!options.clock) options.clock = Clock::system();
  std::size_t n = 1;
  const std::size_t wanted = options.shards;  // 1..256 (validated)
  while (n < wanted) n <<= 1;
  // Never more shards than entries, so the bound holds exactly when max_entries is small.
  while (n > 1 && n > options.max_entries) n >>= 1;
  impl_->per_shard = (options.max_entries + n - 1) / n;
  impl_->shards = std::vector<Impl::Shard>(n);
  impl_->options = std::move(options);
}

MemoryTokenCache::~MemoryTokenCache() = default;

std::optional<AccessToken> MemoryTokenCache::get(const TokenCacheKey& key) const {
  auto token = impl_->get(key.str());
  report_lookup(token ? CacheLookup::hit : CacheLookup::miss);
  return token;
}

void MemoryTokenCache::put(const TokenCacheKey& key, AccessToken value, std::optional<std::chrono::milliseconds> ttl) {
  if (ttl && ttl->count() < 0)
    throw_error(errc::invalid_argument, "MemoryTokenCache::put: ttl must be >= 0 ms (milliseconds::max(): no "
                                        "explicit limit) (got " + detail::describe(*ttl) + ")");
  impl_->put(key.str(), std::move(value), ttl);
}

void MemoryTokenCache::erase(const TokenCacheKey& key) { impl_->erase(key.str()); }

std::size_t MemoryTokenCache::size() const {
  std::size_t n = 0;
  for (auto& s : impl_->shards) {
    std::lock_guard lock(s.mutex);
    n += s.lru.size();
  }
  return n;
}

void MemoryTokenCache::do_get(std::string key,
                              std::function<void(std::exception_ptr, std::optional<AccessToken>)> done) {
  done(nullptr, impl_->get(key));
}

void MemoryTokenCache::do_put(std::string key, AccessToken value, std::optional<std::chrono::milliseconds> ttl,
                              std::function<void(std::exception_ptr)> done) {
  impl_->put(std::move(key), std::move(value), ttl);
  done(nullptr);
}

void MemoryTokenCache::do_erase(std::string key, std::function<void(std::exception_ptr)> done) {
  impl_->erase(key);
  done(nullptr);
}

}  // namespace credkit
