// credkit detail — posting a type-erased handler to its associated executor (never inline).
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>

#include <memory>
#include <tuple>

namespace credkit::detail {

/// Runs `handler(args...)` on its associated executor (default `fallback`), never inline: the
/// caller may hold locks or be inside the initiating function. The hop is an asio::post to
/// `fallback` (blocking.never); from there the handler is dispatched to its associated
/// executor. (Preferring blocking.never on the associated executor itself is not enough: a
/// type-erased handler's is an any_completion_executor, which has no blocking property, so
/// the preference is dropped and an executor already running here would run it in place.)
///
/// Outstanding work is held on each executor until the post into it has returned: the handler
/// may run (and the app tear its pool or io_context down) before a foreign thread's post()
/// has finished waking that executor's threads; with the work held, join() and run() wait.
template <typename Signature, typename... Args>
void post_handler(const boost::asio::any_io_executor& fallback,
                  boost::asio::any_completion_handler<Signature> handler, Args... args) {
  using boost::asio::execution::outstanding_work;
  const auto work = boost::asio::prefer(fallback, outstanding_work.tracked);
  boost::asio::post(fallback, [fallback, h = std::move(handler), tuple = std::make_tuple(std::move(args)...)]() mutable {
    auto target = boost::asio::get_associated_executor(h, fallback);
    const auto target_work = boost::asio::prefer(target, outstanding_work.tracked);
    boost::asio::dispatch(target, [h = std::move(h), tuple = std::move(tuple)]() mutable {
      std::apply([&h](auto&... a) { std::move(h)(std::move(a)...); }, tuple);
    });
  });
}

/// A copyable holder of a move-only handler, so it can ride in a `std::function`.
template <typename Signature>
using SharedHandler = std::shared_ptr<boost::asio::any_completion_handler<Signature>>;

}  // namespace credkit::detail
