// credkit detail — Redis Cluster routing without I/O: key slots (CRC16 and hash tags), the
// slot map read from CLUSTER SLOTS, and MOVED/ASK redirects. RedisRouter does the I/O.
#pragma once

#include <hiredis/hiredis.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace credkit::detail {

inline constexpr std::uint16_t redis_cluster_slots = 16384;

/// The slot Redis Cluster stores `key` in: CRC16 (XMODEM) of the key, or of its hash tag (the
/// text between the first `{` and the next `}`, when not empty), modulo 16384.
std::uint16_t redis_key_slot(std::string_view key) noexcept;

/// A Redis node's address. `host` is an address or a name, without IPv6 brackets.
struct RedisNodeAddress {
  std::string host;
  int port = 0;
  /// "host:port" ("[v6]:port"), for messages and as a map key.
  std::string text() const;
  friend bool operator==(const RedisNodeAddress&, const RedisNodeAddress&) = default;
};

/// Parses "host:port" or "[v6]:port" (port 1..65535, host not empty, no control bytes or
/// spaces); none for anything else.
std::optional<RedisNodeAddress> parse_node_address(std::string_view text);

/// A `-MOVED <slot> <host>:<port>` or `-ASK <slot> <host>:<port>` error reply.
struct RedisRedirect {
  enum class Kind { moved, ask } kind;
  std::uint16_t slot;
  RedisNodeAddress to;
};

/// The redirect an error reply's text asks for; none if it is not a well-formed one (the
/// error then stands). An empty host ("MOVED 3999 :6381", a node that does not know its own
/// address) means the host of `asked`, the node that answered.
std::optional<RedisRedirect> parse_redirect(std::string_view error, const RedisNodeAddress& asked);

/// Which primary serves each slot, as last read from the cluster. Not thread-safe.
class RedisSlotMap {
 public:
  /// Replaces the map with a `CLUSTER SLOTS` reply read from `asked`. Returns false (the map
  /// unchanged) for a reply of another shape, slot ranges out of order or outside 0..16383, or
  /// addresses that do not parse. Slots the reply does not list have no owner.
  bool load(const redisReply& cluster_slots, const RedisNodeAddress& asked);
  /// The primary serving `slot`, or none (not loaded, or unassigned).
  const RedisNodeAddress* owner(std::uint16_t slot) const noexcept;
  /// A `MOVED`: `slot` is now served by `to` (the rest of the map may be stale too).
  void moved(std::uint16_t slot, const RedisNodeAddress& to);
  /// The distinct primaries in the map, in slot order.
  std::vector<RedisNodeAddress> primaries() const;
  /// Whether the last loaded map names `a` (as a primary or a replica of some slots). A
  /// redirect to any other address is not followed before the map is read again: a node never
  /// sends credkit, and its AUTH password, where the cluster does not list.
  bool member(const RedisNodeAddress& a) const;
  bool empty() const noexcept { return ranges_.empty(); }

 private:
  struct Range {
    std::uint16_t first;
    std::uint16_t last;
    std::size_t node;  // index in nodes_
  };
  std::size_t node_index(const RedisNodeAddress& a);
  std::vector<Range> ranges_;  // sorted, disjoint
  std::vector<RedisNodeAddress> nodes_;
  std::vector<RedisNodeAddress> members_;  // every node the last load listed
};

}  // namespace credkit::detail
