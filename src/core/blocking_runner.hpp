// credkit detail — where blocking fetchers run unless given an executor: an elastic pool.
//
// A task starts at once on an idle thread or, when none is idle, on a new thread: a hung
// fetcher occupies only its own thread, so it can never delay another credential's blocking
// fetch (a fixed pool would be starved by as many hung fetchers as it has threads). Idle
// threads are reused and retire after `kIdleRetire` without work. Threads are detached, never
// joined, and the pool is never destroyed: a hung fetcher cannot keep the process from
// exiting. How many calls one fetcher may have running at once (so how many threads a
// permanently hung fetcher can pin) is bounded by the caller (fetcher.cpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>

namespace credkit::detail {

/// Idle threads retire after this long without work.
inline constexpr std::chrono::seconds kBlockingIdleRetire{30};

/// Runs `task` on a thread of the elastic pool, starting a thread if none is idle. Throws
/// std::system_error if a thread cannot be created (the task is then not run).
void run_blocking(std::function<void()> task);

/// Threads the pool has now (busy and idle); for tests and diagnostics.
std::size_t blocking_threads() noexcept;

}  // namespace credkit::detail
