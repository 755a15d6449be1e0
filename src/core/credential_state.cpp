#include "core/credential_state.hpp"
#include "core/token_admission.hpp"

#include <credkit/core/log.hpp>
#include <credkit/core/parse_token.hpp>

#include "core/callback_scope.hpp"
#include "core/coarse_clock.hpp"
#include "core/completion.hpp"
#include "core/metrics_notify.hpp"
#include "core/credential_strand.hpp"
#include "core/saturating_time.hpp"
#include "core/thread_read_cache.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <random>

namespace credkit::detail {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

namespace {

std::atomic<std::uint64_t> g_next_id{1};

// A distinct seed per credential without a std::random_device per credential (opening it
// cost a quarter of a credential's creation): one draw per process, then splitmix64 over a
// counter, which spreads consecutive inputs over the whole 64-bit range.
std::uint64_t random_seed() {
  static const std::uint64_t base = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  static std::atomic<std::uint64_t> counter{0};
  std::uint64_t z = base + 0x9e3779b97f4a7c15ULL * (counter.fetch_add(1, std::memory_order_relaxed) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z ? z : 1;
}

std::exception_ptr make_error(errc code, const std::string& message, ErrorDetails details = {}) {
  return std::make_exception_ptr(Error(code, message, std::move(details)));
}

// A copy of a credkit::Error for one recipient. An exception object shared by waiters on
// several threads has its reference count updated inside libsupc++ (uninstrumented atomics);
// giving each recipient its own object keeps every exception on one thread at a time, so a
// caller may inspect, rethrow and drop it freely. Other exception types are shared as they are.
std::exception_ptr copy_for_one(const std::exception_ptr& error) {
  if (!error) return nullptr;
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    try {
      return std::make_exception_ptr(Error(e));
    } catch (...) {
      return error;  // no memory for a copy: share the original
    }
  } catch (...) {
  }
  return error;
}

}  // namespace

CredentialState::CredentialState(std::shared_ptr<DefaultRunner> runner, asio::any_io_executor executor,
                                 TokenCredentialOptions options)
    : id_(g_next_id.fetch_add(1, std::memory_order_relaxed)),
      runner_(std::move(runner)),
      executor_(make_credential_strand(executor)),
      clock_(options.clock ? std::move(options.clock) : Clock::system()),
      fetcher_(std::move(options.fetcher)),
      fallback_lifetime_(options.parse.fallback_lifetime),
      system_clock_(clock_ == Clock::system()),
      machine_(shared_refresh_config(RefreshMachine::Config{options.mode, options.policy, static_cast<bool>(fetcher_)}),
               options.random_seed ? options.random_seed : random_seed()) {
  if (options.metrics) {
    auto hooks = std::make_unique<MetricsHooks>();
    hooks->observer = std::move(options.metrics);
    hooks->name = options.metrics_name;
    metrics_ = std::move(hooks);
  }
  affinity_ = ExecutorAffinity(executor_);
  if (system_clock_ && affinity_.context()) {
    // Made before start() enrols with the ContextRegistry, so that the registry (newer) shuts
    // down first and closes this credential while the shared timer still exists.
    deadline_.attach(asio::use_service<DeadlineService>(*affinity_.context()), executor);
  } else {
    timer_ = clock_->make_timer(executor_);
  }
}

CredentialState::~CredentialState() {
  // A fetch still held by its fetcher (a FetchContext or FetchCompletion kept past the
  // credential) holds a copy of the strand: the context's shutdown must still release it.
  if (!enrolment_.joined() || post_gate_.closed()) return;
  std::vector<std::weak_ptr<FetchOp>> held;
  if (attachments_) {
    for (auto& w : attachments_->live_ops) {
      if (!w.expired()) held.push_back(w);
    }
  }
  if (held.empty()) return;
  try {
    enrolment_.leave_behind([held = std::move(held)] {
      for (const auto& w : held) {
        if (auto op = w.lock()) {
          op->cancelled.store(true, std::memory_order_release);
          release_executor(*op);
        }
      }
    });
  } catch (...) {
  }
}

asio::any_io_executor CredentialState::executor() const noexcept {
  PostGate::Pass pass(post_gate_);
  return pass.entered() ? executor_ : asio::any_io_executor();
}

template <typename F>
bool CredentialState::post_to_strand(F&& f) {
  PostGate::Pass pass(post_gate_);
  if (!pass.entered()) return false;
  asio::post(executor_, std::forward<F>(f));
  return true;
}

// ---------------------------------------------------------------------------------------
// The execution context's lifetime (ContextRegistry)

void CredentialState::on_context_shutdown() noexcept {
  // 1. No post to the strand is under way (they pass post_gate_) and none can start.
  post_gate_.close();
  asio::any_io_executor strand = std::move(executor_);
  executor_ = asio::any_io_executor();
  // 2. Close: blocking waiters fail with credential_closed; async handlers, which can no
  //    longer run on the context, are destroyed (as Asio destroys every handler pending when
  //    its context goes); listeners are released; the timer goes while its service lives.
  Effects fx;
  std::vector<std::shared_ptr<FetchOp>> ops;
  {
    std::lock_guard lock(mutex_);
    if (!machine_.closed()) {
      apply_locked(machine_.on_close(), fx);
      closed_flag_.store(true, std::memory_order_release);
      release_listeners_locked(fx);
    }
    fx.timer_to_destroy = std::move(timer_);
    deadline_.cancel();
    if (attachments_) {
      for (auto& w : attachments_->live_ops) {
        if (auto op = w.lock()) ops.push_back(std::move(op));
      }
      attachments_->live_ops.clear();
    }
  }
  run_effects(fx);
  // 3. Fetches still held by fetchers drop their copy of the strand (FetchContext::executor()
  //    is empty from now on), then ours goes: all while the strand service is alive.
  for (auto& op : ops) {
    op->cancelled.store(true, std::memory_order_release);
    release_executor(*op);
  }
  ops.clear();
  strand = asio::any_io_executor();
}

void CredentialState::start(std::weak_ptr<TokenCredential> facade, std::optional<AccessToken> initial_token) {
  Effects fx;
  bool enrolled = false;
  {
    std::lock_guard lock(mutex_);
    facade_ = std::move(facade);
    // Enrolled after the strand and the timer exist, so that Asio (which shuts services down
    // newest first) shuts this one down before theirs.
    if (auto* context = affinity_.context()) {
      enrolled = enrolment_.join(*context, weak_from_this(), [](const std::shared_ptr<void>& owner) {
        static_cast<CredentialState*>(owner.get())->on_context_shutdown();
      });
    }
    std::optional<time_point> initial;
    std::optional<time_point> issued_at;
    if (initial_token) {
      initial = initial_token->expires_on;
      issued_at = initial_token->issued_at;
      token_ = TokenHandle::make(std::move(*initial_token));
    }
    apply_locked(machine_.start(service_now(), initial, issued_at), fx);
  }
  if (metrics_) {
    notify_metrics(metrics_->observer, [&](MetricsObserver& o) { o.credential_created(metrics_->name, facade_); });
  }
  run_effects(fx);
  if (affinity_.context() && !enrolled) on_context_shutdown();  // created while its context shuts down
}

// ---------------------------------------------------------------------------------------
// Service time (R16)

CredentialState::time_point CredentialState::service_now() const noexcept {
  return add_sat(clock_->now(), clock_offset());
}

CredentialState::time_point CredentialState::to_local(time_point service) const noexcept {
  // min and max stay "never" and "always" whatever the offset.
  if (service == time_point::min() || service == time_point::max()) return service;
  return sub_sat(service, clock_offset());
}

void CredentialState::report_service_time(time_point service) noexcept {
  const auto& p = policy();
  const nanoseconds measured = sub_sat(service, clock_->now());
  const nanoseconds bound = saturate_cast<nanoseconds>(p.max_clock_skew);
  const nanoseconds tolerance = saturate_cast<nanoseconds>(p.clock_skew_tolerance);
  if (tolerance == nanoseconds::max()) return;  // correction off
  if (measured > bound || measured < -bound) {
    log(LogLevel::warning, "the token service reported a time " + std::to_string(measured.count() / 1'000'000'000) +
                               " s from the local clock, beyond RefreshPolicy::max_clock_skew; ignored");
    return;
  }
  Effects fx;
  try {
    std::lock_guard lock(mutex_);
    if (machine_.closed()) return;
    const nanoseconds current = clock_offset();
    const nanoseconds change = sub_sat(measured, current);
    if (change < tolerance && change > -tolerance) return;  // the same offset, within reading error
    const nanoseconds applied = (measured < tolerance && measured > -tolerance) ? nanoseconds::zero() : measured;
    offset_ns_.store(applied.count(), std::memory_order_release);
    machine_.on_clock_shift(sub_sat(applied, current));
    if (!skew_warned_ && (applied >= std::chrono::minutes(1) || applied <= -std::chrono::minutes(1))) {
      skew_warned_ = true;
      const auto secs = applied.count() / 1'000'000'000;
      log(LogLevel::warning, "the local clock is " + std::to_string(secs < 0 ? -secs : secs) + " s " +
                                 (secs < 0 ? "ahead of" : "behind") +
                                 " the token service's; token times are judged in service time "
                                 "(TokenCredential::clock_offset)");
    }
    // The hot path's local fresh_until and the timer's wait both depend on the offset.
    publish_locked();
    timer_armed_ = false;
    RefreshMachine::Actions rearm;
    rearm.next_deadline = machine_.next_deadline();
    apply_locked(rearm, fx);
  } catch (...) {
    return;  // no memory to publish: the old offset stays in force
  }
  run_effects(fx);
}

// ---------------------------------------------------------------------------------------
// Hot path

TokenHandle CredentialState::try_fresh() const noexcept {
  const std::uint64_t v = version_.load(std::memory_order_acquire);
  if (const ThreadReadEntry* e = find_thread_read(id_, v)) {
    const auto now = system_clock_ ? coarse_system_now() : clock_->coarse_now();
    if (now < e->fresh_until) return TokenHandle(e->token);
    return {};
  }
  return refill_thread_entry();
}

TokenHandle CredentialState::refill_thread_entry() const noexcept {
  try {
    Published pub;
    std::uint64_t pv;
    {
      std::lock_guard lock(mutex_);
      pub = published_;
      pv = version_.load(std::memory_order_relaxed);
    }
    if (!pub.token || !(clock_->coarse_now() < pub.fresh_until)) return {};
    return remember_thread_read(id_, pv, pub.fresh_until, pub.token);
  } catch (...) {
    return {};
  }
}

// ---------------------------------------------------------------------------------------
// Operations

std::exception_ptr CredentialState::demand_error_locked(RefreshMachine::Demand d) const {
  switch (d) {
    case RefreshMachine::Demand::fail_closed: return make_error(errc::credential_closed, "the credential is closed");
    case RefreshMachine::Demand::fail_no_token:
      return make_error(errc::no_token,
                        "no token is cached and the credential has no fetcher or token_will_expire listener; "
                        "give it an initial token, a fetcher, or call update_token");
    case RefreshMachine::Demand::fail_last_error:
      return last_error_ ? copy_for_one(last_error_) : make_error(errc::fetch_failed, "the last refresh failed");
    default: return nullptr;
  }
}

void CredentialState::get_async(Handler handler) {
  if (post_gate_.closed()) {
    // No executor is left to complete on: fail the initiating call itself.
    throw Error(errc::credential_closed,
                "async_get_token: the credential's execution context was destroyed (the credential is closed)");
  }
  if (TokenHandle t = try_fresh()) {
    count_served();
    post_completion(std::move(handler), nullptr, std::move(t));
    return;
  }
  Effects fx;
  std::exception_ptr error;
  TokenHandle token;
  bool waiting = false;
  {
    std::lock_guard lock(mutex_);
    const auto [d, a] = machine_.on_demand(service_now());
    if (d == RefreshMachine::Demand::use_cached) {
      token = token_;
    } else if (d == RefreshMachine::Demand::wait) {
      waiting = true;
      Attachments& at = attachments_locked();
      const std::uint64_t id = at.next_waiter_id++;
      auto slot = asio::get_associated_cancellation_slot(handler);
      if (slot.is_connected()) {
        slot.assign([w = weak_from_this(), id](asio::cancellation_type) {
          if (auto s = w.lock()) s->cancel_waiter(id);
        });
      }
      Waiter waiter;
      waiter.work = tracked_work();
      waiter.handler.emplace(std::move(handler));
      if (metrics_) waiter.since = clock_->elapsed();
      at.waiters.emplace(id, std::move(waiter));
    } else {
      error = demand_error_locked(d);
    }
    apply_locked(a, fx);
  }
  if (!waiting) {
    if (token) count_served();
    post_completion(std::move(handler), std::move(error), std::move(token));
  }
  run_effects(fx);
}

// Keeps the executor's run() going while a waiter waits: outstanding work on the executor the
// credential was created with.
asio::any_io_executor CredentialState::tracked_work() const { return tracked_inner_work(executor()); }

// Would a blocking wait on this thread stall the handlers that must deliver the token? True on
// every thread running the credential's execution context, whatever executor shape reached it
// (ExecutorAffinity asks the context, not the executor's type), even when the context has
// several threads (all of them could be blocked); in a credkit callback (CallbackScope); and on
// the credential's own strand (for contexts ExecutorAffinity cannot ask).
bool CredentialState::on_own_executor() const noexcept {
  return affinity_.running_in_this_thread() || running_on_strand(executor());
}

TokenHandle CredentialState::get_blocking(std::optional<milliseconds> timeout) {
  if (TokenHandle t = try_fresh()) {
    count_served();
    return t;
  }
  Effects fx;
  std::exception_ptr error;
  TokenHandle token;
  std::shared_ptr<BlockingWait> wait;
  std::uint64_t waiter_id = 0;
  nanoseconds since{0};
  {
    std::lock_guard lock(mutex_);
    const auto [d, a] = machine_.on_demand(service_now());
    if (d == RefreshMachine::Demand::use_cached) {
      token = token_;
    } else if (d == RefreshMachine::Demand::wait) {
      if (on_own_executor()) {
        error = make_error(errc::would_deadlock,
                           "get_token() would block the credential's own executor while it waits for a refresh "
                           "that needs that executor; use async_get_token there");
      } else {
        wait = std::make_shared<BlockingWait>();
        Attachments& at = attachments_locked();
        waiter_id = at.next_waiter_id++;
        Waiter waiter;
        waiter.blocking = wait;
        if (metrics_) waiter.since = since = clock_->elapsed();
        at.waiters.emplace(waiter_id, std::move(waiter));
      }
    } else {
      error = demand_error_locked(d);
    }
    apply_locked(a, fx);
  }
  run_effects(fx);
  if (error) std::rethrow_exception(error);
  if (!wait) {
    count_served();
    return token;
  }

  std::unique_lock lock(wait->mutex);
  auto done = [&] { return wait->done; };
  // A deadline past what steady_clock holds (duration::max()) is no limit.
  const auto deadline = timeout ? add_sat(std::chrono::steady_clock::now(), *timeout)
                                : std::chrono::steady_clock::time_point::max();
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    if (!wait->cv.wait_until(lock, deadline, done)) {
      lock.unlock();
      {
        std::lock_guard state_lock(mutex_);
        if (attachments_) attachments_->waiters.erase(waiter_id);
      }
      lock.lock();
      if (!wait->done) {
        auto timed_out = make_error(errc::timeout, "get_token: no token within " + std::to_string(timeout->count()) + " ms");
        if (metrics_) report_wait(since, timed_out);
        std::rethrow_exception(timed_out);
      }
    }
  } else {
    wait->cv.wait(lock, done);
  }
  if (wait->error) std::rethrow_exception(wait->error);
  return wait->token;
}

void CredentialState::update(AccessToken token) {
  admit_token_text(token.token, "update_token");
  Effects fx;
  {
    std::lock_guard lock(mutex_);
    if (machine_.closed()) throw Error(errc::credential_closed, "update_token: the credential is closed");
    const auto now = service_now();
    const auto expires_on = token.expires_on;
    const auto issued_at = token.issued_at;
    TokenHandle handle = TokenHandle::make(std::move(token));  // allocated before the machine changes
    const auto a = machine_.on_update(now, expires_on, issued_at);
    if (a.expired_on_arrival) {
      throw Error(errc::token_expired_on_arrival, "update_token: the token is already expired (it expired at " +
                                                      format_time(expires_on) + ", service time " +
                                                      format_time(now) + ")");
    }
    token_ = std::move(handle);
    apply_locked(a, fx);
  }
  run_effects(fx);
}

void CredentialState::update(std::string_view token) {
  ParseOptions options;
  options.fallback_lifetime = fallback_lifetime_;
  options.now = service_now();
  update(parse_token(token, options));
}

bool CredentialState::invalidate(std::string_view rejected) {
  Effects fx;
  bool accepted = false;
  {
    std::lock_guard lock(mutex_);
    if (!token_ || !machine_.token() || token_.token() != rejected) return false;
    auto a = machine_.on_invalidate(service_now(), machine_.token()->generation);
    accepted = a.accepted;
    fx.metrics.invalidated = accepted;
    apply_locked(a, fx);
  }
  run_effects(fx);
  return accepted;
}

TokenHandle CredentialState::cached() const {
  std::lock_guard lock(mutex_);
  return token_;
}

Subscription CredentialState::subscribe(TokenEventKind kind, TokenEventHandler handler) {
  if (!handler) throw Error(errc::invalid_argument, "subscribe: the handler is empty");
  auto listener = std::make_shared<Listener>();
  listener->kind = kind;
  listener->handler = std::move(handler);
  Effects fx;
  {
    std::lock_guard lock(mutex_);
    if (machine_.closed()) return Subscription{};
    attachments_locked().listeners.push_back(listener);
    if (kind == TokenEventKind::will_expire) {
      apply_locked(machine_.on_listeners_changed(service_now(), true), fx);
    }
  }
  run_effects(fx);
  return Subscription([w = weak_from_this(), listener] {
    listener->active.store(false, std::memory_order_release);
    if (auto s = w.lock()) s->unsubscribe(listener);
  });
}

void CredentialState::unsubscribe(const std::shared_ptr<Listener>& listener) {
  Effects fx;
  {
    std::lock_guard lock(mutex_);
    if (!attachments_) return;  // released by close()
    auto& listeners = attachments_->listeners;
    std::erase(listeners, listener);
    if (listener->kind == TokenEventKind::will_expire &&
        std::none_of(listeners.begin(), listeners.end(),
                     [](const auto& l) { return l->kind == TokenEventKind::will_expire; })) {
      apply_locked(machine_.on_listeners_changed(service_now(), false), fx);
    }
  }
  run_effects(fx);
}

void CredentialState::close() noexcept {
  Effects fx;
  {
    std::lock_guard lock(mutex_);
    if (machine_.closed()) return;
    apply_locked(machine_.on_close(), fx);
    closed_flag_.store(true, std::memory_order_release);
    fx.timer_to_destroy = std::move(timer_);
    deadline_.cancel();
    // runner_ stays: the strand and timers built on its io_context must go first, which
    // happens when this state is destroyed (runner_ is its first member, so destroyed last).
    release_listeners_locked(fx);
  }
  run_effects(fx);
}

void CredentialState::cancel_waiter(std::uint64_t id) {
  Waiter w;
  {
    std::lock_guard lock(mutex_);
    if (!attachments_) return;
    auto& waiters = attachments_->waiters;
    auto it = waiters.find(id);
    if (it == waiters.end()) return;
    w = std::move(it->second);
    waiters.erase(it);
  }
  complete(w, make_error(errc::cancelled, "async_get_token was cancelled"), {});
}

// ---------------------------------------------------------------------------------------
// Timer and fetch completions

void CredentialState::arm_locked(std::optional<time_point> deadline) {
  if (!timer_ && !deadline_.attached()) return;
  if (!deadline) {
    if (timer_armed_) {
      ++timer_seq_;
      timer_armed_ = false;
      if (timer_) {
        timer_->cancel();
      } else {
        deadline_.cancel();
      }
    }
    return;
  }
  if (timer_armed_ && timer_deadline_ == *deadline) return;
  // Wait at most wake_check_interval: timers measure elapsed time, which stops while the
  // machine sleeps and ignores wall-clock steps; re-reading the wall clock bounds the lag.
  auto wait = sub_sat(*deadline, service_now());
  wait = std::clamp<nanoseconds>(wait, nanoseconds::zero(), saturate_cast<nanoseconds>(policy().wake_check_interval));
  const std::uint64_t seq = ++timer_seq_;
  timer_armed_ = true;
  timer_deadline_ = *deadline;
  if (!timer_) {
    deadline_.arm(wait, weak_from_this(), &CredentialState::deadline_due, seq);
    return;
  }
  timer_->async_wait_for(wait, [w = weak_from_this(), seq](bool aborted) {
    if (aborted) return;
    if (auto s = w.lock()) s->on_timer(seq);
  });
}

void CredentialState::deadline_due(const std::shared_ptr<void>& owner, std::uint64_t seq) {
  auto self = std::static_pointer_cast<CredentialState>(owner);
  try {
    // As a timer of its own would: the wake runs on the credential's strand.
    if (self->post_to_strand([w = std::weak_ptr<CredentialState>(self), seq] {
          if (auto s = w.lock()) s->on_timer(seq);
        })) {
      return;
    }
  } catch (...) {
    // No memory to post: wake here (on_timer only takes the lock and posts its effects), rather
    // than lose the wake.
    self->on_timer(seq);
  }
}

void CredentialState::on_timer(std::uint64_t seq) {
  Effects fx;
  {
    std::lock_guard lock(mutex_);
    if (seq != timer_seq_ || !timer_armed_ || machine_.closed()) return;
    timer_armed_ = false;
    // Also on an intermediate wake (nothing due yet): the machine re-reads the clock, notices
    // a step backwards (R17) and answers with the deadline to wait for now.
    apply_locked(machine_.on_timer(service_now()), fx);
  }
  run_effects(fx);
}

void CredentialState::on_fetch_done(std::uint64_t seq, std::exception_ptr error, AccessToken token) {
  Effects fx;
  {
    std::lock_guard lock(mutex_);
    if (machine_.closed() || !fetch_op_ || seq != fetch_seq_) return;  // a fetch we gave up on
    const FetchReason reason = fetch_op_->reason;
    fetch_op_.reset();
    const auto now = service_now();
    const nanoseconds latency = sub_sat(clock_->elapsed(), attachments_locked().fetch_started);
    attachments_->last_fetch_latency = std::max(latency, nanoseconds::zero());
    fx.metrics.fetch_finished = true;
    fx.metrics.fetch_reason = reason;
    fx.metrics.fetch_latency = *attachments_->last_fetch_latency;
    if (!error) error = admission_error(token.token, "the token fetcher's result");
    if (!error) {
      const auto expires_on = token.expires_on;
      const auto issued_at = token.issued_at;
      TokenHandle handle = TokenHandle::make(std::move(token));  // allocated before the machine changes
      // The machine judges the token (R4): one expired on arrival fails the fetch, retryably.
      const auto a = machine_.on_fetch_succeeded(now, expires_on, issued_at);
      if (a.expired_on_arrival) {
        last_error_ = make_error(errc::token_expired_on_arrival,
                                 "the token returned by the fetcher is already expired (it expired at " +
                                     format_time(expires_on) + ", service time " + format_time(now) + ")");
        fx.metrics.fetch_result = make_error_code(errc::token_expired_on_arrival);
      } else {
        token_ = std::move(handle);
        last_error_ = nullptr;
      }
      apply_locked(a, fx);
    } else {
      ErrorDetails details;
      bool is_credkit_error = false;
      try {
        std::rethrow_exception(error);
      } catch (const Error& e) {
        is_credkit_error = true;
        details = e.details();
      } catch (...) {
      }
      const bool retryable = is_retryable(error);
      if (!is_credkit_error) {
        details.cause = error;
        error = make_error(errc::fetch_failed, "the token fetcher failed: " + message_of(error), details);
      }
      last_error_ = error;
      fx.metrics.fetch_result = error_code_of(error);
      apply_locked(machine_.on_fetch_failed(now, retryable, details.retry_after), fx);
    }
  }
  run_effects(fx);
}

// ---------------------------------------------------------------------------------------
// Applying the machine's actions

void CredentialState::publish_locked() {
  Published pub;
  if (machine_.token()) {
    pub.token = token_;
    pub.fresh_until = to_local(machine_.fresh_until());
  }
  published_ = std::move(pub);
  version_.fetch_add(1, std::memory_order_release);
}

void CredentialState::raise_locked(Effects& fx, TokenEventKind kind, const RefreshMachine::Actions& a) {
  if (!attachments_) return;
  PendingEvent pe;
  for (const auto& l : attachments_->listeners) {
    if (l->kind == kind) pe.listeners.push_back(l);
  }
  if (pe.listeners.empty()) return;
  pe.event.kind = kind;
  pe.event.token = token_;
  pe.event.reason = a.reason;
  if (kind == TokenEventKind::refresh_failed) {
    pe.event.error = copy_for_one(last_error_);
    pe.event.code = error_code_of(last_error_);
    pe.event.attempt = a.attempt;
    if (a.next_retry) pe.event.next_retry = to_local(*a.next_retry);
  }
  fx.events.push_back(std::move(pe));
}

void CredentialState::apply_locked(const RefreshMachine::Actions& a, Effects& fx) {
  if (a.fetch_timed_out) {
    last_error_ = make_error(errc::fetch_timeout,
                             "no token arrived within " + std::to_string(policy().fetch_timeout.count()) +
                                 " ms (RefreshPolicy::fetch_timeout) from the fetcher or a token_will_expire listener");
    if (fetch_op_ && attachments_) {  // a fetcher's fetch (not a listener's update_token) ended by the timeout
      attachments_->last_fetch_latency = saturate_cast<nanoseconds>(policy().fetch_timeout);
      fx.metrics.fetch_finished = true;
      fx.metrics.fetch_reason = fetch_op_->reason;
      fx.metrics.fetch_result = make_error_code(errc::fetch_timeout);
      fx.metrics.fetch_latency = *attachments_->last_fetch_latency;
    }
  }
  if (a.fire_refresh_failed) {
    fx.metrics.refresh_failed = true;
    fx.metrics.refresh_failed_code = error_code_of(last_error_);
  }
  if (a.cancel_fetch && fetch_op_) {
    fx.cancel_fetch = std::move(fetch_op_);
    fetch_op_.reset();
  }
  if (a.publish || a.fire_refreshed) publish_locked();
  switch (a.complete) {
    case RefreshMachine::Completion::none: break;
    case RefreshMachine::Completion::success: fx.token = token_; break;
    case RefreshMachine::Completion::failure: fx.error = last_error_; break;
    case RefreshMachine::Completion::closed:
      // Only waiters receive it: closing a credential nobody waits on builds no error (whose
      // message would go through the scrubber).
      if (attachments_ && !attachments_->waiters.empty()) {
        fx.error = make_error(errc::credential_closed, "the credential was closed while waiting for a token");
      }
      break;
  }
  if (a.complete != RefreshMachine::Completion::none) {
    if (attachments_) {
      for (auto& [id, w] : attachments_->waiters) fx.waiters.push_back(std::move(w));
      attachments_->waiters.clear();
    }
  }
  if (a.fire_refresh_failed) raise_locked(fx, TokenEventKind::refresh_failed, a);
  if (a.fire_expired) raise_locked(fx, TokenEventKind::expired, a);
  if (a.fire_will_expire) raise_locked(fx, TokenEventKind::will_expire, a);
  if (a.fire_refreshed) raise_locked(fx, TokenEventKind::refreshed, a);
  if (a.start_fetch) {
    auto op = std::make_shared<FetchOp>();
    op->reason = a.reason;
    op->attempt = a.attempt;
    const auto service_start = service_now();
    op->deadline = add_sat(clock_->now(), policy().fetch_timeout);  // local: the fetcher's own clock
    op->executor = executor();
    auto& live_ops = attachments_locked().live_ops;
    std::erase_if(live_ops, [](const std::weak_ptr<FetchOp>& w) { return w.expired(); });
    live_ops.push_back(op);
    attachments_->fetch_started = clock_->elapsed();
    op->parse.fallback_lifetime = fallback_lifetime_;
    op->parse.now = service_start;  // fallback lifetimes count from the fetch start, in service time
    op->service_now = [w = weak_from_this()] {
      auto s = w.lock();
      return s ? s->service_now() : std::chrono::system_clock::now();
    };
    op->on_service_time = [w = weak_from_this()](time_point t) {
      if (auto s = w.lock()) s->report_service_time(t);
    };
    const std::uint64_t seq = ++fetch_seq_;
    op->on_done = [w = weak_from_this(), seq](std::exception_ptr e, AccessToken t) {
      if (auto s = w.lock()) s->on_fetch_done(seq, std::move(e), std::move(t));
    };
    fetch_op_ = op;
    fx.start_fetch = std::move(op);
  }
  note_health_locked(fx);
  if (!machine_.closed()) {
    std::optional<time_point> deadline = a.next_deadline;
    if (attachments_ && !attachments_->health_listeners.empty()) {
      if (auto h = health_deadline_locked(service_now()); h && (!deadline || *h < *deadline)) deadline = h;
    }
    arm_locked(deadline);
  }
}

CredentialState::Attachments& CredentialState::attachments_locked() {
  if (!attachments_) attachments_ = std::make_unique<Attachments>();
  return *attachments_;
}

void CredentialState::release_listeners_locked(Effects& fx) {
  if (!attachments_) return;
  auto& listeners = attachments_->listeners;
  for (auto& l : listeners) l->active.store(false, std::memory_order_release);
  fx.listeners_to_release = std::move(listeners);
  listeners.clear();
  auto& health_listeners = attachments_->health_listeners;
  for (auto& l : health_listeners) l->active.store(false, std::memory_order_release);
  fx.health_listeners_to_release = std::move(health_listeners);
  health_listeners.clear();
}

void CredentialState::complete(Waiter& w, std::exception_ptr error, TokenHandle token) {
  if (metrics_) {
    if (token) count_served();
    report_wait(w.since, error);
  }
  if (w.blocking) {
    {
      std::lock_guard lock(w.blocking->mutex);
      w.blocking->done = true;
      w.blocking->error = std::move(error);
      w.blocking->token = std::move(token);
    }
    w.blocking->cv.notify_all();
  } else if (w.handler) {
    // The work the waiter held moves into the delivery: released on the executor's thread once
    // the handler has run, never here (this may be a fetcher's thread, and the app may destroy
    // its io_context as soon as the handler has run).
    post_completion(std::move(*w.handler), std::move(error), std::move(token), std::move(w.work));
  }
}

void CredentialState::post_completion(Handler handler, std::exception_ptr error, TokenHandle token,
                                      asio::any_io_executor work) {
  // Delivered by the one completion rule (core/completion.hpp), through the credential's strand;
  // a handler dispatched inline from there runs on the strand, so it is marked as a callback.
  // Once the execution context has shut down there is nowhere to run it: the handler (and any
  // work, released while the context's services still exist: shutdown is what closed us) is
  // then destroyed on return (outside post_gate_), as Asio destroys handlers pending at shutdown.
  PostGate::Pass pass(post_gate_);
  if (!pass.entered()) return;
  if (!work) work = tracked_inner_work(executor_);
  ::credkit::detail::post_completion_via<CallbackScope>(executor_, std::move(work), std::move(handler),
                                                        std::move(error), std::move(token));
}

// Runs on the strand: hands `pending.event` to each listener still subscribed, as a callback;
// what a listener throws is logged (scrubbed) and the others still run.
template <typename Event, typename L>
void CredentialState::deliver(const Pending<Event, L>& pending, const std::string& who) {
  auto facade = facade_.lock();
  if (!facade) return;
  CallbackScope scope;
  for (const auto& l : pending.listeners) {
    if (!l->active.load(std::memory_order_acquire)) continue;
    try {
      l->handler(*facade, pending.event);
    } catch (const std::exception& e) {
      log(LogLevel::error, who + " threw: " + e.what());
    } catch (...) {
      log(LogLevel::error, who + " threw a non-standard exception");
    }
  }
}

void CredentialState::run_effects(Effects& fx) {
  for (auto& w : fx.waiters) complete(w, copy_for_one(fx.error), fx.token);
  if (fx.cancel_fetch) {
    auto op = std::move(fx.cancel_fetch);
    op->cancelled.store(true, std::memory_order_release);
    post_to_strand([op] {
      CallbackScope scope;  // runs the async fetcher's cancellation handler
      op->signal.emit(asio::cancellation_type::terminal);
    });
  }
  if (!fx.events.empty()) {
    post_to_strand([self = shared_from_this(), events = std::move(fx.events)] {
      for (const auto& pe : events) {
        self->deliver(pe, std::string("a token_") + std::string(to_string(pe.event.kind)) + " listener");
      }
    });
  }
  if (fx.start_fetch) {
    post_to_strand([self = shared_from_this(), op = std::move(fx.start_fetch)] {
      if (op->done.load() || op->cancelled.load()) return;
      CallbackScope scope;
      op->starting.store(true, std::memory_order_release);
      std::exception_ptr thrown;
      try {
        FetchOpAccess::invoke(self->fetcher_, op);
      } catch (...) {
        thrown = std::current_exception();
      }
      op->starting.store(false, std::memory_order_release);
      if (thrown) {
        op->complete(thrown, {});
      } else if (op->abandoned_while_starting.load(std::memory_order_acquire)) {
        op->complete(make_error(errc::fetcher_abandoned,
                                "the async fetcher dropped its FetchCompletion without calling it"),
                     {});
      }
    });
  }
  if (fx.health) {
    post_to_strand([self = shared_from_this(), pending = std::move(*fx.health)] {
      self->deliver(pending, "an on_health_changed listener");
    });
  }
  if (metrics_) report_metrics(fx.metrics);
  fx.listeners_to_release.clear();
  fx.health_listeners_to_release.clear();
  fx.timer_to_destroy.reset();
}

}  // namespace credkit::detail
