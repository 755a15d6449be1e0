// credkit detail — the shared state of one fetch, seen by the fetcher through FetchContext
// and FetchCompletion and by the credential that started it.
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/core/fetcher.hpp>
#include <credkit/core/parse_token.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <mutex>

namespace credkit::detail {

struct FetchOp;
inline void release_executor(FetchOp& op) noexcept;

struct FetchOp {
  FetchReason reason = FetchReason::initial;
  int attempt = 1;
  std::chrono::system_clock::time_point deadline{};
  boost::asio::any_io_executor executor;  // cleared (under executor_mutex) when the fetch completes
  std::mutex executor_mutex;              // guards clearing `executor` (complete, context shutdown)
  ParseOptions parse;
  /// Service time now (empty: the system clock), and where service-time reports go (empty:
  /// ignored). Set once before the fetcher runs, never changed (FetchContext may call them
  /// from any thread at any time); they must hold no strong reference to a FetchOp.
  std::function<std::chrono::system_clock::time_point()> service_now;
  std::function<void(std::chrono::system_clock::time_point)> on_service_time;
  /// Called once with the outcome, from whichever thread completes.
  std::function<void(std::exception_ptr, AccessToken)> on_done;

  std::atomic<bool> cancelled{false};
  boost::asio::cancellation_signal signal;  // emitted on `executor` only
  std::atomic<bool> done{false};
  // While the credential is inside the fetcher's initial call, a dropped completion is
  // reported after the call returns, so an exception thrown by that call wins.
  std::atomic<bool> starting{false};
  std::atomic<bool> abandoned_while_starting{false};

  void complete(std::exception_ptr error, AccessToken token) {
    if (done.exchange(true)) return;
    release_executor(*this);  // before anyone learns the fetch is over
    // Released before it runs: the callback may hold what holds this op (a cache's
    // single-flight holds the fetch context, whose slot holds this op), and that cycle
    // must end when the fetch does.
    auto callback = std::move(on_done);
    on_done = nullptr;
    if (callback) callback(std::move(error), std::move(token));
  }
};

/// Drops the op's copy of the executor. Done before a completion is delivered: once the
/// caller knows the fetch is over it may destroy the execution context, and the op itself may
/// then be released on another thread (a blocking fetcher's pool thread); a strand copy
/// destroyed after its context is a use-after-free.
inline void release_executor(FetchOp& op) noexcept {
  boost::asio::any_io_executor dropped;
  {
    std::lock_guard lock(op.executor_mutex);
    dropped = std::move(op.executor);
    op.executor = boost::asio::any_io_executor();
  }
}

/// The one door between FetchOp and the public fetch types, for credkit's own code: users can
/// neither see an op nor make a FetchContext or FetchCompletion.
struct FetchOpAccess {
  /// The op behind a FetchContext, for credkit's own wrappers of fetchers.
  static const std::shared_ptr<FetchOp>& of(const FetchContext& ctx) noexcept { return ctx.op_; }
  /// Calls `fetcher` for `op`: the only place a FetchContext and a FetchCompletion are made.
  static void invoke(const Fetcher& fetcher, const std::shared_ptr<FetchOp>& op) {
    fetcher(FetchContext(op), FetchCompletion(op));
  }
};

}  // namespace credkit::detail
