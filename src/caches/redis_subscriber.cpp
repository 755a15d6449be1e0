#include "caches/redis_subscriber.hpp"

#include <credkit/core/error.hpp>
#include <credkit/core/log.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <initializer_list>

namespace credkit::detail {

namespace {

using steady = std::chrono::steady_clock;
using Args = std::initializer_list<std::string_view>;

std::string_view text_of(const redisReply* r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? std::string_view(r->str, r->len)
                                                                                : std::string_view{};
}

int poll_timeout_ms(steady::time_point now, steady::time_point until) {
  if (until <= now) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
  return static_cast<int>(std::min<long long>(ms, 60'000));
}

}  // namespace

struct RedisSubscriber::Core {
  struct Line {
    std::unique_ptr<RedisConnection> connection;
    steady::time_point retry_at{};
    steady::time_point last_heard{};
    bool ping_sent = false;
  };

  Core(std::vector<Feed> f, Timing t) : feeds(std::move(f)), timing(t), lines(feeds.size()), up(feeds.size()) {
    wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0) throw_error(errc::cache_unavailable, "cannot create the Redis subscriber's wake-up descriptor");
  }
  ~Core() { ::close(wake_fd); }

  void run();
  void open(std::size_t i);
  void lose(std::size_t i);
  /// Reads every reply `i`'s connection already has; false if the connection failed.
  bool drain(std::size_t i);
  void handle(std::size_t i, const redisReply& reply);

  std::vector<Feed> feeds;
  Timing timing;
  std::vector<Line> lines;  // the thread's only
  std::vector<std::atomic<bool>> up;
  std::atomic<bool> stopping{false};
  int wake_fd = -1;  // eventfd: the destructor wakes the thread's poll
};

RedisSubscriber::RedisSubscriber(std::vector<Feed> feeds, Timing timing)
    : core_(std::make_shared<Core>(std::move(feeds), timing)) {
  thread_ = std::thread([core = core_] { core->run(); });
}

RedisSubscriber::~RedisSubscriber() {
  core_->stopping = true;
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(core_->wake_fd, &one, sizeof one);
  if (thread_.get_id() == std::this_thread::get_id())
    thread_.detach();  // the thread holds the core and stops when the callback returns
  else
    thread_.join();
}

bool RedisSubscriber::up(std::size_t i) const noexcept { return i < core_->up.size() && core_->up[i].load(); }

void RedisSubscriber::Core::open(std::size_t i) {
  Line& line = lines[i];
  try {
    auto c = feeds[i].connect();
    c->send(Args{"SUBSCRIBE", feeds[i].channel});
    line.connection = std::move(c);
    line.last_heard = steady::now();
    line.ping_sent = false;
    // Up once Redis confirms the subscription (handle(): "subscribe").
  } catch (const Error& e) {
    line.connection.reset();
    line.retry_at = steady::now() + timing.reconnect_after;
    log(LogLevel::debug, std::string("Redis push wake-ups: cannot subscribe (") + e.what() + "); retrying");
  }
}

void RedisSubscriber::Core::lose(std::size_t i) {
  lines[i].connection.reset();
  // The first retry comes soon (a failover's new primary is usually there at once), later
  // ones every reconnect_after.
  lines[i].retry_at = steady::now() + std::min(timing.reconnect_after, std::chrono::milliseconds(100));
  if (up[i].exchange(false) && feeds[i].on_state) feeds[i].on_state(false);
}

void RedisSubscriber::Core::handle(std::size_t i, const redisReply& reply) {
  // RESP2 pushes: ["subscribe", channel, count], ["message", channel, payload], ["pong", ""].
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 2) return;
  const auto kind = text_of(reply.element[0]);
  if (kind == "message" && reply.elements == 3 && text_of(reply.element[1]) == feeds[i].channel) {
    feeds[i].on_message(text_of(reply.element[2]));
  } else if (kind == "subscribe" && text_of(reply.element[1]) == feeds[i].channel) {
    if (!up[i].exchange(true) && feeds[i].on_state) feeds[i].on_state(true);
  }
}

bool RedisSubscriber::Core::drain(std::size_t i) {
  Line& line = lines[i];
  try {
    while (auto reply = line.connection->poll_reply()) {
      line.last_heard = steady::now();
      line.ping_sent = false;
      handle(i, *reply);
    }
    return true;
  } catch (const Error& e) {
    log(LogLevel::debug, std::string("Redis push wake-ups: subscription lost (") + e.what() + "); reconnecting");
    return false;
  }
}

void RedisSubscriber::Core::run() {
  std::vector<pollfd> fds;
  std::vector<std::size_t> owners;
  while (!stopping) {
    auto now = steady::now();
    auto next = now + std::chrono::seconds(60);
    for (std::size_t i = 0; i < lines.size() && !stopping; ++i) {
      Line& line = lines[i];
      if (!line.connection && now >= line.retry_at) open(i);
      now = steady::now();
      if (!line.connection) {
        next = std::min(next, line.retry_at);
        continue;
      }
      // Silent for ping_every: PING; still silent ping_every later: the peer is gone.
      if (now - line.last_heard >= timing.ping_every) {
        if (line.ping_sent) {
          lose(i);
          continue;
        }
        try {
          line.connection->send(Args{"PING"});
          line.ping_sent = true;
          line.last_heard = now;
        } catch (const Error&) {
          lose(i);
          continue;
        }
      }
      next = std::min(next, line.last_heard + timing.ping_every);
    }
    // TLS may hold decrypted bytes the socket no longer shows: drain before waiting.
    for (std::size_t i = 0; i < lines.size(); ++i)
      if (lines[i].connection && !drain(i)) lose(i);
    fds.assign(1, pollfd{wake_fd, POLLIN, 0});
    owners.clear();
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (!lines[i].connection) continue;
      fds.push_back(pollfd{lines[i].connection->native_handle(), POLLIN, 0});
      owners.push_back(i);
    }
    const int n = ::poll(fds.data(), fds.size(), poll_timeout_ms(steady::now(), next));
    if (n <= 0 || stopping) continue;
    for (std::size_t k = 0; k < owners.size(); ++k) {
      const std::size_t i = owners[k];
      if (!lines[i].connection || fds[k + 1].revents == 0) continue;
      if (!drain(i)) lose(i);
    }
  }
}

}  // namespace credkit::detail
