// credkit — MetricsObserver's empty defaults, the label rule, and the names of its enums.
#include <credkit/core/credential_health.hpp>
#include <credkit/core/error.hpp>
#include <credkit/core/metrics_observer.hpp>

#include "core/metrics_name.hpp"

#include <iterator>
#include <string>

namespace credkit {

void MetricsObserver::credential_created(std::string_view, std::weak_ptr<TokenCredential>) {}
void MetricsObserver::fetch_finished(std::string_view, FetchReason, std::error_code, std::chrono::nanoseconds) {}
void MetricsObserver::refresh_failed(std::string_view, std::error_code) {}
void MetricsObserver::invalidated(std::string_view) {}
void MetricsObserver::caller_waited(std::string_view, std::chrono::nanoseconds, std::error_code) {}
void MetricsObserver::cache_lookup(std::string_view, CacheLookup) {}
void MetricsObserver::redis_redirect(std::string_view) {}
void MetricsObserver::redis_fallback(std::string_view) {}

namespace {
// Indexed by the enumerator's value, in the enum's order.
constexpr std::string_view kLookupNames[] = {"hit", "miss", "error"};
constexpr std::string_view kHealthNames[] = {"fresh", "refreshing", "retrying", "below_min_validity", "expired", "closed"};
static_assert(std::size(kLookupNames) == static_cast<std::size_t>(CacheLookup::error) + 1);
static_assert(std::size(kHealthNames) == static_cast<std::size_t>(HealthState::closed) + 1);

template <std::size_t N>
std::string_view name_in(const std::string_view (&names)[N], std::size_t value) noexcept {
  return value < N ? names[value] : std::string_view("unknown");
}
}  // namespace

std::string_view to_string(CacheLookup lookup) noexcept { return name_in(kLookupNames, static_cast<std::size_t>(lookup)); }

std::string_view to_string(HealthState state) noexcept { return name_in(kHealthNames, static_cast<std::size_t>(state)); }

namespace detail {

void check_metrics_name(std::string_view name, std::string_view field) {
  constexpr std::size_t max_length = 64;
  const auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == ':' || c == '/' || c == '-';
  };
  if (name.empty() || name.size() > max_length) {
    throw Error(errc::invalid_argument, std::string(field) + " must have 1 to 64 characters");
  }
  for (char c : name) {
    if (!allowed(c)) {
      throw Error(errc::invalid_argument, std::string(field) + " may only hold A-Z a-z 0-9 _ . : / -");
    }
  }
}

}  // namespace detail
}  // namespace credkit
