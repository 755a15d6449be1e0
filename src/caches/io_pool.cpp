#include "caches/io_pool.hpp"

#include <boost/asio/thread_pool.hpp>

namespace credkit::detail {

boost::asio::any_io_executor cache_io_executor() {
  // Intentionally leaked: joining at static destruction would race with caches released late.
  static auto* pool = new boost::asio::thread_pool(4);
  return pool->get_executor();
}

}  // namespace credkit::detail
