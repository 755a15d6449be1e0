// credkit detail — the one rule for the labels credentials and caches report metrics under.
#pragma once

#include <string_view>

namespace credkit::detail {

/// Throws `Error(errc::invalid_argument)` naming `field` unless `name` has 1 to 64
/// characters from `A-Z a-z 0-9 _ . : / -`: safe as a Prometheus label value and in a log line
/// without escaping, and never mistaken for a secret by the scrubber.
void check_metrics_name(std::string_view name, std::string_view field);

}  // namespace credkit::detail
