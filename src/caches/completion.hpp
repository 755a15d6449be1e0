// credkit detail — posting a type-erased handler to its associated executor (never inline).
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/execution/blocking.hpp>
#include <boost/asio/prefer.hpp>

#include <memory>
#include <tuple>

namespace credkit::detail {

/// Runs `handler(args...)` on its associated executor (default `fallback`) by posting:
/// the caller may hold locks or be inside the initiating function.
template <typename Signature, typename... Args>
void post_handler(const boost::asio::any_io_executor& fallback,
                  boost::asio::any_completion_handler<Signature> handler, Args... args) {
  auto ex = boost::asio::prefer(boost::asio::get_associated_executor(handler, fallback),
                                boost::asio::execution::blocking.never);
  ex.execute([h = std::move(handler), tuple = std::make_tuple(std::move(args)...)]() mutable {
    std::apply([&h](auto&... a) { std::move(h)(std::move(a)...); }, tuple);
  });
}

/// A copyable holder of a move-only handler, so it can ride in a `std::function`.
template <typename Signature>
using SharedHandler = std::shared_ptr<boost::asio::any_completion_handler<Signature>>;

}  // namespace credkit::detail
