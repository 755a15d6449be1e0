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

namespace credkit::detail {

struct FetchOp {
  FetchReason reason = FetchReason::initial;
  int attempt = 1;
  std::chrono::system_clock::time_point deadline{};
  boost::asio::any_io_executor executor;
  ParseOptions parse;
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
    if (on_done) on_done(std::move(error), std::move(token));
  }
};

}  // namespace credkit::detail
