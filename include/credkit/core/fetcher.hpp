// credkit — the user-supplied function that obtains a new token, in three styles.
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/core/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace credkit {

namespace detail {
struct FetchOp;
struct FetchOpAccess;
}

/// Why the credential is fetching.
enum class FetchReason {
  initial,      ///< No token yet.
  proactive,    ///< The will-expire point was reached (or a retry after a failed proactive refresh).
  on_demand,    ///< A caller needed a token and the cached one is below minimum validity.
  expired,      ///< The cached token has expired.
  invalidated,  ///< A client reported the token as rejected (`TokenCredential::invalidate`).
};

/// The reason's name, e.g. "on_demand".
std::string_view to_string(FetchReason reason) noexcept;

/// What a fetcher is told about the fetch it performs. A cheap, copyable handle; copies
/// refer to the same fetch.
class FetchContext {
 public:
  /// Why this fetch runs.
  FetchReason reason() const noexcept;
  /// 1 for the first attempt, 2 and up for retries after consecutive failures.
  int attempt() const noexcept;
  /// When the credential stops waiting for this fetch (wall clock).
  std::chrono::system_clock::time_point deadline() const noexcept;
  /// The credential's executor (a strand): async fetchers may run their work on it. Empty
  /// once the credential's execution context was destroyed.
  const boost::asio::any_io_executor& executor() const noexcept;
  /// True once the credential no longer wants the result (closed, timed out). Thread-safe:
  /// blocking fetchers poll it between steps.
  bool cancelled() const noexcept;
  /// A slot emitted (on `executor()`) when the fetch is cancelled; bind it to the async
  /// operations the fetcher starts. Use only from `executor()`.
  boost::asio::cancellation_slot cancellation_slot() const noexcept;

  /// Now in the token service's clock, as far as the credential knows it: its wall clock
  /// plus the offset it learned from earlier `report_service_time` calls. Sources compute
  /// relative expiries (`expires_in`) from this (or from the service's own `Date`), so that
  /// every token time the credential sees is in service time. Thread-safe.
  std::chrono::system_clock::time_point now() const noexcept;
  /// Tells the credential what time the token service's clock showed just now (an HTTP
  /// `Date` header, a server time in the response body). Call it when the answer arrives,
  /// before completing the fetch: the credential pairs it with its own wall clock at once,
  /// learns the offset (ignoring offsets below `RefreshPolicy::clock_skew_tolerance`), and
  /// judges this fetch's token in service time. Thread-safe; times outside
  /// `RefreshPolicy::max_clock_skew` of the local clock are ignored with a log line.
  void report_service_time(std::chrono::system_clock::time_point service_now) const noexcept;

 private:
  friend struct detail::FetchOpAccess;  // credkit makes one for each fetch
  explicit FetchContext(std::shared_ptr<detail::FetchOp> op) noexcept : op_(std::move(op)) {}
  std::shared_ptr<detail::FetchOp> op_;
};

/// Completes an async fetch. Move-only; call exactly one of `succeed` or `fail`, from any
/// thread. Destroying it uncalled fails the fetch with `errc::fetcher_abandoned`, so a
/// fetcher that loses its completion never leaves callers waiting.
class FetchCompletion {
 public:
  /// Moves the obligation to complete.
  FetchCompletion(FetchCompletion&&) noexcept = default;
  /// Moves the obligation to complete; an uncalled completion it replaces counts as dropped.
  FetchCompletion& operator=(FetchCompletion&& other) noexcept;
  FetchCompletion(const FetchCompletion&) = delete;
  FetchCompletion& operator=(const FetchCompletion&) = delete;
  ~FetchCompletion();

  /// Delivers a token with an explicit expiry (it wins over what the token says).
  void succeed(AccessToken token);
  /// Delivers a token string; its expiry is read with `parse_token`.
  void succeed(std::string token);
  /// Fails the fetch. Throw-site exceptions keep their type; the credential wraps them in
  /// `Error(errc::fetch_failed)` with this as the cause unless it already is an `Error`.
  void fail(std::exception_ptr error);
  /// Fails the fetch with a credkit error.
  void fail(errc code, const std::string& message, ErrorDetails details = {});

 private:
  friend struct detail::FetchOpAccess;  // credkit makes one for each fetch
  explicit FetchCompletion(std::shared_ptr<detail::FetchOp> op) noexcept : op_(std::move(op)) {}
  std::shared_ptr<detail::FetchOp> op_;
};

/// Obtains a new token. Built with one of three styles:
/// - `Fetcher::blocking(f)`: `f(const FetchContext&)` returns `AccessToken` or `std::string`
///   (parsed) and may block; it runs on a blocking executor, never on the credential's
///   executor. By default that is an SDK-owned elastic pool: each call gets an idle thread or
///   a new one, so a hung call never delays another credential's fetch; idle threads retire
///   after 30 s and are never joined (a hung call cannot keep the process alive). A call that
///   outlives its fetch (timed out, cancelled) keeps running; at most 3 such abandoned calls
///   of one Fetcher (copies share the count) may run beside the live ones: beyond that a new
///   fetch fails at once with `fetch_failed` (retried with back-off) instead of taking a
///   thread. Live calls are not limited: credentials sharing one Fetcher (a fleet, one per
///   user) all refresh at once, each with at most one live call.
/// - `Fetcher::async(f)`: `f(FetchContext, FetchCompletion)` starts work and returns; the
///   completion is called later, from any thread.
/// - `coroutine_fetcher(f)`, in the opt-in header `<credkit/core/coroutine_fetcher.hpp>` (so
///   that `<boost/asio/awaitable.hpp>` reaches only the builds that use coroutines):
///   `f(FetchContext)` returns `boost::asio::awaitable<AccessToken>`, spawned on the
///   credential's executor with the fetch's cancellation bound to it.
/// An exception thrown by `f` fails the fetch. A default-constructed Fetcher is "none".
class Fetcher {
 public:
  /// The type-erased shape every style is converted to.
  using AsyncFunction = std::function<void(FetchContext, FetchCompletion)>;
  /// The shape of a blocking fetcher.
  using BlockingFunction = std::function<AccessToken(const FetchContext&)>;

  /// No fetcher.
  Fetcher() = default;

  /// An async fetcher.
  static Fetcher async(AsyncFunction function);

  /// A blocking fetcher. `executor`: where it runs; unset: the SDK-owned elastic pool (above).
  static Fetcher blocking(BlockingFunction function,
                          std::optional<boost::asio::any_io_executor> executor = std::nullopt);

  /// A blocking fetcher returning the token string (its expiry is parsed from it).
  template <typename F>
    requires std::is_invocable_r_v<std::string, F&, const FetchContext&> &&
             (!std::is_invocable_r_v<AccessToken, F&, const FetchContext&>)
  static Fetcher blocking(F function, std::optional<boost::asio::any_io_executor> executor = std::nullopt) {
    return blocking_string(std::function<std::string(const FetchContext&)>(std::move(function)), std::move(executor));
  }

  /// True unless this is "none".
  explicit operator bool() const noexcept { return static_cast<bool>(function_); }

  /// Starts a fetch. Called by the credential on its executor.
  void operator()(FetchContext context, FetchCompletion completion) const;

 private:
  static Fetcher blocking_string(std::function<std::string(const FetchContext&)> function,
                                 std::optional<boost::asio::any_io_executor> executor);
  explicit Fetcher(AsyncFunction f) : function_(std::move(f)) {}
  AsyncFunction function_;
};

}  // namespace credkit
