#include "core/context_registry.hpp"

#include <vector>

namespace credkit::detail {

boost::asio::execution_context::id ContextRegistry::id;

ContextRegistry::ContextRegistry(boost::asio::execution_context& context)
    : boost::asio::execution_context::service(context) {}

ContextRegistry::Enrolment::~Enrolment() {
  if (!book_) return;
  std::lock_guard lock(book_->mutex);
  if (book_->open) book_->members.erase(key_);
}

void ContextRegistry::Enrolment::leave_behind(std::function<void()> on_shutdown) noexcept {
  auto book = std::move(book_);
  std::lock_guard lock(book->mutex);
  if (!book->open) return;
  if (auto it = book->members.find(key_); it != book->members.end()) it->second = std::move(on_shutdown);
}

std::unique_ptr<ContextRegistry::Enrolment> ContextRegistry::enrol(boost::asio::execution_context& context,
                                                                   std::function<void()> on_shutdown) {
  auto& registry = boost::asio::use_service<ContextRegistry>(context);
  std::lock_guard lock(registry.book_->mutex);
  if (!registry.book_->open) {
    // Enrolling while the context shuts down: close at once (outside the book's lock).
    return nullptr;
  }
  const std::uint64_t key = registry.book_->next++;
  registry.book_->members.emplace(key, std::move(on_shutdown));
  return std::make_unique<Enrolment>(registry.book_, key);
}

void ContextRegistry::shutdown() {
  // Called by ~execution_context (and again by io_context's own destructor): idempotent.
  std::map<std::uint64_t, std::function<void()>> members;
  {
    std::lock_guard lock(book_->mutex);
    book_->open = false;
    members.swap(book_->members);
  }
  for (auto& [key, close] : members) {
    if (close) close();
  }
}

}  // namespace credkit::detail
