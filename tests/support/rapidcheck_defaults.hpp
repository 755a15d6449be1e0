// Test helper: every property runs 10 000 seeded cases unless RC_PARAMS says otherwise.
#pragma once

#include <cstdlib>

namespace credkit::test {

// RapidCheck reads RC_PARAMS when the first property runs. This sets the house defaults
// before main, and leaves a value from the environment alone (a failure's `reproduce`
// string, a longer run).
inline const bool rapidcheck_defaults = [] {
  ::setenv("RC_PARAMS", "seed=20261204 max_success=10000 max_size=40", /*overwrite=*/0);
  return true;
}();

}  // namespace credkit::test
