#include "core/credential_strand.hpp"

#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/strand.hpp>

namespace credkit::detail {

namespace asio = boost::asio;
using CredentialStrand = asio::strand<asio::any_io_executor>;

// A strand over the type-erased executor. (A strand<io_context::executor_type> would fit inside
// any_io_executor's buffer and save an allocation, but completions through it lost the
// blocking.never preference and ran inline: handlers must always be posted.) The inner
// executor is made untracked: a work-tracked executor given by the user would otherwise keep
// its io_context's run() going for as long as the credential lives, and touch the context when
// the credential is destroyed after it.
asio::any_io_executor make_credential_strand(const asio::any_io_executor& inner) {
  return asio::make_strand(asio::prefer(inner, asio::execution::outstanding_work.untracked));
}

// Work is tracked on the inner executor: tracking through the strand would copy the strand,
// and its shared implementation, for every waiter.
asio::any_io_executor tracked_inner_work(const asio::any_io_executor& strand) {
  using asio::execution::outstanding_work;
  if (!strand) return {};
  if (auto* s = strand.target<CredentialStrand>()) return asio::prefer(s->get_inner_executor(), outstanding_work.tracked);
  return asio::prefer(strand, outstanding_work.tracked);
}

bool running_on_strand(const asio::any_io_executor& strand) noexcept {
  if (auto* s = strand.target<CredentialStrand>()) return s->running_in_this_thread();
  return false;
}

}  // namespace credkit::detail
