// Fuzz target: ACS and Web PubSub connection strings. The first byte picks the parser.
#include <credkit/core/error.hpp>
#include <credkit/sources/acs_connection_string.hpp>
#include <credkit/sources/webpubsub_connection_string.hpp>

#include "fuzz_expect.hpp"

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    std::ostringstream os;
    if (data[0] & 1) {
      const auto cs = credkit::acs::ConnectionString::parse(text);
      os << cs;
    } else {
      const auto cs = credkit::webpubsub::ConnectionString::parse(text);
      os << cs;
    }
  } catch (const credkit::Error& e) {
    fuzz::expect_code_in(e, {credkit::errc::invalid_connection_string});
  }
  return 0;
}
