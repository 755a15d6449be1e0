// credkit detail — the per-thread cache behind the credential's lock-free read path.
//
// Each thread keeps copies of the tokens it read recently, keyed by credential id and
// version. Each entry owns its own copy of the token, so handing out a handle touches only a
// reference count private to this thread: readers on different cores share no written cache
// line. A refresh bumps the credential's version; the next read on this thread copies again.
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/core/token_handle.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>

namespace credkit::detail {

struct ThreadReadEntry {
  std::uint64_t id = 0;
  std::uint64_t version = 0;
  std::chrono::system_clock::time_point fresh_until{};
  std::shared_ptr<const AccessToken> token;
  int foreign_misses = 0;  // reads of another credential that maps to this slot
};
inline constexpr std::size_t kThreadReadEntries = 64;
using ThreadReadEntries = std::array<ThreadReadEntry, kThreadReadEntries>;

// A trivially destructible initial-exec pointer, declared constinit so that readers in other
// files load it directly: one TLS load, no __tls_get_addr call, no init guard or TLS wrapper.
// The array behind it is created on the slow path (remember_thread_read) and freed at thread exit.
[[gnu::tls_model("initial-exec")]] extern constinit thread_local ThreadReadEntries* t_read_entries;

/// The hot path: this thread's entry for credential `id` at `version`, or null.
inline const ThreadReadEntry* find_thread_read(std::uint64_t id, std::uint64_t version) noexcept {
  ThreadReadEntries* entries = t_read_entries;
  if (!entries) return nullptr;
  const ThreadReadEntry& e = (*entries)[id % kThreadReadEntries];
  return (e.id == id && e.version == version) ? &e : nullptr;
}

/// The slow path: keeps this thread's own copy of `token` (fresh until `fresh_until`) for
/// credential `id` at `version`, and returns a handle to it. A slot held by another credential
/// is taken over only after repeated reads of this one (a thread cycling through many
/// credentials then does not copy a token on every read): until then `token` itself is
/// returned. Throws std::bad_alloc.
TokenHandle remember_thread_read(std::uint64_t id, std::uint64_t version,
                                 std::chrono::system_clock::time_point fresh_until, const TokenHandle& token);

}  // namespace credkit::detail
