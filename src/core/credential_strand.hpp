// credkit detail — the credential's strand: how it is made over the user's executor, and what
// the credential asks of it (the executor it wraps, whether this thread is inside it).
#pragma once

#include <boost/asio/any_io_executor.hpp>

namespace credkit::detail {

/// The io_context's or thread_pool's own executor that `executor` is (untracked; its blocking
/// property kept), or, with `through_strand`, the one under a strand over such an executor;
/// empty when it is neither. The one place that recognises native executors: the credential's
/// strand is made over one, and the shared deadline timer waits on one.
boost::asio::any_io_executor native_executor(const boost::asio::any_io_executor& executor, bool through_strand);

/// A strand over `inner` made untracked (over its native io_context or thread_pool executor,
/// never blocking, when it is one: no separate block for the type-erased wrapper).
boost::asio::any_io_executor make_credential_strand(const boost::asio::any_io_executor& inner);

/// Outstanding work on the executor behind `strand` (its inner one; `strand` itself if it is
/// not one of ours); empty for an empty executor.
boost::asio::any_io_executor tracked_inner_work(const boost::asio::any_io_executor& strand);

/// True while this thread runs a handler of `strand` (false for an executor that is not one).
bool running_on_strand(const boost::asio::any_io_executor& strand) noexcept;

}  // namespace credkit::detail
