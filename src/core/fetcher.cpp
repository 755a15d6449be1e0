#include <credkit/core/fetcher.hpp>
#include <credkit/core/parse_token.hpp>

#include "core/blocking_runner.hpp"
#include "core/fetch_op.hpp"

#include <boost/asio/post.hpp>

#include <atomic>
#include <string>
#include <optional>
#include <mutex>
#include <list>

namespace credkit {

std::string_view to_string(FetchReason reason) noexcept {
  switch (reason) {
    case FetchReason::initial: return "initial";
    case FetchReason::proactive: return "proactive";
    case FetchReason::on_demand: return "on_demand";
    case FetchReason::expired: return "expired";
    case FetchReason::invalidated: return "invalidated";
  }
  return "unknown";
}

FetchReason FetchContext::reason() const noexcept { return op_->reason; }
int FetchContext::attempt() const noexcept { return op_->attempt; }
std::chrono::system_clock::time_point FetchContext::deadline() const noexcept { return op_->deadline; }
const boost::asio::any_io_executor& FetchContext::executor() const noexcept { return op_->executor; }
bool FetchContext::cancelled() const noexcept { return op_->cancelled.load(std::memory_order_acquire); }
boost::asio::cancellation_slot FetchContext::cancellation_slot() const noexcept { return op_->signal.slot(); }

std::chrono::system_clock::time_point FetchContext::now() const noexcept {
  return op_->service_now ? op_->service_now() : std::chrono::system_clock::now();
}

void FetchContext::report_service_time(std::chrono::system_clock::time_point service_now) const noexcept {
  if (op_->on_service_time) op_->on_service_time(service_now);
}

FetchCompletion& FetchCompletion::operator=(FetchCompletion&& other) noexcept {
  if (this != &other) {
    FetchCompletion dropped(std::move(*this));
    op_ = std::move(other.op_);
  }
  return *this;
}

FetchCompletion::~FetchCompletion() {
  if (!op_ || op_->done.load(std::memory_order_acquire)) return;
  if (op_->starting.load(std::memory_order_acquire)) {
    op_->abandoned_while_starting.store(true, std::memory_order_release);
    return;
  }
  op_->complete(std::make_exception_ptr(Error(errc::fetcher_abandoned,
                                              "the async fetcher dropped its FetchCompletion without calling it")),
                {});
}

void FetchCompletion::succeed(AccessToken token) {
  if (auto op = std::move(op_)) op->complete(nullptr, std::move(token));
}

void FetchCompletion::succeed(std::string token) {
  auto op = std::move(op_);
  if (!op) return;
  AccessToken parsed;
  try {
    parsed = parse_token(token, op->parse);
  } catch (...) {
    op->complete(std::current_exception(), {});
    return;
  }
  op->complete(nullptr, std::move(parsed));
}

void FetchCompletion::fail(std::exception_ptr error) {
  if (auto op = std::move(op_)) {
    if (!error) error = std::make_exception_ptr(Error(errc::fetch_failed, "the fetcher failed without an error"));
    op->complete(std::move(error), {});
  }
}

void FetchCompletion::fail(errc code, const std::string& message, ErrorDetails details) {
  fail(std::make_exception_ptr(Error(code, message, std::move(details))));
}

Fetcher Fetcher::async(AsyncFunction function) {
  if (!function) throw_error(errc::invalid_argument, "Fetcher::async: the function is empty");
  return Fetcher(std::move(function));
}

namespace {
// On the SDK's elastic pool, abandoned calls of one blocking fetcher (copies of a Fetcher share
// them) that may still run: calls whose fetch is over (timed out, cancelled, closed) but which
// have not returned. Beyond it a fetch fails at once with fetch_failed (retried with back-off)
// instead of pinning one more thread. Live calls are not limited here: each credential has at
// most one, so a fleet sharing one fetcher refreshes all its credentials at once.
constexpr std::size_t kMaxAbandonedBlockingCalls = 3;

// The calls of one blocking fetcher running on the pool, to tell abandoned ones from live ones.
class BlockingCalls {
 public:
  using Entry = std::list<FetchContext>::iterator;
  /// Registers `ctx` as running; empty when too many abandoned calls still run.
  std::optional<Entry> enter(const FetchContext& ctx) {
    std::lock_guard lock(mutex_);
    std::size_t abandoned = 0;
    for (const auto& c : running_) abandoned += c.cancelled();
    if (abandoned >= kMaxAbandonedBlockingCalls) return std::nullopt;
    return running_.insert(running_.end(), ctx);
  }
  void leave(Entry e) noexcept {
    std::lock_guard lock(mutex_);
    running_.erase(e);
  }

 private:
  std::mutex mutex_;
  std::list<FetchContext> running_;
};

// Runs `call(ctx, done)` on the blocking executor; `call` completes `done` or throws.
template <typename Call>
Fetcher::AsyncFunction on_blocking_executor(Call call, std::optional<boost::asio::any_io_executor> executor) {
  auto shared = std::make_shared<Call>(std::move(call));
  auto calls = std::make_shared<BlockingCalls>();
  return [shared, calls, executor = std::move(executor)](FetchContext ctx, FetchCompletion done) {
    if (executor) {
      boost::asio::post(*executor, [shared, ctx = std::move(ctx), done = std::move(done)]() mutable {
        if (ctx.cancelled()) return;  // nobody waits for it any more
        try {
          (*shared)(ctx, done);
        } catch (...) {
          done.fail(std::current_exception());
        }
      });
      return;
    }
    // The SDK's elastic pool: a thread per call when none is idle, so a hung call of one
    // credential never delays another's.
    const auto entry = calls->enter(ctx);
    if (!entry) {
      done.fail(errc::fetch_failed, std::to_string(kMaxAbandonedBlockingCalls) +
                                        " earlier calls of this blocking fetcher are still running (hung?) after "
                                        "their fetches ended; not starting another until one returns");
      return;
    }
    // Unregisters the call when the last copy of the task goes: when the call returns, or when
    // the task is never run (no thread could be made).
    struct Leave {
      Leave(std::shared_ptr<BlockingCalls> c, BlockingCalls::Entry e) noexcept : calls(std::move(c)), entry(e) {}
      Leave(const Leave&) = delete;
      Leave& operator=(const Leave&) = delete;
      ~Leave() { calls->leave(entry); }
      std::shared_ptr<BlockingCalls> calls;
      BlockingCalls::Entry entry;
    };
    std::shared_ptr<Leave> leave;
    try {
      leave = std::make_shared<Leave>(calls, *entry);
    } catch (...) {
      calls->leave(*entry);
      throw;
    }
    auto box = std::make_shared<FetchCompletion>(std::move(done));
    detail::run_blocking([shared, leave, ctx = std::move(ctx), box]() mutable {
      auto left = std::move(leave);  // the count drops when this call returns
      FetchCompletion done = std::move(*box);
      if (ctx.cancelled()) return;  // nobody waits for it any more
      try {
        (*shared)(ctx, done);
      } catch (...) {
        done.fail(std::current_exception());
      }
    });
  };
}
}  // namespace

Fetcher Fetcher::blocking(BlockingFunction function, std::optional<boost::asio::any_io_executor> executor) {
  if (!function) throw_error(errc::invalid_argument, "Fetcher::blocking: the function is empty");
  return Fetcher(on_blocking_executor(
      [f = std::move(function)](const FetchContext& ctx, FetchCompletion& done) { done.succeed(f(ctx)); },
      std::move(executor)));
}

Fetcher Fetcher::blocking_string(std::function<std::string(const FetchContext&)> function,
                                 std::optional<boost::asio::any_io_executor> executor) {
  if (!function) throw_error(errc::invalid_argument, "Fetcher::blocking: the function is empty");
  return Fetcher(on_blocking_executor(
      [f = std::move(function)](const FetchContext& ctx, FetchCompletion& done) { done.succeed(f(ctx)); },
      std::move(executor)));
}

void Fetcher::operator()(FetchContext context, FetchCompletion completion) const {
  function_(std::move(context), std::move(completion));
}

}  // namespace credkit
