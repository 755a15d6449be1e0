#include "core/executor_affinity.hpp"

#include "core/callback_scope.hpp"

#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/query.hpp>

namespace credkit::detail {

namespace {
#if !defined(BOOST_ASIO_HAS_IOCP)
// io_context and thread_pool both register this scheduler as their implementation.
using Scheduler = boost::asio::detail::scheduler;
#endif
}  // namespace

ExecutorAffinity::ExecutorAffinity(const boost::asio::any_io_executor& executor) noexcept {
  if (!executor) return;
  context_ = &boost::asio::query(executor, boost::asio::execution::context);
#if !defined(BOOST_ASIO_HAS_IOCP)
  if (boost::asio::has_service<Scheduler>(*context_)) {
    // Kept as the key the scheduler pushes on the thread call stack while a thread runs it.
    boost::asio::detail::thread_context* key = &boost::asio::use_service<Scheduler>(*context_);
    scheduler_ = key;
  }
#endif
}

bool ExecutorAffinity::running_in_this_thread() const noexcept {
  if (CallbackScope::active()) return true;
#if !defined(BOOST_ASIO_HAS_IOCP)
  // Is the scheduler on this thread's call stack (inside its run(), poll(), or a pool worker)?
  if (scheduler_) {
    auto* key = static_cast<boost::asio::detail::thread_context*>(const_cast<void*>(scheduler_));
    using CallStack = boost::asio::detail::call_stack<boost::asio::detail::thread_context,
                                                      boost::asio::detail::thread_info_base>;
    return CallStack::contains(key) != nullptr;
  }
#endif
  return false;
}

}  // namespace credkit::detail
