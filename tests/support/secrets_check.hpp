// The suite-wide secrets check every credkit test binary runs (included by doctest_main.cpp).
//
// One `DiagnosticsCapture` lives for the whole run: it sees every credkit log line (any level)
// and every `credkit::Error` message any test produces, looks for every secret tests register
// with `DiagnosticsCapture::register_secret` and for anything JWT- or Agora-token-shaped, and
// turns a passing run into a failing one (exit code 3) if it found any. The report names the
// secret's label and shows the line with the secret masked.
// CREDKIT_SECRETS_CHECK=warn prints the report without failing the run.
#pragma once

#include <credkit/testing/diagnostics_capture.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace credkit::test {

class SuiteSecretsCheck {
 public:
  /// Combines the test run's exit code with the check's verdict.
  int finish(int rc) const {
    const auto leaks = capture_.leaks();
    if (leaks.empty()) return rc;
    std::fprintf(stderr, "[secrets] %zu secret leak(s) in credkit log lines / Error messages (of %zu checked):\n%s",
                 leaks.size(), capture_.texts_checked(), capture_.report().c_str());
    const char* mode = std::getenv("CREDKIT_SECRETS_CHECK");
    if (mode && std::string_view(mode) == "warn") return rc;
    return rc != 0 ? rc : 3;
  }

 private:
  credkit::testing::DiagnosticsCapture capture_;
};

}  // namespace credkit::test
