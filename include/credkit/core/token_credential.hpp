// credkit — the credential: caches a token, renews it before it expires, shares one fetch.
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/core/subscription.hpp>
#include <credkit/core/credential_health.hpp>
#include <credkit/core/token_credential_options.hpp>
#include <credkit/core/token_event.hpp>
#include <credkit/core/token_handle.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string_view>

namespace credkit {

namespace detail {
class CredentialState;
}

/// Completion signature of `TokenCredential::async_get_token`.
using GetTokenSignature = void(std::exception_ptr, TokenHandle);

/// A listener of credential events. Runs on the credential's executor, never under an
/// internal lock: it may call any member of the credential, `update_token` and `close`
/// included. An exception it throws is caught and logged.
class TokenCredential;
using TokenEventHandler = std::function<void(TokenCredential& credential, const TokenEvent& event)>;
/// Receives health transitions (`on_health_changed`).
using HealthHandler = std::function<void(TokenCredential& credential, const CredentialHealth& health)>;

/// Holds a short-lived access token and keeps it fresh.
///
/// One credential is shared (through `std::shared_ptr`) by every client that needs the same
/// identity, e.g. a chat client and a calling client, on any number of threads. It caches
/// the current token; in proactive mode it schedules the "will expire" point on a timer and
/// renews the token through its fetcher before it expires, retrying failed refreshes with
/// back-off; in on-demand mode it has no timers and fetches only when a caller needs a token.
/// At most one fetch is in flight; every concurrent caller shares its result.
///
/// Lifetime: the state lives behind a `shared_ptr`, so destroying the credential with
/// operations outstanding is safe: it closes, and outstanding operations complete with
/// `errc::credential_closed`. Timers hold only a weak reference.
///
/// Lifetime with the execution context: the io_context (or thread_pool, or any execution
/// context) behind the executor given to `create` may be destroyed before or after the
/// credential, stopped or never run. Destroying it first closes the credential on the thread
/// that destroys it, while Asio's services still exist: the timer and strand are released,
/// blocking `get_token` callers fail with `credential_closed`, listeners are released, and
/// pending `async_get_token` handlers that would have run on that context are destroyed
/// without being invoked (as Asio does with every handler pending when its context goes; a
/// `use_future` future then reports `broken_promise`). Afterwards every call fails with
/// `credential_closed` (`async_get_token` throws it from the initiating call, since there is
/// no executor left to complete on), `get_executor()` and `FetchContext::executor()` return an
/// empty executor, and a fetch still held by its fetcher is ignored when it completes. Only
/// destroying the context while another thread is using the credential at that moment is a
/// race, as for any Asio object. The credential keeps no outstanding work on the executor: a
/// work-tracked executor is used untracked.
///
/// Thread safety: every member function is safe to call concurrently from any thread.
class TokenCredential {
 public:
  /// The executor type: a strand over the executor given at creation.
  using executor_type = boost::asio::any_io_executor;

  /// Creates a credential whose timers, events and default completions run on `executor`
  /// (serialized through a strand). Throws `Error(errc::invalid_argument)` on bad options.
  static std::shared_ptr<TokenCredential> create(executor_type executor, TokenCredentialOptions options);

  /// Creates a credential on an SDK-owned executor: one background thread shared by all
  /// such credentials, joined when the last of them is closed and released. The first fetch
  /// starts at once on that thread, so a `refreshed` listener attached after `create` may
  /// miss the initial refresh; pass your own executor and subscribe before running it when
  /// you need every event.
  static std::shared_ptr<TokenCredential> create(TokenCredentialOptions options);

  /// Closes the credential (see `close`).
  ~TokenCredential();
  TokenCredential(const TokenCredential&) = delete;
  TokenCredential& operator=(const TokenCredential&) = delete;

  /// The credential's executor (a strand); empty once its execution context was destroyed.
  executor_type get_executor() const noexcept;

  /// Returns a token with more than the minimum validity left, fetching and waiting if
  /// needed. A fresh cached token is returned with no I/O and no lock.
  ///
  /// Static credentials (no fetcher, no `token_will_expire` listener) return their token as
  /// is, even expired.
  ///
  /// Errors (thrown as `Error`): `would_deadlock` if it would have to wait while called on a
  /// thread that runs the credential's execution context (any thread inside that io_context's
  /// `run()`, even when several threads run it, since all of them could be blocked; any worker
  /// of that thread_pool; whatever executor shape the credential or the caller used: strands,
  /// work-tracked or `blocking.never` executors, `any_io_executor` wrappers), or from one of
  /// its handlers (listeners, async fetchers, completion handlers); the fetch's error
  /// (`fetch_failed` with the fetcher's exception as cause, `fetch_timeout`,
  /// `token_expired_on_arrival`, ...); `no_token`; `credential_closed`.
  TokenHandle get_token() const;

  /// As `get_token()`, but gives up after `timeout` of real time with `errc::timeout`.
  TokenHandle get_token(std::chrono::milliseconds timeout) const;

  /// Asynchronously obtains a token (as `get_token`, without blocking a thread).
  ///
  /// (The format of every credkit async function's documentation: a one-line summary, then
  /// these `@par` sections in this order: Handler signature, Executor, Cancellation, Errors,
  /// Thread safety, Lifetimes, Preconditions; "None." where a section has nothing to say.)
  ///
  /// @par Handler signature
  /// `void(std::exception_ptr error, TokenHandle token)`: `error` is null on success, else
  /// holds an `Error`. Works with any completion token: callbacks, `use_future`,
  /// `use_awaitable` (throws the `Error`), `deferred`.
  ///
  /// @par Executor
  /// The handler runs on its associated executor, by default the credential's. It is always
  /// completed by posting: never inline from this call, never under an internal lock. Outstanding
  /// work is held on the credential's executor while the operation waits for a fetch.
  ///
  /// @par Cancellation
  /// Honours the handler's cancellation slot (terminal, partial and total): only this
  /// operation completes, with `errc::cancelled`; other waiters and the fetch carry on.
  /// Emit the signal from the thread that runs the handler's executor.
  ///
  /// @par Errors
  /// Delivered to the handler: as `get_token()`, without `would_deadlock`; `cancelled`.
  /// Thrown from the initiating call: `Error(errc::credential_closed)` once the credential's
  /// execution context was destroyed (no executor is left to complete on); `std::bad_alloc`.
  ///
  /// @par Thread safety
  /// May be called from any thread, concurrently, including from credkit callbacks.
  ///
  /// @par Lifetimes
  /// The operation holds the credential's state, not the `TokenCredential`: the credential may
  /// be destroyed (or closed) while it is pending, and the handler then completes with
  /// `credential_closed`. The handler is moved into the operation and destroyed after it runs;
  /// if the execution context is destroyed first, pending handlers are destroyed without being
  /// invoked. The `TokenHandle` delivered keeps its token alive independently of the credential.
  ///
  /// @par Preconditions
  /// None: a closed credential completes the handler with `credential_closed`.
  template <typename CompletionToken>
  auto async_get_token(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, GetTokenSignature>(
        [](auto handler, std::shared_ptr<detail::CredentialState> state) {
          initiate_get_token(std::move(state),
                             boost::asio::any_completion_handler<GetTokenSignature>(std::move(handler)));
        },
        token, state_);
  }

  /// Replaces the token from outside (the ACS / Agora "renew" style: the app fetched it).
  /// The string form reads the expiry with `parse_token`. Completes waiting callers,
  /// reschedules the will-expire point and raises `refreshed`.
  /// Throws `Error`: `invalid_token`, `token_expired_on_arrival`, `credential_closed`.
  void update_token(std::string_view token);
  /// As above, with an explicit expiry.
  void update_token(AccessToken token);

  /// Reports that a service rejected `rejected_token` (HTTP 401, revoked). If it is the
  /// current token, the credential stops handing it out and refreshes once, however many
  /// clients report it; a report about a token already replaced is ignored. Returns true
  /// when the report caused a refresh (or marked the token as rejected).
  bool invalidate(std::string_view rejected_token);
  /// As above, for a handle obtained from this credential.
  bool invalidate(const TokenHandle& rejected_token) { return rejected_token && invalidate(rejected_token.token()); }

  /// The cached token, if any, without fetching or waiting (may be stale or expired).
  TokenHandle cached_token() const;

  /// Listeners. Each returns a `Subscription`; the listener stays registered while the
  /// subscription lives.
  /// Listens to `will_expire` events; with no fetcher, such a listener renews the token.
  [[nodiscard]] Subscription on_token_will_expire(TokenEventHandler handler);
  /// Listens to `expired` events (once per token that expires unrenewed).
  [[nodiscard]] Subscription on_token_expired(TokenEventHandler handler);
  /// Listens to `refreshed` events (a new token was installed).
  [[nodiscard]] Subscription on_token_refreshed(TokenEventHandler handler);
  /// Listens to `refresh_failed` events (with the error, attempt and next retry).
  [[nodiscard]] Subscription on_refresh_failed(TokenEventHandler handler);

  /// Closes the credential: cancels timers and the running fetch, completes waiting callers
  /// with `credential_closed`; later calls fail with it. Idempotent; safe from a listener.
  /// Leaves no work on the executor. With the SDK-owned executor, the last close joins its
  /// thread (unless called from that thread).
  void close() noexcept;

  /// True once closed.
  bool is_closed() const noexcept;

  /// The offset the credential applies between its wall clock and the token service's
  /// (service time = local wall clock + offset), learned from the service times its fetcher
  /// reports (`FetchContext::report_service_time`; every HTTP-based source reports the
  /// response's `Date`). Zero until an offset of at least `RefreshPolicy::clock_skew_tolerance`
  /// is seen. Token expiries, freshness and the refresh schedule are judged in service time.
  std::chrono::nanoseconds clock_offset() const noexcept;

  /// A snapshot of the credential's health: its state, time left, next refresh or retry,
  /// consecutive failures, last error (scrubbed), last fetch latency and clock offset. Takes
  /// the credential's lock briefly; the read path (`get_token` with a fresh token) never does,
  /// and is not slowed by health. Thread-safe.
  CredentialHealth health() const;

  /// Listens to changes of `health().state`: the handler runs once per transition (never for
  /// a change of the other fields alone), on the credential's strand, with the new snapshot.
  /// Transitions that only time causes (fresh → below_min_validity → expired) are noticed on
  /// time in proactive mode, and in on-demand mode while a health listener is registered.
  [[nodiscard]] Subscription on_health_changed(HealthHandler handler);

  /// Tokens handed out (by `get_token`, `async_get_token`), counted only when the options
  /// have a `metrics` observer; 0 otherwise.
  std::uint64_t tokens_served() const noexcept;

 private:
  struct Private;
  explicit TokenCredential(std::shared_ptr<detail::CredentialState> state) noexcept;
  static void initiate_get_token(std::shared_ptr<detail::CredentialState> state,
                                 boost::asio::any_completion_handler<GetTokenSignature> handler);
  Subscription subscribe(TokenEventKind kind, TokenEventHandler handler);

  std::shared_ptr<detail::CredentialState> state_;
};

}  // namespace credkit
