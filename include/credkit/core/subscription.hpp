// credkit — RAII ownership of an event listener.
#pragma once

#include <functional>

namespace credkit {

/// Keeps a listener registered while it lives; destroying it (or calling `reset`)
/// unsubscribes. After `reset` returns, the listener is not started again (a call already
/// running on another thread finishes). Safe to reset from inside the listener itself and
/// after the credential is gone. Move-only.
class Subscription {
 public:
  /// An empty handle.
  Subscription() noexcept = default;
  /// Owns a registration that `unsubscribe` undoes.
  explicit Subscription(std::function<void()> unsubscribe) noexcept : unsubscribe_(std::move(unsubscribe)) {}
  /// Moves the registration.
  Subscription(Subscription&& other) noexcept : unsubscribe_(std::move(other.unsubscribe_)) { other.unsubscribe_ = nullptr; }
  /// Unsubscribes what this handle owned, then takes over `other`'s registration.
  Subscription& operator=(Subscription&& other) noexcept {
    if (this != &other) {
      reset();
      unsubscribe_ = std::move(other.unsubscribe_);
      other.unsubscribe_ = nullptr;
    }
    return *this;
  }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { reset(); }

  /// Unsubscribes now (idempotent).
  void reset() noexcept {
    if (auto f = std::move(unsubscribe_)) {
      unsubscribe_ = nullptr;
      f();
    }
  }
  /// Keeps the listener for the credential's whole life; the handle becomes empty.
  void release() noexcept { unsubscribe_ = nullptr; }
  /// True while this handle owns a registration.
  explicit operator bool() const noexcept { return static_cast<bool>(unsubscribe_); }

 private:
  std::function<void()> unsubscribe_;
};

}  // namespace credkit
