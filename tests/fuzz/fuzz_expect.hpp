// Fuzz targets: what counts as a finding beside a crash.
#pragma once

#include <credkit/core/error.hpp>

#include <initializer_list>

namespace fuzz {

/// Only documented error codes may come out of a parser: any other is a finding (trap).
inline void expect_code_in(const credkit::Error& e, std::initializer_list<credkit::errc> documented) {
  for (const auto code : documented) {
    if (e.code() == credkit::make_error_code(code)) return;
  }
  __builtin_trap();
}

}  // namespace fuzz
