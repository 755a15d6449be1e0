// Test helper: an io_context executor that audits outstanding work. Every work-tracked copy
// (what `prefer(ex, outstanding_work.tracked)` makes, as credkit does for an operation in
// flight) holds real work on the io_context. The bug class it finds: work held across a
// hand-off to the context and released afterwards by a thread not running it (a fetcher's or
// a cache lane's thread, after its post): by then the handler may have run and the app may
// have destroyed its io_context (or made a new one at the same address, which the late
// release then stops). Counted as such: a copy released off the context by another thread
// than the one that made it, or by the same thread after it submitted work to the context.
// (A temporary made and dropped by one thread without a submission in between is harmless.)
#pragma once

#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <cstdint>
#include <thread>
#include <utility>

namespace credkit::test {

/// Submissions (execute calls) to audited executors made by this thread so far.
inline std::uint64_t& submissions_by_this_thread() noexcept {
  thread_local std::uint64_t count = 0;
  return count;
}

/// What the executors of one audited io_context saw.
struct WorkAudit {
  explicit WorkAudit(boost::asio::io_context& context) : io(&context) {}
  boost::asio::io_context* io;
  std::atomic<int> held{0};                  // tracked copies alive now
  std::atomic<int> acquired{0};              // tracked copies ever made
  std::atomic<int> released_off_context{0};  // released on a thread not running `io`
};

/// Always `blocking.never` (every submission is posted); work-tracked when `Tracked`.
template <bool Tracked>
class AuditedExecutor {
 public:
  explicit AuditedExecutor(WorkAudit& audit) noexcept : audit_(&audit) { acquire(); }
  AuditedExecutor(const AuditedExecutor& other) noexcept : audit_(other.audit_) { acquire(); }
  AuditedExecutor(AuditedExecutor&& other) noexcept
      : audit_(other.audit_), owns_(std::exchange(other.owns_, false)), owner_(other.owner_), epoch_(other.epoch_) {}
  AuditedExecutor& operator=(AuditedExecutor other) noexcept {
    std::swap(audit_, other.audit_);
    std::swap(owns_, other.owns_);
    std::swap(owner_, other.owner_);
    std::swap(epoch_, other.epoch_);
    return *this;
  }
  ~AuditedExecutor() { release(); }

  template <typename Function>
  void execute(Function&& f) const {
    ++submissions_by_this_thread();
    boost::asio::post(audit_->io->get_executor(), std::forward<Function>(f));
  }

  boost::asio::execution_context& query(boost::asio::execution::context_t) const noexcept { return *audit_->io; }
  static constexpr boost::asio::execution::blocking_t query(boost::asio::execution::blocking_t) noexcept {
    return boost::asio::execution::blocking.never;
  }
  static constexpr boost::asio::execution::outstanding_work_t query(boost::asio::execution::outstanding_work_t) noexcept {
    return Tracked ? boost::asio::execution::outstanding_work_t(boost::asio::execution::outstanding_work.tracked)
                   : boost::asio::execution::outstanding_work_t(boost::asio::execution::outstanding_work.untracked);
  }
  AuditedExecutor require(boost::asio::execution::blocking_t::never_t) const noexcept { return *this; }
  AuditedExecutor<true> require(boost::asio::execution::outstanding_work_t::tracked_t) const noexcept {
    return AuditedExecutor<true>(*audit_);
  }
  AuditedExecutor<false> require(boost::asio::execution::outstanding_work_t::untracked_t) const noexcept {
    return AuditedExecutor<false>(*audit_);
  }

  bool running_in_this_thread() const noexcept { return audit_->io->get_executor().running_in_this_thread(); }

  friend bool operator==(const AuditedExecutor& a, const AuditedExecutor& b) noexcept { return a.audit_ == b.audit_; }
  friend bool operator!=(const AuditedExecutor& a, const AuditedExecutor& b) noexcept { return a.audit_ != b.audit_; }

 private:
  void acquire() noexcept {
    if constexpr (Tracked) {
      audit_->io->get_executor().on_work_started();
      ++audit_->held;
      ++audit_->acquired;
      owns_ = true;
      owner_ = std::this_thread::get_id();
      epoch_ = submissions_by_this_thread();
    }
  }
  void release() noexcept {
    if constexpr (Tracked) {
      if (!owns_) return;
      owns_ = false;
      if (!running_in_this_thread() &&
          (owner_ != std::this_thread::get_id() || submissions_by_this_thread() != epoch_)) {
        ++audit_->released_off_context;
      }
      --audit_->held;
      audit_->io->get_executor().on_work_finished();
    }
  }

  WorkAudit* audit_;
  bool owns_ = false;
  std::thread::id owner_{};  // the thread that made this tracked copy
  std::uint64_t epoch_ = 0;  // its submissions count then
};

}  // namespace credkit::test
