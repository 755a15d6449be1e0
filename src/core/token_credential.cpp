#include <credkit/core/token_credential.hpp>

#include "core/metrics_name.hpp"
#include "core/credential_state.hpp"
#include "core/token_admission.hpp"
#include "core/default_runner.hpp"

#include <credkit/core/parse_token.hpp>

namespace credkit {

void TokenCredentialOptions::validate() const {
  policy.validate();
  // A year bounds the fallback expiry far from time_point's range and from any real token.
  if (parse.fallback_lifetime.count() <= 0 || parse.fallback_lifetime > std::chrono::hours(24 * 366)) {
    throw Error(errc::invalid_argument, "ParseOptions::fallback_lifetime must be in (0, 1 year]");
  }
  detail::check_metrics_name(metrics_name, "TokenCredentialOptions::metrics_name");
}

TokenCredential::TokenCredential(std::shared_ptr<detail::CredentialState> state) noexcept : state_(std::move(state)) {}

TokenCredential::~TokenCredential() {
  if (state_) state_->close();
}

namespace {
std::shared_ptr<TokenCredential> link(std::shared_ptr<detail::CredentialState> state,
                                      std::shared_ptr<TokenCredential> credential,
                                      std::optional<AccessToken> initial_token) {
  state->start(credential, std::move(initial_token));
  return credential;
}
}  // namespace

struct TokenCredential::Private {
  // Lets make_shared reach the private constructor: facade and control block in one allocation.
  struct Shared final : TokenCredential {
    explicit Shared(std::shared_ptr<detail::CredentialState> state) noexcept : TokenCredential(std::move(state)) {}
  };
  static std::shared_ptr<TokenCredential> make(std::shared_ptr<detail::DefaultRunner> runner, executor_type executor,
                                               TokenCredentialOptions options) {
    options.validate();
    if (options.initial_token) detail::admit_token_text(options.initial_token->token, "TokenCredentialOptions::initial_token");
    if (!executor) throw Error(errc::invalid_argument, "TokenCredential::create: the executor is empty");
    auto initial_token = std::move(options.initial_token);
    auto state = std::make_shared<detail::CredentialState>(std::move(runner), std::move(executor), std::move(options));
    std::shared_ptr<TokenCredential> credential = std::make_shared<Shared>(state);
    return link(std::move(state), std::move(credential), std::move(initial_token));
  }
};

std::shared_ptr<TokenCredential> TokenCredential::create(executor_type executor, TokenCredentialOptions options) {
  return Private::make(nullptr, std::move(executor), std::move(options));
}

std::shared_ptr<TokenCredential> TokenCredential::create(TokenCredentialOptions options) {
  auto runner = detail::DefaultRunner::acquire();
  auto executor = runner->executor();
  return Private::make(std::move(runner), std::move(executor), std::move(options));
}

TokenCredential::executor_type TokenCredential::get_executor() const noexcept { return state_->executor(); }

TokenHandle TokenCredential::get_token() const {
  if (TokenHandle t = state_->try_fresh()) {  // the hot path, without get_blocking's frame
    state_->count_served();
    return t;
  }
  return state_->get_blocking(std::nullopt);
}

TokenHandle TokenCredential::get_token(std::chrono::milliseconds timeout) const {
  return state_->get_blocking(timeout);
}

void TokenCredential::initiate_get_token(std::shared_ptr<detail::CredentialState> state,
                                         boost::asio::any_completion_handler<GetTokenSignature> handler) {
  state->get_async(std::move(handler));
}

void TokenCredential::update_token(std::string_view token) { state_->update(token); }

void TokenCredential::update_token(AccessToken token) { state_->update(std::move(token)); }

bool TokenCredential::invalidate(std::string_view rejected_token) { return state_->invalidate(rejected_token); }

TokenHandle TokenCredential::cached_token() const { return state_->cached(); }

Subscription TokenCredential::subscribe(TokenEventKind kind, TokenEventHandler handler) {
  return state_->subscribe(kind, std::move(handler));
}

Subscription TokenCredential::on_token_will_expire(TokenEventHandler h) {
  return subscribe(TokenEventKind::will_expire, std::move(h));
}
Subscription TokenCredential::on_token_expired(TokenEventHandler h) {
  return subscribe(TokenEventKind::expired, std::move(h));
}
Subscription TokenCredential::on_token_refreshed(TokenEventHandler h) {
  return subscribe(TokenEventKind::refreshed, std::move(h));
}
Subscription TokenCredential::on_refresh_failed(TokenEventHandler h) {
  return subscribe(TokenEventKind::refresh_failed, std::move(h));
}

void TokenCredential::close() noexcept { state_->close(); }

bool TokenCredential::is_closed() const noexcept { return state_->closed(); }

std::chrono::nanoseconds TokenCredential::clock_offset() const noexcept { return state_->clock_offset(); }

CredentialHealth TokenCredential::health() const { return state_->health(); }

Subscription TokenCredential::on_health_changed(HealthHandler handler) { return state_->subscribe_health(std::move(handler)); }

std::uint64_t TokenCredential::tokens_served() const noexcept { return state_->tokens_served(); }

std::string_view to_string(TokenEventKind kind) noexcept {
  switch (kind) {
    case TokenEventKind::will_expire: return "will_expire";
    case TokenEventKind::expired: return "expired";
    case TokenEventKind::refreshed: return "refreshed";
    case TokenEventKind::refresh_failed: return "refresh_failed";
  }
  return "unknown";
}

}  // namespace credkit
