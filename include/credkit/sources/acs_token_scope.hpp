// credkit — what an ACS user access token lets its holder do.
#pragma once

#include <string_view>

namespace credkit::acs {

/// A scope of an ACS user access token (`createTokenWithScopes` / `scopes` in the REST API).
enum class TokenScope {
  chat,               ///< "chat": full chat access.
  voip,               ///< "voip": full calling access.
  chat_join,          ///< "chat.join": join existing chat threads.
  chat_join_limited,  ///< "chat.join.limited": join chats, without adding or removing participants.
  voip_join,          ///< "voip.join": join existing calls.
};

/// The scope's wire name, e.g. "chat.join.limited".
std::string_view to_string(TokenScope scope) noexcept;

}  // namespace credkit::acs
