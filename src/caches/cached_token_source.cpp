#include <credkit/caches/cached_token_source.hpp>
#include <credkit/core/error.hpp>

#include "core/completion.hpp"
#include "caches/cache_time.hpp"
#include "core/fetch_op.hpp"

#include <boost/asio/post.hpp>

namespace credkit {

namespace {

/// Runs `inner` for a fetch described by `ctx` and reports to `done`; mirrors what the
/// credential does around a fetcher (start guard, exception capture, cancellation link).
void run_inner(const Fetcher& inner, const FetchContext& ctx, const ParseOptions& parse, TokenCache::FetchDone done) {
  auto op = std::make_shared<detail::FetchOp>();
  op->reason = ctx.reason();
  op->attempt = ctx.attempt();
  op->deadline = ctx.deadline();
  op->executor = ctx.executor();
  op->parse = parse;
  // The inner fetcher's view of service time is the outer fetch's (held weakly: the outer
  // op's cancellation slot holds this op).
  std::weak_ptr<detail::FetchOp> outer = detail::FetchOpAccess::of(ctx);
  op->service_now = [outer] {
    auto o = outer.lock();
    return o && o->service_now ? o->service_now() : std::chrono::system_clock::now();
  };
  op->on_service_time = [outer](std::chrono::system_clock::time_point t) {
    if (auto o = outer.lock(); o && o->on_service_time) o->on_service_time(t);
  };
  op->on_done = std::move(done);
  boost::asio::post(ctx.executor(), [inner, ctx, op] {
    if (ctx.cancelled()) {
      op->complete(std::make_exception_ptr(Error(errc::cancelled, "the fetch was cancelled before it started")), {});
      return;
    }
    // Runs on the credential's executor, where the slot may be used.
    ctx.cancellation_slot().assign([op](boost::asio::cancellation_type type) {
      op->cancelled.store(true, std::memory_order_release);
      op->signal.emit(type);
    });
    op->starting.store(true, std::memory_order_release);
    auto thrown = detail::exception_from([&] { detail::FetchOpAccess::invoke(inner, op); });
    op->starting.store(false, std::memory_order_release);
    if (thrown) return op->complete(std::move(thrown), {});
    if (op->abandoned_while_starting.load(std::memory_order_acquire))
      op->complete(std::make_exception_ptr(Error(errc::fetcher_abandoned,
                                                 "the async fetcher dropped its FetchCompletion without calling it")),
                   {});
  });
}

}  // namespace

void CachedFetcherOptions::validate() const {
  detail::require_non_negative(min_validity, "CachedFetcherOptions", "min_validity", "a cached token is never used");
}

Fetcher make_cached_fetcher(std::shared_ptr<TokenCache> cache, TokenCacheKey key, Fetcher inner,
                            CachedFetcherOptions options) {
  if (!cache) throw_error(errc::invalid_argument, "make_cached_fetcher: the cache is null");
  if (!inner) throw_error(errc::invalid_argument, "make_cached_fetcher: the inner fetcher is none");
  options.validate();
  return Fetcher::async([cache = std::move(cache), key = std::move(key), inner = std::move(inner),
                         options = std::move(options)](FetchContext ctx, FetchCompletion completion) {
    TokenCache::UpstreamFetch upstream = [inner, ctx, parse = options.parse](TokenCache::FetchDone done) {
      run_inner(inner, ctx, parse, std::move(done));
    };
    auto shared_completion = std::make_shared<FetchCompletion>(std::move(completion));
    auto finish = [shared_completion](std::exception_ptr e, AccessToken token) {
      if (e)
        shared_completion->fail(std::move(e));
      else
        shared_completion->succeed(std::move(token));
    };
    if (ctx.reason() == FetchReason::invalidated) {
      cache->async_erase(key, [cache, key, mv = options.min_validity, upstream, finish](std::exception_ptr) {
        cache->async_get_or_fetch(key, mv, upstream, finish);
      });
    } else {
      cache->async_get_or_fetch(key, options.min_validity, std::move(upstream), std::move(finish));
    }
  });
}

std::shared_ptr<TokenCredential> make_cached_credential(boost::asio::any_io_executor executor,
                                                        std::shared_ptr<TokenCache> cache, TokenCacheKey key,
                                                        Fetcher inner, RefreshPolicy policy) {
  policy.validate();  // an out-of-range policy is named as such, not as the fetcher's option
  CachedFetcherOptions fo;
  fo.min_validity = policy.min_validity;
  TokenCredentialOptions options;
  options.fetcher = make_cached_fetcher(std::move(cache), std::move(key), std::move(inner), fo);
  options.mode = RefreshMode::on_demand;
  options.policy = policy;
  return TokenCredential::create(std::move(executor), std::move(options));
}

}  // namespace credkit
