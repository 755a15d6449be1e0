// Redis Cluster routing without I/O (caches/redis_slot_map.hpp): key slots and hash tags,
// redirect replies, and the slot map, by example and over generated inputs (RapidCheck; the
// seed and case count come from RC_PARAMS, set for caches_tests in CMakeLists.txt).
#include "caches/redis_slot_map.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>

#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace credkit::detail;

namespace {

/// Builds hiredis reply trees for CLUSTER SLOTS answers.
struct ReplyTree {
  std::vector<std::unique_ptr<redisReply>> nodes;
  std::vector<std::unique_ptr<redisReply*[]>> arrays;
  std::vector<std::unique_ptr<std::string>> texts;

  redisReply* integer(long long v) {
    auto r = std::make_unique<redisReply>();
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    nodes.push_back(std::move(r));
    return nodes.back().get();
  }
  redisReply* string(std::string v) {
    texts.push_back(std::make_unique<std::string>(std::move(v)));
    auto r = std::make_unique<redisReply>();
    r->type = REDIS_REPLY_STRING;
    r->str = texts.back()->data();
    r->len = texts.back()->size();
    nodes.push_back(std::move(r));
    return nodes.back().get();
  }
  redisReply* array(std::vector<redisReply*> items) {
    auto r = std::make_unique<redisReply>();
    r->type = REDIS_REPLY_ARRAY;
    r->elements = items.size();
    arrays.push_back(std::make_unique<redisReply*[]>(items.size() + 1));
    std::copy(items.begin(), items.end(), arrays.back().get());
    r->element = arrays.back().get();
    nodes.push_back(std::move(r));
    return nodes.back().get();
  }
  /// One CLUSTER SLOTS entry: [first, last, [host, port, id]], and a replica if `replica_port`.
  redisReply* range(long long first, long long last, const std::string& host, long long port,
                    long long replica_port = 0) {
    std::vector<redisReply*> items{integer(first), integer(last),
                                   array({string(host), integer(port), string("node-id")})};
    if (replica_port) items.push_back(array({string(host), integer(replica_port), string("replica-id")}));
    return array(std::move(items));
  }
};

const RedisNodeAddress asked{"10.0.0.9", 7000};

}  // namespace

TEST_CASE("redis_key_slot: Redis' reference values and hash tags") {
  CHECK(redis_key_slot("123456789") == 0x31C3 % 16384);  // the CRC16/XMODEM check value
  CHECK(redis_key_slot("foo") == 12182);
  CHECK(redis_key_slot("") == 0);
  CHECK(redis_key_slot("{user1000}.following") == redis_key_slot("user1000"));
  CHECK(redis_key_slot("{user1000}.followers") == redis_key_slot("user1000"));
  CHECK(redis_key_slot("foo{}{bar}") == redis_key_slot("foo{}{bar}"));  // empty tag: whole key
  CHECK(redis_key_slot("foo{}{bar}") != redis_key_slot("bar"));
  CHECK(redis_key_slot("foo{{bar}}zap") == redis_key_slot("{bar"));
  CHECK(redis_key_slot("foo{bar}{zap}") == redis_key_slot("bar"));
  CHECK(redis_key_slot("credkit:tok:{abc}") == redis_key_slot("credkit:lock:{abc}"));
}

TEST_CASE("redis_key_slot properties: any key lands in 0..16383; a key's hash tag decides its slot") {
  CHECK(rc::check("slots in range; the tag decides", [] {
    const auto before = *rc::gen::container<std::string>(rc::gen::distinctFrom(rc::gen::arbitrary<char>(), '{'));
    const auto tag = *rc::gen::nonEmpty(
        rc::gen::container<std::string>(rc::gen::distinctFrom(rc::gen::arbitrary<char>(), '}')));
    const auto after = *rc::gen::arbitrary<std::string>();
    const std::string key = before + "{" + tag + "}" + after;
    RC_ASSERT(redis_key_slot(key) < 16384);
    RC_ASSERT(redis_key_slot(key) == redis_key_slot(tag));
    RC_ASSERT(redis_key_slot(*rc::gen::arbitrary<std::string>()) < 16384);
  }));
}

TEST_CASE("parse_redirect: MOVED and ASK, and everything else stands as an error") {
  auto moved = parse_redirect("MOVED 3999 127.0.0.1:6381", asked);
  REQUIRE(moved);
  CHECK(moved->kind == RedisRedirect::Kind::moved);
  CHECK(moved->slot == 3999);
  CHECK(moved->to == RedisNodeAddress{"127.0.0.1", 6381});
  auto ask = parse_redirect("ASK 0 [::1]:7001", asked);
  REQUIRE(ask);
  CHECK(ask->kind == RedisRedirect::Kind::ask);
  CHECK(ask->to == RedisNodeAddress{"::1", 7001});
  CHECK(ask->to.text() == "[::1]:7001");
  auto unknown_host = parse_redirect("MOVED 16383 :7002", asked);  // a node that does not know its address
  REQUIRE(unknown_host);
  CHECK(unknown_host->to == RedisNodeAddress{"10.0.0.9", 7002});
  for (const char* bad : {"MOVED", "MOVED 16384 h:1", "MOVED -1 h:1", "MOVED 1 h:0", "MOVED 1 h:65536", "MOVED 1 h",
                          "MOVED 1 h:1x", "MOVED x h:1", "ASK 1 ::1:7000", "ASK 1 [h]:1", "MOVED 1 h\r\n:1",
                          "MOVED 1 h :1", "moved 1 h:1", "ERR MOVED 1 h:1", "MOVED 1 [::1]7000", ""})
    CHECK_MESSAGE(!parse_redirect(bad, asked), bad);
}

TEST_CASE("parse_redirect properties: well-formed redirects round-trip; any text parses or is refused, never more") {
  CHECK(rc::check("round trip", [] {
    const auto slot = *rc::gen::inRange(0, 16384);
    const auto port = *rc::gen::inRange(1, 65536);
    const auto host = *rc::gen::nonEmpty(rc::gen::container<std::string>(
        rc::gen::element('a', 'z', '0', '9', '.', '-', '_')));
    const bool is_ask = *rc::gen::arbitrary<bool>();
    const auto text = std::string(is_ask ? "ASK " : "MOVED ") + std::to_string(slot) + " " + host + ":" +
                      std::to_string(port);
    const auto r = parse_redirect(text, asked);
    RC_ASSERT(r.has_value());
    RC_ASSERT(r->slot == slot);
    RC_ASSERT(r->to == (RedisNodeAddress{host, port}));
    RC_ASSERT((r->kind == RedisRedirect::Kind::ask) == is_ask);
  }));
  CHECK(rc::check("hostile text", [] {
    // Prefixes that look like redirects, followed by any bytes (control bytes, spaces, NUL).
    const auto prefix = *rc::gen::element<std::string>("MOVED ", "ASK ", "MOVED 1 ", "ASK 16383 ", "");
    const auto text = prefix + *rc::gen::arbitrary<std::string>();
    const auto r = parse_redirect(text, asked);
    if (!r) return;
    RC_ASSERT(r->slot < 16384);
    RC_ASSERT(r->to.port >= 1);
    RC_ASSERT(r->to.port <= 65535);
    RC_ASSERT(!r->to.host.empty());
    for (const char c : r->to.host) RC_ASSERT(c > ' ' && c < 0x7f);  // never a control byte, space or NUL
  }));
}

TEST_CASE("RedisSlotMap: loads CLUSTER SLOTS, answers owners, follows MOVED, refuses malformed maps") {
  ReplyTree t;
  RedisSlotMap map;
  CHECK(map.empty());
  CHECK(map.owner(0) == nullptr);
  auto* reply = t.array({t.range(5461, 10922, "127.0.0.1", 7001, 7004), t.range(0, 5460, "127.0.0.1", 7000, 7003),
                         t.range(10923, 16383, "", 7002)});
  REQUIRE(map.load(*reply, asked));
  // Redirects are followed only to nodes the map lists, primaries or replicas.
  CHECK(map.member({"127.0.0.1", 7000}));
  CHECK(map.member({"127.0.0.1", 7004}));
  CHECK(map.member({"10.0.0.9", 7002}));
  CHECK(!map.member({"127.0.0.1", 7009}));
  CHECK(!map.member({"evil.example", 7000}));
  CHECK(*map.owner(0) == RedisNodeAddress{"127.0.0.1", 7000});
  CHECK(*map.owner(5461) == RedisNodeAddress{"127.0.0.1", 7001});
  CHECK(*map.owner(16383) == RedisNodeAddress{"10.0.0.9", 7002});  // "" is the node asked
  CHECK(map.primaries().size() == 3);
  map.moved(5461, {"127.0.0.1", 7005});
  CHECK(*map.owner(5461) == RedisNodeAddress{"127.0.0.1", 7005});
  CHECK(*map.owner(5460) == RedisNodeAddress{"127.0.0.1", 7000});
  CHECK(*map.owner(5462) == RedisNodeAddress{"127.0.0.1", 7001});

  const RedisSlotMap before = map;
  for (auto* bad : {t.array({t.range(0, 100, "h", 1), t.range(100, 200, "h", 2)}),  // overlap
                    t.array({t.range(0, 16384, "h", 1)}),                             // past the last slot
                    t.array({t.range(10, 5, "h", 1)}),                                // reversed
                    t.array({t.range(0, 5, "h", 0)}),                                 // port 0
                    t.array({t.range(0, 5, "h\r\nx", 1)}),                            // control bytes
                    t.array({t.array({t.integer(0), t.integer(1)})}),                  // no node
                    t.string("not an array")})
    CHECK(!map.load(*bad, asked));
  CHECK(map.primaries() == before.primaries());
  CHECK(*map.owner(5461) == RedisNodeAddress{"127.0.0.1", 7005});
}

TEST_CASE("RedisSlotMap properties: after any load and MOVED sequence, each slot's owner is the last one named") {
  CHECK(rc::check("slot map against a model", [] {
    ReplyTree t;
    RedisSlotMap map;
    std::array<int, 16384> model;
    model.fill(-1);
    // A random partition of some of the slots among up to 6 nodes.
    std::vector<redisReply*> ranges;
    int slot = *rc::gen::inRange(0, 200);
    while (slot < 16384) {
      const int last = std::min(16383, slot + *rc::gen::inRange(0, 6000));
      const int node = *rc::gen::inRange(0, 6);
      ranges.push_back(t.range(slot, last, "127.0.0.1", 7000 + node));
      for (int s = slot; s <= last; ++s) model[static_cast<std::size_t>(s)] = node;
      slot = last + 1 + *rc::gen::inRange(0, 50);
    }
    RC_ASSERT(map.load(*t.array(ranges), asked));
    const auto moves = *rc::gen::container<std::vector<std::pair<int, int>>>(
        rc::gen::pair(rc::gen::inRange(0, 16384), rc::gen::inRange(0, 8)));
    for (auto [s, node] : moves) {
      map.moved(static_cast<std::uint16_t>(s), {"127.0.0.1", 7000 + node});
      model[static_cast<std::size_t>(s)] = node;
    }
    for (int probe = 0; probe < 64; ++probe) {
      const int s = *rc::gen::inRange(0, 16384);
      const auto* owner = map.owner(static_cast<std::uint16_t>(s));
      if (model[static_cast<std::size_t>(s)] < 0) {
        RC_ASSERT(owner == nullptr);
      } else {
        RC_ASSERT(owner != nullptr);
        RC_ASSERT(owner->port == 7000 + model[static_cast<std::size_t>(s)]);
      }
    }
    for (auto [s, node] : moves) RC_ASSERT(map.owner(static_cast<std::uint16_t>(s))->port == 7000 + model[static_cast<std::size_t>(s)]);
  }));
}
