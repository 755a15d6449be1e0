// credkit — what a Web PubSub client access token grants.
#pragma once

#include <credkit/sources/webpubsub_client_type.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace credkit::webpubsub {

/// The claims of a client access token.
struct ClientTokenOptions {
  /// The user id (`sub` claim); empty: an anonymous connection.
  std::string user_id;
  /// Roles (`role` claim), e.g. "webpubsub.joinLeaveGroup.group1", "webpubsub.sendToGroup".
  std::vector<std::string> roles;
  /// Groups the connection joins on connect (`webpubsub.group` claim).
  std::vector<std::string> groups;
  /// How long the token is valid (1 minute to 365 days). Default: 60 minutes.
  std::chrono::minutes lifetime{60};
  /// The client protocol.
  ClientType client_type = ClientType::standard;
};

}  // namespace credkit::webpubsub
