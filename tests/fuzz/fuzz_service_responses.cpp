// Fuzz target: the JSON answers of the ACS identity API and the Entra token endpoint, read by
// the sources' own parsers. The first byte picks the parser.
#include <credkit/core/error.hpp>

#include "sources/acs/identity_requests.hpp"
#include "sources/entra/token_request.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  try {
    switch (data[0] % 3) {
      case 0: (void)credkit::acs::detail::parse_create_response(body, true); break;
      case 1: (void)credkit::acs::detail::parse_create_response(body, false); break;
      case 2: (void)credkit::entra::detail::parse_token_response(body, now); break;
    }
  } catch (const credkit::Error&) {
    // Any credkit error is a clean rejection.
  }
  return 0;
}
