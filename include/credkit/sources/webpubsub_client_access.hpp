// credkit — a Web PubSub client access URL and its token.
#pragma once

#include <credkit/core/access_token.hpp>

#include <string>

namespace credkit::webpubsub {

/// What a client needs to connect: the URL (`wss://host/client/hubs/{hub}?access_token=...`)
/// and the token inside it with its expiry. The URL contains the token: treat it as a secret.
struct ClientAccess {
  std::string url;
  AccessToken token;
};

}  // namespace credkit::webpubsub
