#include "caches/redis_slot_map.hpp"

#include <algorithm>
#include <charconv>

namespace credkit::detail {

std::uint16_t redis_key_slot(std::string_view key) noexcept {
  if (const auto open = key.find('{'); open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  std::uint16_t crc = 0;  // CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0
  for (const char c : key) {
    crc ^= static_cast<std::uint16_t>(static_cast<unsigned char>(c) << 8);
    for (int bit = 0; bit < 8; ++bit)
      crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return static_cast<std::uint16_t>(crc % redis_cluster_slots);
}

std::string RedisNodeAddress::text() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

namespace {

bool plain_host(std::string_view host) {
  return !host.empty() && host.size() <= 255 &&
         std::all_of(host.begin(), host.end(), [](char c) { return c > ' ' && c < 0x7f && c != '[' && c != ']'; });
}

std::optional<int> parse_port(std::string_view text) {
  int port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || port <= 0 || port > 65535)
    return std::nullopt;
  return port;
}

std::optional<RedisNodeAddress> make_address(std::string_view host, std::string_view port_text) {
  const auto port = parse_port(port_text);
  if (!port || !plain_host(host)) return std::nullopt;
  return RedisNodeAddress{std::string(host), *port};
}

bool integer_of(const redisReply* r, long long& out) {
  if (!r || r->type != REDIS_REPLY_INTEGER) return false;
  out = r->integer;
  return true;
}

}  // namespace

std::optional<RedisNodeAddress> parse_node_address(std::string_view text) {
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    const auto host = text.substr(1, close - 1);
    if (host.find(':') == std::string_view::npos) return std::nullopt;  // brackets are for IPv6 only
    return make_address(host, text.substr(close + 2));
  }
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const auto host = text.substr(0, colon);
  if (host.find(':') != std::string_view::npos) return std::nullopt;  // bare IPv6 is ambiguous
  return make_address(host, text.substr(colon + 1));
}

std::optional<RedisRedirect> parse_redirect(std::string_view error, const RedisNodeAddress& asked) {
  RedisRedirect::Kind kind;
  if (error.starts_with("MOVED ")) {
    kind = RedisRedirect::Kind::moved;
    error.remove_prefix(6);
  } else if (error.starts_with("ASK ")) {
    kind = RedisRedirect::Kind::ask;
    error.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const auto space = error.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  unsigned slot = 0;
  const auto slot_text = error.substr(0, space);
  const auto [end, ec] = std::from_chars(slot_text.data(), slot_text.data() + slot_text.size(), slot);
  if (ec != std::errc() || end != slot_text.data() + slot_text.size() || slot_text.empty() ||
      slot >= redis_cluster_slots)
    return std::nullopt;
  std::string_view target = error.substr(space + 1);
  std::optional<RedisNodeAddress> to;
  if (target.starts_with(':')) {
    to = make_address(asked.host, target.substr(1));
  } else {
    to = parse_node_address(target);
  }
  if (!to) return std::nullopt;
  return RedisRedirect{kind, static_cast<std::uint16_t>(slot), std::move(*to)};
}

std::size_t RedisSlotMap::node_index(const RedisNodeAddress& a) {
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i] == a) return i;
  nodes_.push_back(a);
  return nodes_.size() - 1;
}

bool RedisSlotMap::load(const redisReply& reply, const RedisNodeAddress& asked) {
  if (reply.type != REDIS_REPLY_ARRAY) return false;
  RedisSlotMap next;
  for (std::size_t i = 0; i < reply.elements; ++i) {
    const redisReply* entry = reply.element[i];
    // [first, last, [host, port, id, ...], replicas...]
    if (!entry || entry->type != REDIS_REPLY_ARRAY || entry->elements < 3) return false;
    long long first = 0, last = 0, port = 0;
    if (!integer_of(entry->element[0], first) || !integer_of(entry->element[1], last)) return false;
    if (first < 0 || last < first || last >= redis_cluster_slots) return false;
    const redisReply* node = entry->element[2];
    if (!node || node->type != REDIS_REPLY_ARRAY || node->elements < 2) return false;
    const redisReply* host = node->element[0];
    if (!host || host->type != REDIS_REPLY_STRING || !integer_of(node->element[1], port)) return false;
    std::string_view host_text(host->str, host->len);
    // A node that does not know its address announces "" (or "?"): it is the node we asked.
    if (host_text.empty() || host_text == "?") host_text = asked.host;
    auto address = make_address(host_text, std::to_string(port));
    if (!address) return false;
    next.ranges_.push_back({static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last),
                            next.node_index(*address)});
    // The replicas after the primary: promoted in a failover, so redirects may name them.
    for (std::size_t k = 2; k < entry->elements; ++k) {
      const redisReply* n = entry->element[k];
      long long p = 0;
      if (!n || n->type != REDIS_REPLY_ARRAY || n->elements < 2 || !n->element[0] ||
          n->element[0]->type != REDIS_REPLY_STRING || !integer_of(n->element[1], p))
        return false;
      std::string_view h(n->element[0]->str, n->element[0]->len);
      if (h.empty() || h == "?") h = asked.host;
      auto member = make_address(h, std::to_string(p));
      if (!member) return false;
      if (std::find(next.members_.begin(), next.members_.end(), *member) == next.members_.end())
        next.members_.push_back(std::move(*member));
    }
  }
  std::sort(next.ranges_.begin(), next.ranges_.end(), [](const Range& a, const Range& b) { return a.first < b.first; });
  for (std::size_t i = 1; i < next.ranges_.size(); ++i)
    if (next.ranges_[i].first <= next.ranges_[i - 1].last) return false;  // overlapping ranges
  *this = std::move(next);
  return true;
}

const RedisNodeAddress* RedisSlotMap::owner(std::uint16_t slot) const noexcept {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), slot,
                             [](std::uint16_t s, const Range& r) { return s < r.first; });
  if (it == ranges_.begin()) return nullptr;
  --it;
  return slot <= it->last ? &nodes_[it->node] : nullptr;
}

void RedisSlotMap::moved(std::uint16_t slot, const RedisNodeAddress& to) {
  const std::size_t node = node_index(to);
  std::vector<Range> next;
  next.reserve(ranges_.size() + 2);
  for (const Range& r : ranges_) {
    if (slot < r.first || slot > r.last) {
      next.push_back(r);
      continue;
    }
    if (r.first < slot) next.push_back({r.first, static_cast<std::uint16_t>(slot - 1), r.node});
    if (slot < r.last) next.push_back({static_cast<std::uint16_t>(slot + 1), r.last, r.node});
  }
  next.push_back({slot, slot, node});
  std::sort(next.begin(), next.end(), [](const Range& a, const Range& b) { return a.first < b.first; });
  ranges_ = std::move(next);
}

bool RedisSlotMap::member(const RedisNodeAddress& a) const {
  return std::find(members_.begin(), members_.end(), a) != members_.end();
}

std::vector<RedisNodeAddress> RedisSlotMap::primaries() const {
  std::vector<RedisNodeAddress> out;
  for (const Range& r : ranges_)
    if (std::find(out.begin(), out.end(), nodes_[r.node]) == out.end()) out.push_back(nodes_[r.node]);
  return out;
}

}  // namespace credkit::detail
