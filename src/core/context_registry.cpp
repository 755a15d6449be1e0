#include "core/context_registry.hpp"

#include <utility>

namespace credkit::detail {

boost::asio::execution_context::id ContextRegistry::id;

/// The members of one context, shared with their enrolments so that a credential destroyed
/// after the context can still (harmlessly) leave.
struct ContextRegistry::Book {
  std::mutex mutex;
  bool open = true;
  Enrolment* members = nullptr;  // intrusive list of the enrolments still joined, in join order
  Enrolment* last = nullptr;
  std::uint64_t next_left = 1;
  std::map<std::uint64_t, std::function<void()>> left_behind;  // from owners already gone
};

ContextRegistry::ContextRegistry(boost::asio::execution_context& context)
    : boost::asio::execution_context::service(context), book_(std::make_shared<Book>()) {}

bool ContextRegistry::Enrolment::linked() const noexcept {
  // The first member has no predecessor: the book names it.
  return prev_ != nullptr || (book_ && book_->members == this);
}

void ContextRegistry::Enrolment::unlink() noexcept {
  if (!linked()) return;
  if (prev_) {
    prev_->next_ = next_;
  } else {
    book_->members = next_;
  }
  if (next_) {
    next_->prev_ = prev_;
  } else {
    book_->last = prev_;
  }
  prev_ = next_ = nullptr;
}

ContextRegistry::Enrolment::~Enrolment() {
  if (!book_) return;
  std::lock_guard lock(book_->mutex);
  unlink();
}

bool ContextRegistry::Enrolment::join(boost::asio::execution_context& context, std::weak_ptr<void> owner,
                                      ShutdownFunction on_shutdown) {
  auto& registry = boost::asio::use_service<ContextRegistry>(context);
  std::lock_guard lock(registry.book_->mutex);
  if (!registry.book_->open) return false;  // enrolling while the context shuts down
  book_ = registry.book_;
  owner_ = std::move(owner);
  on_shutdown_ = on_shutdown;
  prev_ = book_->last;
  if (prev_) {
    prev_->next_ = this;
  } else {
    book_->members = this;
  }
  book_->last = this;
  return true;
}

void ContextRegistry::Enrolment::leave_behind(std::function<void()> on_shutdown) noexcept {
  auto book = std::move(book_);
  if (!book) return;
  std::lock_guard lock(book->mutex);
  book_ = book;  // linked() and unlink() need it
  const bool was_member = linked();
  unlink();
  book_.reset();
  if (!book->open || !was_member) return;
  try {
    book->left_behind.emplace(book->next_left++, std::move(on_shutdown));
  } catch (...) {
    // No memory: what it would release is released with the context's own services.
  }
}

void ContextRegistry::shutdown() {
  // Called by ~execution_context (and again by io_context's own destructor): idempotent.
  std::map<std::uint64_t, std::function<void()>> left;
  {
    std::lock_guard lock(book_->mutex);
    book_->open = false;
    left.swap(book_->left_behind);
  }
  // One member at a time, outside the lock (closing may destroy other credentials, which
  // leave the book), in join order; nothing here allocates.
  for (;;) {
    std::weak_ptr<void> owner;
    Enrolment::ShutdownFunction on_shutdown = nullptr;
    {
      std::lock_guard lock(book_->mutex);
      Enrolment* first = book_->members;
      if (!first) break;
      owner = first->owner_;
      on_shutdown = first->on_shutdown_;
      first->unlink();
    }
    if (auto alive = owner.lock()) on_shutdown(alive);
  }
  for (auto& [key, close] : left) {
    if (close) close();
  }
}

}  // namespace credkit::detail
