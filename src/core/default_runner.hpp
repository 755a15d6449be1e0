// credkit detail — the SDK-owned executor: one I/O thread for credentials created without an
// executor. (Blocking fetchers run on the elastic pool of blocking_runner.hpp.)
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

}  // namespace credkit::detail
