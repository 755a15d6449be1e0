#include "core/credential_strand.hpp"

#include <boost/asio/execution/blocking.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <type_traits>
#include <utility>

namespace credkit::detail {

namespace asio = boost::asio;

namespace {

// The strands a credential may run on. Over an io_context's or a thread_pool's own executor the
// strand is made over that executor with blocking.never required: 24 bytes, which sit inside
// any_io_executor's buffer (a strand over the type-erased executor takes a separate 88-byte
// block per credential). blocking.never is required as well: credkit submits to the strand
// with asio::post, which is never-blocking anyway, but a bare execute() from inside a strand
// over a possibly-blocking executor would run inline, and handlers must never run inline.
using IoNever = std::decay_t<decltype(asio::require(std::declval<asio::io_context::executor_type>(),
                                                    asio::execution::blocking.never))>;
using PoolNever = std::decay_t<decltype(asio::require(std::declval<asio::thread_pool::executor_type>(),
                                                      asio::execution::blocking.never))>;
using IoStrand = asio::strand<IoNever>;
using PoolStrand = asio::strand<PoolNever>;
using AnyStrand = asio::strand<asio::any_io_executor>;  // any other executor shape

// Calls `f(strand)` with the credential strand inside `executor`; false when it holds none.
template <typename F>
bool visit_strand(const asio::any_io_executor& executor, F&& f) {
  if (auto* s = executor.target<IoStrand>()) return f(*s), true;
  if (auto* s = executor.target<PoolStrand>()) return f(*s), true;
  if (auto* s = executor.target<AnyStrand>()) return f(*s), true;
  return false;
}

}  // namespace

asio::any_io_executor native_executor(const asio::any_io_executor& executor, bool through_strand) {
  const asio::any_io_executor untracked = asio::prefer(executor, asio::execution::outstanding_work.untracked);
  asio::any_io_executor native;
  const auto find = [&]<typename E>(std::type_identity<E>) {
    if (auto* e = untracked.target<E>()) {
      native = *e;
    } else if (auto* s = through_strand ? untracked.target<asio::strand<E>>() : nullptr) {
      native = s->get_inner_executor();
    }
    return bool(native);
  };
  find(std::type_identity<asio::io_context::executor_type>{}) || find(std::type_identity<IoNever>{}) ||
      find(std::type_identity<asio::thread_pool::executor_type>{}) || find(std::type_identity<PoolNever>{});
  return native;
}

// The inner executor is made untracked: a work-tracked executor given by the user would
// otherwise keep its io_context's run() going for as long as the credential lives, and touch
// the context when the credential is destroyed after it.
asio::any_io_executor make_credential_strand(const asio::any_io_executor& inner) {
  const asio::any_io_executor native = native_executor(inner, false);
  if (auto* e = native.target<asio::io_context::executor_type>())
    return asio::make_strand(asio::require(*e, asio::execution::blocking.never));
  if (auto* e = native.target<IoNever>()) return asio::make_strand(*e);
  if (auto* e = native.target<asio::thread_pool::executor_type>())
    return asio::make_strand(asio::require(*e, asio::execution::blocking.never));
  if (auto* e = native.target<PoolNever>()) return asio::make_strand(*e);
  return asio::make_strand(asio::prefer(inner, asio::execution::outstanding_work.untracked));
}

// Work is tracked on the inner executor: tracking through the strand would copy the strand,
// and its shared implementation, for every waiter.
asio::any_io_executor tracked_inner_work(const asio::any_io_executor& strand) {
  using asio::execution::outstanding_work;
  if (!strand) return {};
  asio::any_io_executor work;
  if (visit_strand(strand, [&](const auto& s) { work = asio::prefer(s.get_inner_executor(), outstanding_work.tracked); })) {
    return work;
  }
  return asio::prefer(strand, outstanding_work.tracked);
}

bool running_on_strand(const asio::any_io_executor& strand) noexcept {
  bool running = false;
  visit_strand(strand, [&](const auto& s) { running = s.running_in_this_thread(); });
  return running;
}

}  // namespace credkit::detail
