#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "support/secrets_check.hpp"

// doctest's main plus the suite-wide secrets check (support/secrets_check.hpp): a run in
// which any secret reached a credkit log line or Error message fails.
int main(int argc, char** argv) {
  credkit::test::SuiteSecretsCheck secrets;
  doctest::Context context(argc, argv);
  const int rc = context.run();
  if (context.shouldExit()) return rc;
  return secrets.finish(rc);
}
