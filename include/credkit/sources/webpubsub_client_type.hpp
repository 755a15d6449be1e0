// credkit — the kinds of Web PubSub clients a token can be issued for.
#pragma once

#include <string_view>

namespace credkit::webpubsub {

/// Which client protocol the token and URL are for; it selects the path and audience.
enum class ClientType {
  standard,  ///< Web PubSub WebSocket clients: `/client/hubs/{hub}`.
  mqtt,      ///< MQTT clients: `/clients/mqtt/hubs/{hub}`.
  socketio,  ///< Socket.IO clients: `/clients/socketio/hubs/{hub}`.
};

/// The client path for `hub` (already URL-safe), e.g. "/clients/mqtt/hubs/chat".
std::string_view path_prefix(ClientType type) noexcept;

}  // namespace credkit::webpubsub
