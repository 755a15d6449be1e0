// Fuzz target: credkit::parse_token on arbitrary bytes (JWS, JWE, Agora 007, opaque tokens).
#include <credkit/core/parse_token.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  credkit::ParseOptions options;
  options.now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  std::error_code ec;
  const auto token = credkit::parse_token(input, ec, options);
  // On success the token is the input and the expiry is representable; on failure it is empty.
  if (!ec && token.token != input) __builtin_trap();
  if (ec && !token.token.empty()) __builtin_trap();
  return 0;
}
