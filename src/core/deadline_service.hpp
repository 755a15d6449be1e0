// credkit detail — one timer per execution context for the credentials on the system clock.
//
// A credential used to own an Asio steady timer with a pending wait of its own (a timer
// object, a wait operation and a type-erased handler: ~250 B each, times 100 000 credentials
// on one io_context). Here each credential embeds a small `DeadlineService::Deadline` (its
// place in an intrusive min-heap of due times) and the context has one Asio timer, armed for
// the earliest of them. When it fires, every due deadline is taken out of the heap and its
// owner called back.
//
// References are weak both ways: the heap points at deadlines, which unlink themselves under
// the book's lock when they are destroyed or cancelled; a firing takes a weak reference to
// the owner under that lock and calls it only if it is still alive. The book outlives the
// service (shared with the deadlines), so a credential destroyed after its io_context only
// touches the book. Like every Asio timer, a pending wait keeps the context's run() going;
// with no deadline left the wait is cancelled, so run() can return.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace credkit::detail {

class DeadlineService final : public boost::asio::execution_context::service {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  /// Called (outside every lock) when a deadline falls due, with its owner kept alive.
  using DueFunction = void (*)(const std::shared_ptr<void>& owner, std::uint64_t seq);

  static boost::asio::execution_context::id id;

  struct Book;

  /// One credential's deadline: in the heap while armed. Not copyable; its owner keeps it at a
  /// fixed address. Every member is guarded by the book's mutex.
  class Deadline {
   public:
    Deadline() noexcept = default;
    ~Deadline() { cancel(); }
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;

    /// Joins the service of the context behind `executor` (the executor its timer waits on).
    void attach(DeadlineService& service, const boost::asio::any_io_executor& executor);
    bool attached() const noexcept { return static_cast<bool>(book_); }
    /// Due `after` from now: `due(owner, seq)` then runs once, unless cancelled or re-armed first.
    void arm(std::chrono::nanoseconds after, std::weak_ptr<void> owner, DueFunction due, std::uint64_t seq);
    void cancel() noexcept;

   private:
    friend class DeadlineService;
    static constexpr std::size_t kNotQueued = static_cast<std::size_t>(-1);
    std::shared_ptr<Book> book_;
    std::weak_ptr<void> owner_;
    DueFunction due_ = nullptr;
    std::uint64_t seq_ = 0;
    time_point at_{};
    std::size_t index_ = kNotQueued;
  };

  explicit DeadlineService(boost::asio::execution_context& context);
  ~DeadlineService() override;

 private:
  void shutdown() override;

  std::shared_ptr<Book> book_;
};

}  // namespace credkit::detail
