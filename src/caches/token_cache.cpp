#include <credkit/caches/token_cache.hpp>
#include <credkit/core/error.hpp>
#include <credkit/core/log.hpp>

#include "caches/cache_metrics.hpp"
#include "caches/cache_time.hpp"
#include "core/completion.hpp"
#include "core/token_admission.hpp"

#include <atomic>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace credkit {

namespace detail {
/// In-process single-flight: the callers of `async_get_or_fetch` waiting on one key.
struct FlightTable {
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<TokenCache::FetchDone>> waiting;
};
}  // namespace detail


TokenCache::TokenCache(executor_type executor, std::shared_ptr<Clock> clock, bool coalesce_in_process,
                       std::shared_ptr<MetricsObserver> metrics, std::string metrics_name)
    : executor_(std::move(executor)),
      clock_(clock ? std::move(clock) : Clock::system()),
      flights_(coalesce_in_process ? std::make_shared<detail::FlightTable>() : nullptr),
      metrics_(detail::make_cache_metrics(std::move(metrics), std::move(metrics_name))) {}

TokenCache::~TokenCache() = default;

void TokenCache::report_lookup(CacheLookup outcome) const noexcept {
  if (metrics_) metrics_->lookup(outcome);
}

bool TokenCache::fresh_enough(const AccessToken& token, std::chrono::milliseconds min_validity) const noexcept {
  return detail::has_validity_left(token.expires_on, clock_->now(), min_validity);
}

namespace {

/// What an operation without metrics reports: nothing.
struct NoReport {
  template <class... Results>
  void operator()(const std::exception_ptr&, const Results&...) const noexcept {}
};

/// The one way a cache operation starts: `done` posts the user's handler on `executor` (after
/// `check` looked at the results, if given, and `report` saw the final ones); `call(done)` runs
/// the backend hook, and an exception it throws completes the operation with that exception and
/// empty results. Outstanding work is held on `executor` from here until the handler has run
/// (core/completion.hpp), so the app's run() does not return while a cache lane works for it.
template <class... Results, class Call, class Report = NoReport>
void start_operation(TokenCache::executor_type executor,
                     boost::asio::any_completion_handler<void(std::exception_ptr, Results...)> handler, Call call,
                     std::type_identity_t<void (*)(std::exception_ptr&, Results&...)> check = nullptr,
                     Report report = {}) {
  detail::SharedCompleter<Results...> complete(std::move(executor), std::move(handler));
  std::function<void(std::exception_ptr, Results...)> done = [complete, check, report](std::exception_ptr e,
                                                                                      Results... results) {
    if (check) check(e, results...);
    report(e, results...);
    complete(std::move(e), std::move(results)...);
  };
  if (auto failure = detail::exception_from([&] { call(done); })) done(std::move(failure), Results{}...);
}

/// A record read back passes the token gate like any other token (token_admission.hpp).
void admit_record(std::exception_ptr& e, std::optional<AccessToken>& t) {
  if (!e && t) {
    if (auto bad = detail::admission_error(t->token, "token cache record")) e = std::move(bad), t.reset();
  }
}

}  // namespace

void TokenCache::start_get(std::shared_ptr<TokenCache> self, std::string key,
                           boost::asio::any_completion_handler<GetSignature> handler) {
  // The lookup is reported where it completes, before the handler is posted: the backend
  // calls `done` with none of its locks held that the observer could need.
  auto report = [metrics = self->metrics_](const std::exception_ptr& e, const std::optional<AccessToken>& t) noexcept {
    if (metrics) metrics->lookup(e ? CacheLookup::error : t ? CacheLookup::hit : CacheLookup::miss);
  };
  start_operation(
      self->executor_, std::move(handler), [&](const auto& done) { self->do_get(std::move(key), done); },
      &admit_record, std::move(report));
}

void TokenCache::start_put(std::shared_ptr<TokenCache> self, std::string key, AccessToken value,
                           std::optional<std::chrono::milliseconds> ttl,
                           boost::asio::any_completion_handler<PutSignature> handler) {
  start_operation(self->executor_, std::move(handler), [&](const auto& done) {
    if (ttl && ttl->count() < 0)
      throw_error(errc::invalid_argument, "TokenCache::async_put: ttl must be >= 0 ms (milliseconds::max(): no "
                                          "explicit limit) (got " + detail::describe(*ttl) + ")");
    detail::admit_token_text(value.token, "TokenCache::async_put");
    self->do_put(std::move(key), std::move(value), ttl, done);
  });
}

void TokenCache::start_erase(std::shared_ptr<TokenCache> self, std::string key,
                             boost::asio::any_completion_handler<EraseSignature> handler) {
  start_operation(self->executor_, std::move(handler),
                  [&](const auto& done) { self->do_erase(std::move(key), done); });
}

void TokenCache::start_get_or_fetch(std::shared_ptr<TokenCache> self, std::string key,
                                    std::chrono::milliseconds min_validity, UpstreamFetch fetch,
                                    boost::asio::any_completion_handler<FetchSignature> handler) {
  FetchDone mine = detail::SharedCompleter<AccessToken>(self->executor_, std::move(handler));
  if (!fetch) {
    mine(std::make_exception_ptr(Error(errc::invalid_argument, "TokenCache::async_get_or_fetch: fetch is empty")), {});
    return;
  }
  if (min_validity.count() < 0) {
    mine(std::make_exception_ptr(Error(errc::invalid_argument,
                                       "TokenCache::async_get_or_fetch: min_validity must be >= 0 ms "
                                       "(milliseconds::max(): a cached token is never used) (got " +
                                           detail::describe(min_validity) + ")")),
         {});
    return;
  }
  FetchDone done = mine;
  if (auto flights = self->flights_) {
    {
      std::lock_guard lock(flights->mutex);
      auto [it, leader] = flights->waiting.try_emplace(key);
      if (!leader) {
        it->second.push_back(std::move(mine));
        return;
      }
    }
    done = [flights, key, mine = std::move(mine)](std::exception_ptr e, AccessToken t) {
      std::vector<FetchDone> followers;
      {
        std::lock_guard lock(flights->mutex);
        auto it = flights->waiting.find(key);
        if (it != flights->waiting.end()) {
          followers = std::move(it->second);
          flights->waiting.erase(it);
        }
      }
      for (auto& f : followers) f(e, t);
      mine(std::move(e), std::move(t));
    };
  }
  // Exactly-once guard: a backend bug or a throw after `done` must not complete twice.
  auto once = std::make_shared<std::atomic<bool>>(false);
  FetchDone guarded = [once, done = std::move(done)](std::exception_ptr e, AccessToken t) {
    if (once->exchange(true)) return;
    if (!e) e = detail::admission_error(t.token, "TokenCache::async_get_or_fetch result");
    done(std::move(e), e ? AccessToken{} : std::move(t));
  };
  if (auto failure = detail::exception_from(
          [&] { self->do_get_or_fetch(std::move(key), min_validity, std::move(fetch), guarded); }))
    guarded(std::move(failure), {});
}

void TokenCache::do_get_or_fetch(std::string key, std::chrono::milliseconds min_validity, UpstreamFetch fetch,
                                 FetchDone done) {
  auto self = shared_from_this();
  do_get(key, [self, key, min_validity, fetch = std::move(fetch), done = std::move(done)](
                  std::exception_ptr e, std::optional<AccessToken> cached) mutable {
    if (!e && cached) {
      if (auto bad = detail::admission_error(cached->token, "token cache record")) e = std::move(bad), cached.reset();
    }
    const bool hit = !e && cached && self->fresh_enough(*cached, min_validity);
    self->report_lookup(e ? CacheLookup::error : hit ? CacheLookup::hit : CacheLookup::miss);
    if (hit) {
      done(nullptr, std::move(*cached));
      return;
    }
    if (e) log(LogLevel::warning, "token cache read failed (" + message_of(e) + "); fetching the token directly");
    auto on_fetched = [self, key, done](std::exception_ptr fe, AccessToken token) {
      if (fe) {
        done(std::move(fe), {});
        return;
      }
      try {
        self->do_put(key, token, std::nullopt, [](std::exception_ptr pe) {
          if (pe) log(LogLevel::warning, "token cache write failed (" + message_of(pe) + "); the token is not cached");
        });
      } catch (...) {
        log(LogLevel::warning, "token cache write failed (" + message_of(std::current_exception()) + ")");
      }
      done(nullptr, std::move(token));
    };
    if (auto failure = detail::exception_from([&] { fetch(on_fetched); })) done(std::move(failure), {});
  });
}

}  // namespace credkit
