// credkit detail — the SDK-owned executors: one I/O thread for credentials created without
// an executor, and a small pool for blocking fetchers.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <memory>
#include <thread>

namespace credkit::detail {

/// One io_context run by one thread, shared by every credential created without an executor
/// and joined when the last of them releases it.
class DefaultRunner {
 public:
  static std::shared_ptr<DefaultRunner> acquire();
  ~DefaultRunner();
  boost::asio::any_io_executor executor() const { return io_->get_executor(); }

 private:
  DefaultRunner();
  std::shared_ptr<boost::asio::io_context> io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

/// The pool blocking fetchers run on unless given an executor (2 threads, never joined:
/// a hung fetcher cannot keep the process from exiting).
boost::asio::any_io_executor blocking_pool_executor();

}  // namespace credkit::detail
