// credkit::prometheus — error codes as label values, from a closed set.
#include <credkit/core/error.hpp>
#include <credkit/prometheus/exporter.hpp>

namespace credkit::prometheus {

std::string_view error_label(std::error_code code) noexcept {
  if (!code) return "ok";
  if (code.category() != category()) return "other";
  const auto name = to_string(static_cast<errc>(code.value()));
  if (name != "unknown") return name;
  return "unknown_credkit_error";
}

}  // namespace credkit::prometheus
