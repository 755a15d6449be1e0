// credkit detail — the threads that run the caches' blocking work (file I/O, hiredis calls).
#pragma once

#include <boost/asio/any_io_executor.hpp>

namespace credkit::detail {

/// A process-wide pool of 4 threads dedicated to cache I/O, created on first use and never
/// destroyed (so a cache released on one of its threads never has to join it). Blocking
/// cache work runs here, never on a credential's or the user's executor.
boost::asio::any_io_executor cache_io_executor();

}  // namespace credkit::detail
