// credkit detail — the one way credkit hands a result to a user's completion handler.
//
// The rule (docs/internals.md, "Completions"):
//  - Never inline. The hop is an asio::post to `via` (blocking.never); from the posted function
//    the handler is dispatched to its associated executor (default `via`). Preferring
//    blocking.never on the associated executor itself is not enough: a type-erased handler's is
//    an any_completion_executor, which has no blocking property, so the preference would be
//    dropped and an executor already running on this thread would run the handler in place.
//  - Never under a credkit lock: the handler runs later, from the posted function.
//  - Outstanding work is held on `via` from before the post until the posted function is done,
//    and on the associated executor until the handler has run. Each is owned by the function
//    it covers and released on the thread that ran it, never by the posting thread: once the
//    handler has run the app may return from run() and destroy its io_context or pool, and a
//    posting thread still holding work would then release it into a destroyed scheduler (or
//    into the next one allocated at its address, stopping that context early).
//  - A hop does not run its payload before the thread that made it has returned from the
//    post (or the dispatch, when that queued it for another thread): Asio's post() still
//    signals the woken thread's condition variable after unlocking, so a handler that ran
//    before it returned could let the app destroy the context under that signal. (HandOff)
//  - An operation in flight holds outstanding work on its handler's associated executor from
//    initiation until the handler is delivered, as Asio's own operations do: the app's
//    io_context::run() does not return while a credkit operation on it is pending, even when
//    the work is done on another thread (SharedCompleter holds it on the operation's executor;
//    post_completion then holds it on the handler's until the handler has run).
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include <atomic>
#include <exception>
#include <memory>
#include <thread>
#include <tuple>
#include <utility>

namespace credkit::detail {

/// Constructed around the dispatch by default: nothing.
struct NoCompletionScope {};

/// The two hops of one delivery: each hop's function waits until the thread that made the
/// hop has returned from it (unless it runs on that very thread: inline, or later).
struct HandOff {
  std::atomic<bool> posted{false};
  std::atomic<bool> dispatched{false};
  std::thread::id poster = std::this_thread::get_id();
  std::thread::id dispatcher;

  static void wait(const std::atomic<bool>& done, std::thread::id by) noexcept {
    if (by == std::this_thread::get_id()) return;
    while (!done.load(std::memory_order_acquire)) std::this_thread::yield();  // the other thread is past its enqueue
  }
};

/// Delivers `handler(args...)` by the rule above; `via_work` tracks work on `via`'s execution
/// context and moves into the posted function. (The credential passes its strand's inner
/// executor: tracking through a strand copies the strand, a heap allocation per completion.)
/// `Scope` is constructed on the `via` thread around the dispatch (the credential marks its own
/// callbacks with it). After the post returns the calling thread holds nothing of `via`'s.
template <typename Scope = NoCompletionScope, typename Handler, typename... Args>
void post_completion_via(const boost::asio::any_io_executor& via, boost::asio::any_io_executor via_work,
                         Handler handler, Args&&... args) {
  using boost::asio::execution::outstanding_work;
  auto hand_off = std::make_shared<HandOff>();
  boost::asio::post(via, [via, via_work = std::move(via_work), hand_off, h = std::move(handler),
                          ... a = std::forward<Args>(args)]() mutable {
    HandOff::wait(hand_off->posted, hand_off->poster);
    auto target = boost::asio::get_associated_executor(h, via);
    auto target_work = boost::asio::prefer(target, outstanding_work.tracked);
    [[maybe_unused]] Scope scope;
    hand_off->dispatcher = std::this_thread::get_id();
    boost::asio::dispatch(target, [target_work = std::move(target_work), hand_off, h = std::move(h),
                                   ... a = std::move(a)]() mutable {
      HandOff::wait(hand_off->dispatched, hand_off->dispatcher);
      std::move(h)(std::move(a)...);
    });
    hand_off->dispatched.store(true, std::memory_order_release);
  });
  hand_off->posted.store(true, std::memory_order_release);
}

/// Delivers `handler(args...)` by the rule above, tracking work through `via` itself.
template <typename Scope = NoCompletionScope, typename Handler, typename... Args>
void post_completion(const boost::asio::any_io_executor& via, Handler handler, Args&&... args) {
  post_completion_via<Scope>(via, boost::asio::prefer(via, boost::asio::execution::outstanding_work.tracked),
                             std::move(handler), std::forward<Args>(args)...);
}

/// A copyable completer of a move-only handler `void(std::exception_ptr, Results...)`, so it can
/// ride in a `std::function`: calling it delivers through post_completion; only the first call
/// has an effect. Until then it holds outstanding work on `via` (the executor the operation was
/// started on, which a handler's executor defaults to).
/// Copies share the handler; calls must not race (one producer completes).
template <typename... Results>
class SharedCompleter {
 public:
  using Handler = boost::asio::any_completion_handler<void(std::exception_ptr, Results...)>;

  SharedCompleter(boost::asio::any_io_executor via, Handler handler)
      : via_(std::move(via)),
        pending_(std::make_shared<Pending>(
            Pending{std::move(handler), boost::asio::prefer(via_, boost::asio::execution::outstanding_work.tracked)})) {}

  void operator()(std::exception_ptr error, Results... results) const {
    if (!pending_->handler) return;
    // The work this completer holds on `via` moves into the posted function (no second tracking).
    post_completion_via(via_, std::move(pending_->work), std::move(pending_->handler), std::move(error),
                        std::move(results)...);
  }

 private:
  struct Pending {
    Handler handler;
    boost::asio::any_io_executor work;  // `via`, tracked until the handler is delivered
  };
  boost::asio::any_io_executor via_;
  std::shared_ptr<Pending> pending_;
};

/// Runs `fn()` and returns what it threw (null when it returned). Callers complete with the
/// exception after this returns, outside any catch block: a completion may hand the exception
/// to another thread at once, and rethrowing it there while this thread is still inside the
/// handler of the same exception object would race on it.
template <typename Fn>
std::exception_ptr exception_from(Fn&& fn) noexcept {
  try {
    std::forward<Fn>(fn)();
    return nullptr;
  } catch (...) {
    return std::current_exception();
  }
}

/// Completes `handler` with `error` and value-initialized results (argument errors found before
/// any I/O).
template <typename... Results>
void post_failure(const boost::asio::any_io_executor& via,
                  boost::asio::any_completion_handler<void(std::exception_ptr, Results...)> handler,
                  std::exception_ptr error) {
  post_completion(via, std::move(handler), std::move(error), Results{}...);
}

}  // namespace credkit::detail
