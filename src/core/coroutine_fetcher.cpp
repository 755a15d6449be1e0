#include <credkit/core/coroutine_fetcher.hpp>
#include <credkit/core/error.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>

#include <memory>

namespace credkit {

Fetcher coroutine_fetcher(CoroutineFetchFunction function) {
  if (!function) throw_error(errc::invalid_argument, "coroutine_fetcher: the function is empty");
  auto shared = std::make_shared<CoroutineFetchFunction>(std::move(function));
  return Fetcher::async([shared](FetchContext ctx, FetchCompletion done) {
    auto slot = ctx.cancellation_slot();
    auto ex = ctx.executor();
    boost::asio::co_spawn(
        ex, (*shared)(std::move(ctx)),
        boost::asio::bind_cancellation_slot(slot, [done = std::move(done)](std::exception_ptr e, AccessToken t) mutable {
          if (e) {
            done.fail(std::move(e));
          } else {
            done.succeed(std::move(t));
          }
        }));
  });
}

}  // namespace credkit
