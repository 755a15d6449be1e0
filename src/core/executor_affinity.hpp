// credkit detail — "is the calling thread one that must run the credential's handlers?"
//
// Answered from the execution context behind the executor (asio::query(ex,
// execution::context)), never from the executor's concrete type: every executor shape a user
// passes (io_context executors with any properties, strands, work-tracked executors,
// any_io_executor wrappers, thread_pool executors) resolves to the same context. For an
// io_context or thread_pool the context knows whether this thread is running it; for any
// other context credkit relies on a thread-local marker it sets while it runs its own
// handlers and the user's callbacks (CallbackScope).
#pragma once

#include <boost/asio/any_io_executor.hpp>

namespace boost::asio {
class execution_context;
}  // namespace boost::asio

namespace credkit::detail {

class ExecutorAffinity {
 public:
  ExecutorAffinity() noexcept = default;
  /// Resolves the execution context of `executor` (which may be empty: no context).
  explicit ExecutorAffinity(const boost::asio::any_io_executor& executor) noexcept;

  /// The execution context the executor submits to (null for an empty executor).
  boost::asio::execution_context* context() const noexcept { return context_; }

  /// True when this thread runs the context's handlers (any of its threads: an io_context
  /// inside run()/poll(), a thread_pool worker) or a credkit callback (CallbackScope). Reads
  /// this thread's call stack of schedulers (a pointer comparison: the context may be gone).
  bool running_in_this_thread() const noexcept;

 private:
  boost::asio::execution_context* context_ = nullptr;
  const void* scheduler_ = nullptr;  // the context's Asio scheduler, if it runs on one
};

}  // namespace credkit::detail
