// Fuzz target: Agora AccessToken2 parsing (credkit::detail::try_parse_agora_token). The input
// is prefixed with "007" half of the time so the fuzzer spends its effort past the version check.
#include <credkit/core/error.hpp>

#include "core/token_parsers.hpp"
#include "fuzz_expect.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) input.insert(0, "007");
  try {
    (void)credkit::detail::try_parse_agora_token(input);
  } catch (const credkit::Error& e) {
    fuzz::expect_code_in(e, {credkit::errc::invalid_token});
  }
  return 0;
}
