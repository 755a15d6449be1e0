// credkit::prometheus — error codes as label values, from a closed set.
#include <credkit/core/error.hpp>
#include <credkit/prometheus/exporter.hpp>

namespace credkit::prometheus {

std::string_view error_label(std::error_code code) noexcept {
  if (!code) return "ok";
  if (code.category() != category()) return "other";
  switch (static_cast<errc>(code.value())) {
    case errc::invalid_token: return "invalid_token";
    case errc::token_expired_on_arrival: return "token_expired_on_arrival";
    case errc::no_token: return "no_token";
    case errc::fetch_failed: return "fetch_failed";
    case errc::fetch_timeout: return "fetch_timeout";
    case errc::fetcher_abandoned: return "fetcher_abandoned";
    case errc::credential_closed: return "credential_closed";
    case errc::would_deadlock: return "would_deadlock";
    case errc::cancelled: return "cancelled";
    case errc::invalid_argument: return "invalid_argument";
    case errc::invalid_connection_string: return "invalid_connection_string";
    case errc::insecure_url: return "insecure_url";
    case errc::http_status: return "http_status";
    case errc::rate_limited: return "rate_limited";
    case errc::network_error: return "network_error";
    case errc::timeout: return "timeout";
    case errc::tls_error: return "tls_error";
    case errc::invalid_response: return "invalid_response";
    case errc::response_too_large: return "response_too_large";
    case errc::cache_corrupt: return "cache_corrupt";
    case errc::cache_wrong_key: return "cache_wrong_key";
    case errc::cache_unavailable: return "cache_unavailable";
    case errc::cache_io_error: return "cache_io_error";
    case errc::crypto_error: return "crypto_error";
    case errc::keychain_unavailable: return "keychain_unavailable";
    case errc::keychain_corrupt: return "keychain_corrupt";
  }
  return "unknown_credkit_error";
}

}  // namespace credkit::prometheus
