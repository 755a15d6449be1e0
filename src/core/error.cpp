#include <credkit/core/error.hpp>

#include "core/secret_scrubber.hpp"

#include <atomic>
#include <iterator>
#include <string>
#include <string_view>

namespace credkit {

namespace detail {
// Test hook defined in log.cpp (see there): sees every Error message.
extern std::atomic<void (*)(int kind, std::string_view text)> diagnostics_observer;
}  // namespace detail

namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "credkit"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::invalid_token: return "the token is malformed";
      case errc::token_expired_on_arrival: return "the token returned by the fetcher is already expired";
      case errc::no_token: return "no token is available and the credential has no fetcher or token_will_expire listener to obtain one";
      case errc::fetch_failed: return "the token fetcher failed";
      case errc::fetch_timeout: return "the token fetcher did not deliver a token in time";
      case errc::fetcher_abandoned: return "the async fetcher dropped its completion without calling it";
      case errc::credential_closed: return "the credential is closed";
      case errc::would_deadlock: return "a blocking get_token would wait on the credential's own executor; use async_get_token there";
      case errc::cancelled: return "the operation was cancelled";
      case errc::invalid_argument: return "invalid argument";
      case errc::invalid_connection_string: return "the connection string is malformed";
      case errc::insecure_url: return "plain http is only allowed to loopback hosts unless explicitly enabled";
      case errc::http_status: return "the service answered with an HTTP error status";
      case errc::rate_limited: return "the service is rate limiting requests (HTTP 429)";
      case errc::network_error: return "network error";
      case errc::timeout: return "the operation timed out";
      case errc::tls_error: return "TLS handshake or certificate verification failed";
      case errc::invalid_response: return "the service's response could not be understood";
      case errc::response_too_large: return "the service's response exceeds the size limit";
      case errc::cache_corrupt: return "the cache record is corrupt or truncated";
      case errc::cache_wrong_key: return "the cache record was encrypted with a different key";
      case errc::cache_unavailable: return "the token cache backend is unavailable";
      case errc::cache_io_error: return "reading or writing the token cache failed";
      case errc::crypto_error: return "a cryptographic operation failed";
      case errc::keychain_unavailable: return "the OS keychain (Secret Service or kernel keyring) is unavailable";
      case errc::keychain_corrupt: return "the key stored in the OS keychain is not one credkit stored";
    }
    return "unknown credkit error " + std::to_string(value);
  }

  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<errc>(value)) {
      case errc::cancelled: return std::errc::operation_canceled;
      case errc::timeout:
      case errc::fetch_timeout: return std::errc::timed_out;
      case errc::invalid_argument: return std::errc::invalid_argument;
      case errc::would_deadlock: return std::errc::resource_deadlock_would_occur;
      default: return {value, *this};
    }
  }
};

bool retryable_by_default(const std::error_code& ec, int http_status) noexcept {
  if (ec.category() != category()) return true;
  switch (static_cast<errc>(ec.value())) {
    case errc::fetch_failed:
    case errc::fetch_timeout:
    case errc::fetcher_abandoned:
    case errc::token_expired_on_arrival:
    case errc::invalid_token:  // a service glitch may hand out garbage once
    case errc::rate_limited:
    case errc::network_error:
    case errc::timeout:
    case errc::invalid_response:
    case errc::cache_unavailable:
    case errc::cache_io_error:
    case errc::keychain_unavailable: return true;  // the keyring may be unlocked or started later
    case errc::http_status: return http_status >= 500 || http_status == 408 || http_status == 429;
    default: return false;
  }
}

}  // namespace

const std::error_category& category() noexcept {
  static const Category instance;
  return instance;
}

namespace {
// Indexed by the enumerator's value (errc starts at 1); appended in the enum's order.
constexpr std::string_view kErrcNames[] = {
    "unknown",          "invalid_token",   "token_expired_on_arrival", "no_token",
    "fetch_failed",     "fetch_timeout",   "fetcher_abandoned",        "credential_closed",
    "would_deadlock",   "cancelled",       "invalid_argument",         "invalid_connection_string",
    "insecure_url",     "http_status",     "rate_limited",             "network_error",
    "timeout",          "tls_error",       "invalid_response",         "response_too_large",
    "cache_corrupt",    "cache_wrong_key", "cache_unavailable",        "cache_io_error",
    "crypto_error",     "keychain_unavailable", "keychain_corrupt",
};
static_assert(std::size(kErrcNames) == static_cast<std::size_t>(errc::keychain_corrupt) + 1,
              "every errc has its name");
}  // namespace

std::string_view to_string(errc e) noexcept {
  const auto v = static_cast<std::size_t>(e);
  return v < std::size(kErrcNames) ? kErrcNames[v] : kErrcNames[0];
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

Error::Error(errc code, const std::string& message, ErrorDetails details)
    : Error(make_error_code(code), message, std::move(details)) {}

// Every message is scrubbed here, whoever built it: it may quote text from outside (a
// fetcher's exception, a response body, a Redis reply).
Error::Error(std::error_code code, const std::string& message, ErrorDetails details)
    : Error(code, detail::scrub(message), std::move(details), Scrubbed{}) {}

Error::Error(std::error_code code, std::string scrubbed, ErrorDetails details, Scrubbed)
    : std::system_error(code, scrubbed), message_(scrubbed), details_(std::move(details)) {
  if (auto observe = detail::diagnostics_observer.load(std::memory_order_acquire)) observe(4, scrubbed);
}

bool Error::retryable() const noexcept {
  return details_.retryable.value_or(retryable_by_default(code(), details_.http_status));
}

namespace {
/// `on(ex)` when `e` holds an `E`, else `otherwise()`. `e` is not null.
template <typename E, typename On, typename Otherwise>
auto inspect(const std::exception_ptr& e, On on, Otherwise otherwise) {
  try {
    std::rethrow_exception(e);
  } catch (const E& ex) {
    return on(ex);
  } catch (...) {
    return otherwise();
  }
}
}  // namespace

std::error_code error_code_of(const std::exception_ptr& e) noexcept {
  if (!e) return {};
  return inspect<std::system_error>(
      e, [](const std::system_error& se) { return se.code(); }, [] { return make_error_code(errc::fetch_failed); });
}

std::string message_of(const std::exception_ptr& e) {
  if (!e) return {};
  return inspect<std::exception>(
      e, [](const std::exception& ex) { return std::string(ex.what()); },
      [] { return std::string("unknown exception (not derived from std::exception)"); });
}

bool is_retryable(const std::exception_ptr& e) noexcept {
  if (!e) return false;
  return inspect<Error>(e, [](const Error& err) { return err.retryable(); }, [] { return true; });
}

void throw_error(errc code, const std::string& message, ErrorDetails details) {
  throw Error(code, message, std::move(details));
}

}  // namespace credkit
