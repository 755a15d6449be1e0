// credkit detail — a gate that posts to the credential's strand pass while its execution
// context lives, and that the context's shutdown closes once the posts under way have left.
//
// A reader/writer lock would do, but it is 56 bytes in every credential and the writer comes
// once in a credential's life; this is one word: the posts under way, and a closed bit.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

namespace credkit::detail {

class PostGate {
 public:
  /// Enters unless closed. After a true return the caller may use what the gate guards until
  /// `leave()`; a false return leaves nothing to undo.
  bool enter() noexcept {
    if (state_.fetch_add(1, std::memory_order_acquire) & kClosed) {
      state_.fetch_sub(1, std::memory_order_release);
      return false;
    }
    return true;
  }
  void leave() noexcept { state_.fetch_sub(1, std::memory_order_release); }

  /// Closes the gate and waits until every caller inside has left (they only post: a short
  /// wait). Afterwards the guarded state may be torn down. Not to be called from inside.
  void close() noexcept {
    state_.fetch_or(kClosed, std::memory_order_acq_rel);
    while ((state_.load(std::memory_order_acquire) & ~kClosed) != 0) std::this_thread::yield();
  }
  bool closed() const noexcept { return (state_.load(std::memory_order_acquire) & kClosed) != 0; }

  /// Holds the gate for a scope; `entered()` says whether it passed.
  class Pass {
   public:
    explicit Pass(PostGate& gate) noexcept : gate_(gate.enter() ? &gate : nullptr) {}
    ~Pass() {
      if (gate_) gate_->leave();
    }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    bool entered() const noexcept { return gate_ != nullptr; }

   private:
    PostGate* gate_;
  };

 private:
  static constexpr std::uint32_t kClosed = 0x8000'0000u;
  std::atomic<std::uint32_t> state_{0};
};

}  // namespace credkit::detail
