#include "core/thread_read_cache.hpp"

namespace credkit::detail {

constinit thread_local ThreadReadEntries* t_read_entries = nullptr;

namespace {

// Owns this thread's array; its destructor frees it at thread exit.
struct ThreadReadEntriesOwner {
  std::unique_ptr<ThreadReadEntries> entries = std::make_unique<ThreadReadEntries>();
  ThreadReadEntriesOwner() { t_read_entries = entries.get(); }
  ~ThreadReadEntriesOwner() { t_read_entries = nullptr; }
};

ThreadReadEntries& thread_read_entries() {
  if (t_read_entries) return *t_read_entries;
  thread_local ThreadReadEntriesOwner owner;
  return *owner.entries;
}

}  // namespace

TokenHandle remember_thread_read(std::uint64_t id, std::uint64_t version,
                                 std::chrono::system_clock::time_point fresh_until, const TokenHandle& token) {
  ThreadReadEntry& e = thread_read_entries()[id % kThreadReadEntries];
  if (e.id != 0 && e.id != id && ++e.foreign_misses < 4) return token;
  e.token = std::make_shared<const AccessToken>(*token);
  e.id = id;
  e.version = version;
  e.fresh_until = fresh_until;
  e.foreign_misses = 0;
  return TokenHandle(e.token);
}

}  // namespace credkit::detail
