#include "core/deadline_service.hpp"

#include "core/credential_strand.hpp"

#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <utility>

namespace credkit::detail {

namespace asio = boost::asio;

asio::execution_context::id DeadlineService::id;

namespace {

// The executor the shared timer waits on: the context's own executor when `executor` is one
// of an io_context or a thread_pool, or a strand over one, so that no credential's strand
// serialises the wakes of the others; otherwise `executor` itself. Untracked, like the
// credential's strand: only a pending wait (not the timer itself) keeps run() going.
asio::any_io_executor timer_executor(const asio::any_io_executor& executor) {
  if (auto native = native_executor(executor, /*through_strand=*/true)) return native;
  return asio::prefer(executor, asio::execution::outstanding_work.untracked);
}

}  // namespace

struct DeadlineService::Book {
  std::mutex mutex;
  bool open = true;
  std::vector<Deadline*> heap;       // a min-heap on Deadline::at_; each knows its index
  std::optional<asio::steady_timer> timer;  // made with the first deadline's executor
  bool waiting = false;              // a wait of `timer` is pending...
  time_point waiting_until{};        // ...until then
  std::uint64_t wait_generation = 0;  // tells a replaced wait's handler it is stale

  // Heap maintenance, under the mutex.
  void place(std::size_t i, Deadline* d) noexcept {
    heap[i] = d;
    d->index_ = i;
  }
  void sift_up(std::size_t i) noexcept {
    Deadline* d = heap[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!(d->at_ < heap[parent]->at_)) break;
      place(i, heap[parent]);
      i = parent;
    }
    place(i, d);
  }
  void sift_down(std::size_t i) noexcept {
    Deadline* d = heap[i];
    const std::size_t n = heap.size();
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1]->at_ < heap[child]->at_) ++child;
      if (!(heap[child]->at_ < d->at_)) break;
      place(i, heap[child]);
      i = child;
    }
    place(i, d);
  }
  void erase(Deadline& d) noexcept {
    const std::size_t i = d.index_;
    d.index_ = Deadline::kNotQueued;
    Deadline* last = heap.back();
    heap.pop_back();
    if (last == &d) return;
    place(i, last);
    sift_down(i);
    sift_up(last->index_);
  }

  // Keeps one wait pending for the earliest deadline (none when the heap is empty, so that an
  // io_context with no due work can return from run()).
  void rearm(const std::shared_ptr<Book>& self) {
    if (!open || !timer) return;
    if (heap.empty()) {
      if (waiting) {
        waiting = false;
        ++wait_generation;
        timer->cancel();
      }
      return;
    }
    const time_point earliest = heap.front()->at_;
    if (waiting && waiting_until <= earliest) return;  // it wakes in time; a wake re-checks
    waiting = true;
    waiting_until = earliest;
    const std::uint64_t generation = ++wait_generation;
    timer->expires_at(earliest);  // cancels a pending wait: its handler sees a stale generation
    timer->async_wait([weak = std::weak_ptr<Book>(self), generation](const boost::system::error_code&) {
      if (auto book = weak.lock()) book->wake(book, generation);
    });
  }

  void wake(const std::shared_ptr<Book>& self, std::uint64_t generation) {
    struct Due {
      std::weak_ptr<void> owner;
      DueFunction due;
      std::uint64_t seq;
    };
    std::vector<Due> due;
    {
      std::lock_guard lock(mutex);
      if (generation != wait_generation) return;  // replaced or cancelled meanwhile
      waiting = false;
      const time_point now = std::chrono::steady_clock::now();
      while (!heap.empty() && heap.front()->at_ <= now) {
        Deadline& d = *heap.front();
        due.push_back(Due{std::move(d.owner_), d.due_, d.seq_});
        erase(d);
      }
      rearm(self);
    }
    for (auto& d : due) {
      if (auto owner = d.owner.lock()) d.due(owner, d.seq);
    }
  }
};

DeadlineService::DeadlineService(asio::execution_context& context)
    : asio::execution_context::service(context), book_(std::make_shared<Book>()) {
  // Asio shuts services down newest first: the steady timer's service, made first, outlives
  // the shutdown() below that destroys the shared timer.
  using TimerTraits = asio::detail::chrono_time_traits<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>>;
  asio::use_service<asio::detail::deadline_timer_service<TimerTraits>>(context);
}

DeadlineService::~DeadlineService() { shutdown(); }

void DeadlineService::shutdown() {
  // Called by ~execution_context (and again by io_context's destructor): idempotent. The
  // timer goes now, while Asio's timer service lives; deadlines destroyed later find the book
  // closed and empty.
  std::optional<asio::steady_timer> timer;
  {
    std::lock_guard lock(book_->mutex);
    book_->open = false;
    for (Deadline* d : book_->heap) d->index_ = Deadline::kNotQueued;
    book_->heap.clear();
    timer.swap(book_->timer);
  }
}

void DeadlineService::Deadline::attach(DeadlineService& service, const asio::any_io_executor& executor) {
  book_ = service.book_;
  std::lock_guard lock(book_->mutex);
  if (book_->open && !book_->timer) book_->timer.emplace(timer_executor(executor));
}

void DeadlineService::Deadline::arm(std::chrono::nanoseconds after, std::weak_ptr<void> owner, DueFunction due,
                                    std::uint64_t seq) {
  if (!book_) return;
  const time_point now = std::chrono::steady_clock::now();
  // Saturate: a far deadline must not overflow the clock.
  const time_point at = after >= time_point::max() - now ? time_point::max() : now + after;
  std::lock_guard lock(book_->mutex);
  if (!book_->open) return;
  owner_ = std::move(owner);
  due_ = due;
  seq_ = seq;
  at_ = at;
  auto& heap = book_->heap;
  if (index_ == kNotQueued) {
    heap.push_back(this);  // may throw: nothing changed yet
    index_ = heap.size() - 1;
  }
  book_->sift_down(index_);
  book_->sift_up(index_);
  book_->rearm(book_);
}

void DeadlineService::Deadline::cancel() noexcept {
  if (!book_) return;
  std::lock_guard lock(book_->mutex);
  if (index_ == kNotQueued) return;
  book_->erase(*this);
  owner_.reset();
  try {
    book_->rearm(book_);
  } catch (...) {
    // Only a new wait can throw (no memory); the pending one then wakes early and re-arms.
  }
}

}  // namespace credkit::detail
