// Fuzz target: the JSON answers of the ACS identity API, the Entra token endpoint and Web
// PubSub's :generateToken, read by the sources' own parsers. The first byte picks the parser
// (0-1 ACS, 2 Entra, 3-5 Web PubSub for each client type).
#include <credkit/core/error.hpp>

#include "sources/acs/identity_requests.hpp"
#include "sources/entra/token_request.hpp"
#include "sources/webpubsub/webpubsub_tokens.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  try {
    switch (data[0] % 6) {
      case 0: (void)credkit::acs::detail::parse_create_response(body, true); break;
      case 1: (void)credkit::acs::detail::parse_create_response(body, false); break;
      case 2: (void)credkit::entra::detail::parse_token_response(body, now); break;
      default: {
        using credkit::webpubsub::ClientType;
        constexpr ClientType types[] = {ClientType::standard, ClientType::mqtt, ClientType::socketio};
        const auto access = credkit::webpubsub::detail::parse_generate_token_response(
            body, "https://fuzz.webpubsub.azure.com", "chat", types[data[0] % 6 - 3]);
        // The URL carries the token, percent-encoded: nothing of it may be lost.
        if (access.url.find("?access_token=") == std::string::npos) __builtin_trap();
        break;
      }
    }
  } catch (const credkit::Error&) {
    // Any credkit error is a clean rejection.
  }
  return 0;
}
