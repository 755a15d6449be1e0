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

  /// The members of one context, shared with their enrolments so that a credential
  /// destroyed after the context can still (harmlessly) leave.
  struct Book {
    std::mutex mutex;
    bool open = true;
    std::uint64_t next = 1;
    std::map<std::uint64_t, std::function<void()>> members;  // called once at shutdown
  };

  /// A credential's membership; leaves the book when destroyed.
  class Enrolment {
   public:
    Enrolment(std::shared_ptr<Book> book, std::uint64_t key) noexcept : book_(std::move(book)), key_(key) {}
    ~Enrolment();
    /// Replaces what runs at shutdown and keeps the entry until then (the enrolment's owner
    /// is going away but leaves something behind that refers to the context).
    void leave_behind(std::function<void()> on_shutdown) noexcept;
    Enrolment(const Enrolment&) = delete;
    Enrolment& operator=(const Enrolment&) = delete;

   private:
    std::shared_ptr<Book> book_;
    std::uint64_t key_;
  };

  explicit ContextRegistry(boost::asio::execution_context& context);

  /// Enrols `on_shutdown` (which must not hold a strong reference to the credential) on
  /// `context`; it runs once, on the thread destroying the context, unless the enrolment is
  /// destroyed first.
  static std::unique_ptr<Enrolment> enrol(boost::asio::execution_context& context, std::function<void()> on_shutdown);

 private:
  void shutdown() override;
  std::shared_ptr<Book> book_ = std::make_shared<Book>();
};

}  // namespace credkit::detail
