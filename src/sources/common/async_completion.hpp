// credkit detail — completing type-erased Asio handlers the way every source does.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/post.hpp>

#include <exception>
#include <memory>

namespace credkit::detail {

/// A copyable completer of a move-only handler (std::function needs copyable targets).
/// Calling it posts the handler's invocation through `executor` to the handler's associated
/// executor (so it never runs inline); only the first call has an effect.
template <typename... Args>
class PostingCompleter {
 public:
  using Handler = boost::asio::any_completion_handler<void(std::exception_ptr, Args...)>;

  PostingCompleter(boost::asio::any_io_executor executor, Handler h)
      : executor_(std::move(executor)), handler_(std::make_shared<Handler>(std::move(h))) {}

  void operator()(std::exception_ptr error, Args... args) const {
    if (!*handler_) return;
    boost::asio::post(executor_, boost::asio::append(std::move(*handler_), std::move(error), std::move(args)...));
  }

 private:
  boost::asio::any_io_executor executor_;
  std::shared_ptr<Handler> handler_;
};

/// Completes `handler` with `error` (and value-initialized results), posted: used for
/// argument errors found before any I/O.
template <typename... Args>
void post_failure(boost::asio::any_completion_handler<void(std::exception_ptr, Args...)> handler,
                  const boost::asio::any_io_executor& executor, std::exception_ptr error) {
  boost::asio::post(executor, boost::asio::append(std::move(handler), std::move(error), Args{}...));
}

}  // namespace credkit::detail
