// credkit detail — the Asio layer of TokenCredential: owns the refresh state machine, the
// cached token, the timer, the waiters and the listeners, and performs the machine's actions.
//
// Locking discipline: `mutex_` guards everything mutable below it. Under the lock the state
// only changes data and arms the timer; every effect that can run user code (completing a
// waiter, raising an event, starting a fetcher) is collected into `Effects` and performed
// after the lock is released, by posting.
#pragma once

#include <credkit/core/token_credential.hpp>

#include "core/context_registry.hpp"
#include "core/deadline_service.hpp"
#include "core/default_runner.hpp"
#include "core/executor_affinity.hpp"
#include "core/fetch_op.hpp"
#include "core/post_gate.hpp"
#include "core/refresh_machine.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace credkit::detail {

class CredentialState : public std::enable_shared_from_this<CredentialState> {
 public:
  using Handler = boost::asio::any_completion_handler<GetTokenSignature>;
  using time_point = std::chrono::system_clock::time_point;

  CredentialState(std::shared_ptr<DefaultRunner> runner, boost::asio::any_io_executor executor,
                  TokenCredentialOptions options);
  ~CredentialState();

  /// Links the facade and takes the initial token (not kept in the state: it is published once).
  void start(std::weak_ptr<TokenCredential> facade, std::optional<AccessToken> initial_token);

  /// The lock-free path: a handle to the cached token if it is fresh, else empty.
  TokenHandle try_fresh() const noexcept;

  void get_async(Handler handler);
  TokenHandle get_blocking(std::optional<std::chrono::milliseconds> timeout);
  /// Counts a token handed out, when a metrics observer is set (one relaxed add).
  void count_served() const noexcept {
    if (metrics_) [[unlikely]] metrics_->served.fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t tokens_served() const noexcept {
    return metrics_ ? metrics_->served.load(std::memory_order_relaxed) : 0;
  }
  CredentialHealth health() const;
  Subscription subscribe_health(HealthHandler handler);
  void update(AccessToken token);
  void update(std::string_view token);
  bool invalidate(std::string_view rejected);
  TokenHandle cached() const;
  Subscription subscribe(TokenEventKind kind, TokenEventHandler handler);
  void close() noexcept;
  bool closed() const noexcept { return closed_flag_.load(std::memory_order_acquire); }
  const RefreshPolicy& policy() const noexcept { return machine_.config().policy; }
  /// Service time minus local wall-clock time (R16).
  std::chrono::nanoseconds clock_offset() const noexcept {
    return std::chrono::nanoseconds(offset_ns_.load(std::memory_order_acquire));
  }
  /// A fetcher saw the token service's clock at `service_now` (FetchContext::report_service_time).
  void report_service_time(time_point service_now) noexcept;

  /// The credential's strand; empty once its execution context has shut down.
  boost::asio::any_io_executor executor() const noexcept;
  std::uint64_t id() const noexcept { return id_; }

 private:
  struct Published {
    TokenHandle token;
    time_point fresh_until{};  // local wall-clock time: the hot path compares it with the local clock
  };
  struct BlockingWait {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    std::exception_ptr error;
    TokenHandle token;
  };
  struct Waiter {
    std::optional<Handler> handler;           // async waiters
    std::shared_ptr<BlockingWait> blocking;   // get_token() waiters
    boost::asio::any_io_executor work;        // keeps the executor's run() going while waiting
    std::chrono::nanoseconds since{0};        // Clock::elapsed() when it began to wait (metrics)
  };
  // A registered listener; `active` turns false when its subscription ends (or at close), so
  // an event already queued for it is skipped.
  template <typename Handler>
  struct Registered {
    Handler handler;
    std::atomic<bool> active{true};
  };
  struct Listener : Registered<TokenEventHandler> {
    TokenEventKind kind{};
  };
  using HealthListener = Registered<HealthHandler>;
  // What to deliver to whom, after the lock is released.
  template <typename Event, typename L>
  struct Pending {
    Event event;
    std::vector<std::shared_ptr<L>> listeners;
  };
  using PendingEvent = Pending<TokenEvent, Listener>;
  using PendingHealth = Pending<CredentialHealth, HealthListener>;
  // What the observer is told after the lock is released (metrics_ set only).
  struct MetricsNotes {
    bool fetch_finished = false;
    FetchReason fetch_reason = FetchReason::initial;
    std::error_code fetch_result;
    std::chrono::nanoseconds fetch_latency{0};
    bool refresh_failed = false;
    std::error_code refresh_failed_code;
    bool invalidated = false;
  };
  // The metrics observer and its label, in a block only credentials with an observer pay for.
  struct MetricsHooks {
    std::shared_ptr<MetricsObserver> observer;
    std::string name;
    mutable std::atomic<std::uint64_t> served{0};
  };
  struct Effects {
    std::vector<Waiter> waiters;
    std::exception_ptr error;
    TokenHandle token;
    std::vector<PendingEvent> events;
    std::shared_ptr<FetchOp> start_fetch;
    std::shared_ptr<FetchOp> cancel_fetch;
    std::unique_ptr<Timer> timer_to_destroy;
    std::vector<std::shared_ptr<Listener>> listeners_to_release;
    std::vector<std::shared_ptr<HealthListener>> health_listeners_to_release;
    std::optional<PendingHealth> health;
    MetricsNotes metrics;
  };

  // What only some credentials ever have, in a block made on first use: most of a large
  // fleet never has a waiter or a listener, and a fetch only at refresh time.
  struct Attachments {
    std::map<std::uint64_t, Waiter> waiters;
    std::uint64_t next_waiter_id = 1;
    std::vector<std::shared_ptr<Listener>> listeners;  // all kinds (few per credential)
    std::vector<std::weak_ptr<FetchOp>> live_ops;  // fetches that may still hold the strand (context shutdown)
    std::vector<std::shared_ptr<HealthListener>> health_listeners;
    std::chrono::nanoseconds fetch_started{0};  // Clock::elapsed() when the running fetch started
    std::optional<std::chrono::nanoseconds> last_fetch_latency;
  };

  [[gnu::noinline]] TokenHandle refill_thread_entry() const noexcept;  // the slow path, kept out of try_fresh

  /// Now in service time: the local wall clock plus the learned offset (saturating).
  time_point service_now() const noexcept;
  time_point to_local(time_point service) const noexcept;

  // Under mutex_.
  void apply_locked(const RefreshMachine::Actions& a, Effects& fx);
  Attachments& attachments_locked();  // throws std::bad_alloc
  /// Deactivates the listeners and hands them to `fx` to release outside the lock.
  void release_listeners_locked(Effects& fx);
  void publish_locked();
  void arm_locked(std::optional<time_point> deadline);
  void raise_locked(Effects& fx, TokenEventKind kind, const RefreshMachine::Actions& a);
  CredentialHealth health_locked(time_point now) const;
  HealthState health_state_locked(time_point now) const noexcept;
  /// Raises a health transition if the state changed since the last one seen.
  void note_health_locked(Effects& fx);
  /// The next time health changes by time alone (service time), while health listeners exist.
  std::optional<time_point> health_deadline_locked(time_point now) const noexcept;
  void report_metrics(const MetricsNotes& notes) const noexcept;
  /// Reports a caller that began waiting at `since` (Clock::elapsed()) and ended with `error`.
  void report_wait(std::chrono::nanoseconds since, const std::exception_ptr& error) const noexcept;
  std::exception_ptr demand_error_locked(RefreshMachine::Demand d) const;
  bool on_own_executor() const noexcept;
  /// The execution context is shutting down (ContextRegistry): close, and drop everything
  /// that refers to the context while its services are still alive.
  void on_context_shutdown() noexcept;
  /// Posts `f` to the strand; false (and `f` destroyed) once the context has shut down.
  template <typename F>
  bool post_to_strand(F&& f);
  boost::asio::any_io_executor tracked_work() const;

  // Outside mutex_.
  void run_effects(Effects& fx);
  template <typename Event, typename L>
  void deliver(const Pending<Event, L>& pending, const std::string& who);
  void on_timer(std::uint64_t seq);
  /// A DeadlineService deadline fell due: on_timer, on the strand.
  static void deadline_due(const std::shared_ptr<void>& owner, std::uint64_t seq);
  void on_fetch_done(std::uint64_t seq, std::exception_ptr error, AccessToken token);
  void cancel_waiter(std::uint64_t id);
  void unsubscribe(const std::shared_ptr<Listener>& listener);
  void complete(Waiter& w, std::exception_ptr error, TokenHandle token);
  // `work`: outstanding work already held on the executor (a waiter's), moved into the
  // delivery; empty: tracked anew.
  void post_completion(Handler handler, std::exception_ptr error, TokenHandle token,
                       boost::asio::any_io_executor work = {});

  // Constant after construction.
  const std::uint64_t id_;
  std::shared_ptr<DefaultRunner> runner_;  // first member: outlives every other member using its io_context
  // A strand over the executor given to create() (made untracked: the credential keeps no work
  // on it). Used only inside post_gate_ (below): the context's shutdown closes the gate, waits
  // for the posts under way, then empties it.
  boost::asio::any_io_executor executor_;
  ExecutorAffinity affinity_;  // which threads run the credential's handlers (would_deadlock)
  ContextRegistry::Enrolment enrolment_;  // joined in start()
  std::shared_ptr<Clock> clock_;
  Fetcher fetcher_;
  std::chrono::seconds fallback_lifetime_;  // ParseOptions::fallback_lifetime (its `now` is per parse)
  std::weak_ptr<TokenCredential> facade_;
  std::unique_ptr<const MetricsHooks> metrics_;  // null without an observer

  // Read without the lock on the hot path; written under it. No cache-line padding: with a
  // fresh token nothing here is written, and 100 000 credentials should not pay 128 B each.
  std::atomic<std::uint64_t> version_{1};
  std::atomic<std::int64_t> offset_ns_{0};  // written under mutex_; read anywhere
  std::atomic<bool> closed_flag_{false};
  const bool system_clock_;  // the hot path then reads the coarse clock without a virtual call
  mutable PostGate post_gate_;  // closed once the execution context has shut down

  mutable std::mutex mutex_;
  RefreshMachine machine_;  // also holds the RefreshPolicy: policy() below
  TokenHandle token_;                         // the secret behind machine_.token()
  Published published_;  // what refill_thread_entry hands out (a reference to token_'s block, no copy)
  std::exception_ptr last_error_;
  bool skew_warned_ = false;
  bool timer_armed_ = false;
  HealthState health_state_ = HealthState::expired;  // the last state seen (transitions)
  // The refresh timer: on the system clock, a deadline in the context's one shared timer
  // (DeadlineService); on any other clock (or an executor without a known context), a timer
  // of the clock's own making.
  DeadlineService::Deadline deadline_;
  std::unique_ptr<Timer> timer_;
  std::uint64_t timer_seq_ = 0;
  time_point timer_deadline_{};
  std::shared_ptr<FetchOp> fetch_op_;
  std::uint64_t fetch_seq_ = 0;
  std::unique_ptr<Attachments> attachments_;  // made on first use
};

}  // namespace credkit::detail
