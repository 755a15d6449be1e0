// credkit — MetricsObserver's empty defaults, the label rule, and the names of its enums.
#include <credkit/core/credential_health.hpp>
#include <credkit/core/error.hpp>
#include <credkit/core/metrics_observer.hpp>

#include "core/metrics_name.hpp"

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

std::string_view to_string(CacheLookup lookup) noexcept {
  switch (lookup) {
    case CacheLookup::hit: return "hit";
    case CacheLookup::miss: return "miss";
    case CacheLookup::error: return "error";
  }
  return "unknown";
}

std::string_view to_string(HealthState state) noexcept {
  switch (state) {
    case HealthState::fresh: return "fresh";
    case HealthState::refreshing: return "refreshing";
    case HealthState::retrying: return "retrying";
    case HealthState::below_min_validity: return "below_min_validity";
    case HealthState::expired: return "expired";
    case HealthState::closed: return "closed";
  }
  return "unknown";
}

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
