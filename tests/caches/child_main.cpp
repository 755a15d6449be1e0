// Child-process roles of caches_tests: the binary re-executes itself with
// CREDKIT_CACHES_CHILD=<role>; the role runs before doctest's main and exits.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

int file_writer_child();
int redis_bot_child();

namespace {
int run_child(const char* role) {
  try {
    if (std::strcmp(role, "file-writer") == 0) return file_writer_child();
    if (std::strcmp(role, "redis-bot") == 0) return redis_bot_child();
    std::fprintf(stderr, "unknown child role %s\n", role);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child %s failed: %s\n", role, e.what());
    return 3;
  }
}

[[maybe_unused]] const int child_dispatch = [] {
  if (const char* role = std::getenv("CREDKIT_CACHES_CHILD")) {
    const int rc = run_child(role);
    std::fflush(nullptr);
    std::_Exit(rc);
  }
  return 0;
}();
}  // namespace
