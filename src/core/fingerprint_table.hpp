// credkit detail — the counted set of secret fingerprints behind the secret scrubber.
//
// A flat, open-addressed table (linear probing, backward-shift deletion, no tombstones) of
// (length class, hash) keys with a reference count each. It replaces a node-based hash map per
// length class: with thousands of remembered secrets the table holds hundreds of thousands of
// fingerprints, and a node map paid an allocation and two cache misses per fingerprint, which
// made remembering a token (done for every credential created) cost tens of microseconds.
// Callers touching many keys at once prefetch their slots first, so the misses overlap.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace credkit::detail {

class FingerprintTable {
 public:
  using Hash = std::uint64_t;
  static constexpr std::size_t kClasses = 16;

  /// Hints the processor to load the slot where (cls, h) lives.
  void prefetch(std::size_t cls, Hash h) const noexcept {
    if (slots_) __builtin_prefetch(&slots_[home(cls, h)]);
  }

  /// Counts one more reference to (cls, h). Throws std::bad_alloc (the table unchanged).
  void add(std::size_t cls, Hash h) {
    if ((size_ + 1) * 4 > capacity() * 3) grow();
    std::size_t i = home(cls, h);
    for (;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.count == 0) {
        s.hash = h;
        s.count = 1;
        s.cls = static_cast<std::uint32_t>(cls) & 15;
        ++size_;
        ++class_sizes_[cls];
        return;
      }
      if (s.hash == h && s.cls == cls) {
        ++s.count;
        return;
      }
    }
  }

  /// Drops one reference to (cls, h); the key goes with its last reference.
  void remove(std::size_t cls, Hash h) noexcept {
    if (!slots_) return;
    std::size_t i = home(cls, h);
    for (;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.count == 0) return;
      if (s.hash == h && s.cls == cls) break;
    }
    if (--slots_[i].count != 0) return;
    --size_;
    --class_sizes_[cls];
    // Backward shift: move later members of the probe run into the hole, so that a lookup
    // never stops early at it.
    for (std::size_t j = i;;) {
      j = (j + 1) & mask_;
      const Slot& next = slots_[j];
      if (next.count == 0) break;
      const std::size_t k = home(next.cls, next.hash);
      const bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
      if (stays) continue;
      slots_[i] = next;
      i = j;
    }
    slots_[i] = Slot{};
  }

  bool contains(std::size_t cls, Hash h) const noexcept {
    if (class_sizes_[cls] == 0) return false;
    for (std::size_t i = home(cls, h);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.count == 0) return false;
      if (s.hash == h && s.cls == cls) return true;
    }
  }

  /// No key of length class `cls`.
  bool empty(std::size_t cls) const noexcept { return class_sizes_[cls] == 0; }

 private:
  // 12 bytes (packed: the table holds hundreds of thousands of them).
  struct [[gnu::packed, gnu::aligned(4)]] Slot {
    Hash hash = 0;
    std::uint32_t count : 28 = 0;  // 0: the slot is free
    std::uint32_t cls : 4 = 0;
  };
  static_assert(sizeof(Slot) == 12);

  std::size_t capacity() const noexcept { return slots_ ? mask_ + 1 : 0; }

  // The fingerprints are polynomial hashes whose low bits mix poorly: take the top bits of a
  // multiplicative mix.
  std::size_t home(std::size_t cls, Hash h) const noexcept {
    const Hash mixed = (h ^ (static_cast<Hash>(cls) << 59)) * 0x9E3779B97F4A7C15ULL;
    return static_cast<std::size_t>(mixed >> shift_);
  }

  void grow() {
    const std::size_t old_capacity = capacity();
    const std::size_t new_capacity = old_capacity ? old_capacity * 2 : 1024;
    auto old = std::make_unique<Slot[]>(new_capacity);  // value-initialised: every slot free
    slots_.swap(old);
    mask_ = new_capacity - 1;
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(new_capacity));
    size_ = 0;
    class_sizes_ = {};
    for (std::size_t i = 0; i < old_capacity; ++i) {
      const Slot& s = old[i];
      if (s.count == 0) continue;
      std::size_t j = home(s.cls, s.hash);
      while (slots_[j].count != 0) j = (j + 1) & mask_;
      slots_[j] = s;
      ++size_;
      ++class_sizes_[s.cls];
    }
  }

  std::unique_ptr<Slot[]> slots_;
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
  std::size_t size_ = 0;
  std::array<std::size_t, kClasses> class_sizes_{};
};

}  // namespace credkit::detail
