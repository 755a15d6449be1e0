// credkit — the services and privileges an Agora AccessToken2 can grant.
#pragma once

#include <cstdint>

namespace credkit::agora {

/// Service types of AccessToken2 (Agora's numbering).
enum class ServiceType : std::uint16_t {
  rtc = 1,    ///< Video/voice calling (channel + uid).
  rtm = 2,    ///< Signaling (user id).
  fpa = 4,    ///< Fusion packet acceleration (no identity).
  chat = 5,   ///< Chat (user UUID; empty for an app token).
  apaas = 7,  ///< Flexible classroom (room, user, role).
};

/// Chat privileges (`kPrivilegeUser`, `kPrivilegeApp`).
enum class ChatPrivilege : std::uint16_t {
  user = 1,  ///< A user token: log in to Chat as one user.
  app = 2,   ///< An app token: administer the app through the Chat REST API.
};

/// RTC privileges.
enum class RtcPrivilege : std::uint16_t {
  join_channel = 1,          ///< Join the channel.
  publish_audio_stream = 2,  ///< Publish audio.
  publish_video_stream = 3,  ///< Publish video.
  publish_data_stream = 4,   ///< Publish data streams.
};

}  // namespace credkit::agora
