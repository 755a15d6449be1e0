// credkit detail — the lifetime link between credentials and the execution context they run
// on. An Asio service registered on the context (after the credential's strand and timer, so
// Asio shuts it down before theirs: services shut down newest first) whose shutdown() closes
// every credential still enrolled: each drops its timer, strand and tracked work while Asio's
// services are still alive, fails its blocking waiters with credential_closed, and from then
// on fails every call with credential_closed. Destroying the io_context (or thread_pool)
// before the credentials is therefore safe.
#pragma once

#include <boost/asio/execution_context.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

namespace credkit::detail {

class ContextRegistry final : public boost::asio::execution_context::service {
 public:
  static boost::asio::execution_context::id id;

  struct Book;

  /// A credential's membership, embedded in it (no allocation per credential): a node of the
  /// book's intrusive list while joined. Leaves the book when destroyed. Every member is
  /// guarded by the book's mutex.
  class Enrolment {
   public:
    /// Called once at shutdown, on the thread destroying the context, with the owner alive.
    using ShutdownFunction = void (*)(const std::shared_ptr<void>& owner);

    Enrolment() noexcept = default;
    ~Enrolment();
    Enrolment(const Enrolment&) = delete;
    Enrolment& operator=(const Enrolment&) = delete;

    /// Enrols on `context`: `on_shutdown(owner)` runs at its shutdown unless this enrolment
    /// is destroyed first (`owner` is held weakly). False when the context is already shutting
    /// down (nothing enrolled).
    bool join(boost::asio::execution_context& context, std::weak_ptr<void> owner, ShutdownFunction on_shutdown);
    bool joined() const noexcept { return static_cast<bool>(book_); }
    /// Replaces what runs at shutdown and keeps it in the book until then (the enrolment's
    /// owner is going away but leaves something behind that refers to the context).
    void leave_behind(std::function<void()> on_shutdown) noexcept;

   private:
    friend class ContextRegistry;
    bool linked() const noexcept;  // under the book's mutex
    void unlink() noexcept;        // under the book's mutex
    std::shared_ptr<Book> book_;
    Enrolment* prev_ = nullptr;
    Enrolment* next_ = nullptr;
    std::weak_ptr<void> owner_;
    ShutdownFunction on_shutdown_ = nullptr;
  };

  explicit ContextRegistry(boost::asio::execution_context& context);

 private:
  void shutdown() override;
  std::shared_ptr<Book> book_;
};

}  // namespace credkit::detail
