#include <credkit/core/log.hpp>

#include "core/secret_scrubber.hpp"

#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <utility>

namespace credkit {

namespace detail {
// Test hook (credkit::testing::DiagnosticsCapture, src/testing/diagnostics_capture.cpp): when
// set, sees every log line (kind = LogLevel, before the level filter) and every Error message
// (kind 4, from error.cpp), so test suites can prove no secret reaches them. One atomic load
// per line when unset.
std::atomic<void (*)(int kind, std::string_view text)> diagnostics_observer{nullptr};
}  // namespace detail

namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::warning)};

struct HandlerSlot {
  std::mutex mutex;
  std::shared_ptr<const LogHandler> handler;
};

HandlerSlot& slot() {
  static HandlerSlot* s = new HandlerSlot;  // leaked: usable from static destructors
  return *s;
}

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
    case LogLevel::off: break;
  }
  return "?";
}

}  // namespace

LogHandler set_log_handler(LogHandler handler) {
  auto next = handler ? std::make_shared<const LogHandler>(std::move(handler)) : nullptr;
  std::lock_guard lock(slot().mutex);
  auto previous = std::exchange(slot().handler, std::move(next));
  return previous ? *previous : LogHandler{};
}

void set_log_level(LogLevel level) noexcept { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

LogLevel log_level() noexcept { return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed)); }

void log(LogLevel level, std::string_view message) {
  auto observe = detail::diagnostics_observer.load(std::memory_order_acquire);
  const bool emit = static_cast<int>(level) >= g_level.load(std::memory_order_relaxed) && level != LogLevel::off;
  if (!observe && !emit) return;
  // Every line is scrubbed here, whoever wrote it: it may quote text from outside.
  const std::string line = detail::scrub(message);
  if (observe) observe(static_cast<int>(level), line);
  if (!emit) return;
  std::shared_ptr<const LogHandler> handler;
  {
    std::lock_guard lock(slot().mutex);
    handler = slot().handler;
  }
  if (handler) {
    try {
      (*handler)(level, line);
    } catch (...) {
      // A log handler must not break the caller.
    }
    return;
  }
  std::fprintf(stderr, "credkit %s: %.*s\n", level_name(level), static_cast<int>(line.size()), line.data());
}

std::string redact(std::string_view secret) {
  std::string out;
  if (secret.size() >= 24) {
    out.append(secret.substr(0, 6));
    out += "\xE2\x80\xA6";  // …
  }
  // Appended piece by piece: `"(" + std::to_string(...)` inserts at the front of a temporary,
  // a copy g++ 12 -O3 cannot bound (-Wstringop-overflow / -Wrestrict).
  out += '(';
  out += std::to_string(secret.size());
  out += " chars)";
  return out;
}

}  // namespace credkit
