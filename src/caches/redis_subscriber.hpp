// credkit detail — the subscriptions behind push wake-ups: one thread per cache that keeps a
// subscribed connection per feed (the data nodes' `<prefix>stored`; with Sentinel, a
// sentinel's `+switch-master`), hands each message to its feed, pings to notice a silent peer,
// and reconnects after a loss. Blocking I/O bounded by the connection's timeouts; its own
// thread, so a subscription never holds a cache I/O thread.
#pragma once

#include "caches/redis_connection.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace credkit::detail {

class RedisSubscriber {
 public:
  struct Feed {
    /// A new connection, AUTH done (throws `Error` when none can be made now).
    std::function<std::unique_ptr<RedisConnection>()> connect;
    std::string channel;
    /// A message on `channel` (on the subscriber's thread; must not block).
    std::function<void(std::string_view payload)> on_message;
    /// The subscription went up (confirmed by Redis) or down (on the subscriber's thread).
    std::function<void(bool up)> on_state;
  };
  struct Timing {
    std::chrono::milliseconds reconnect_after{1000};  ///< after a failed connect or a loss
    std::chrono::milliseconds ping_every{1000};       ///< a silent connection gets a PING
  };

  RedisSubscriber(std::vector<Feed> feeds, Timing timing);
  /// Stops the thread (wakes it at once) and joins it; from a feed's callback on the thread
  /// itself (the last owner of the cache let go there), lets the thread end on its own.
  ~RedisSubscriber();
  RedisSubscriber(const RedisSubscriber&) = delete;
  RedisSubscriber& operator=(const RedisSubscriber&) = delete;

  /// Whether feed `i`'s subscription is confirmed and its connection alive.
  bool up(std::size_t i) const noexcept;

 private:
  struct Core;  // shared with the thread, which may outlive this object (see the destructor)
  std::shared_ptr<Core> core_;
  std::thread thread_;
};

}  // namespace credkit::detail
