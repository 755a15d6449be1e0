#include "core/default_runner.hpp"

#include <mutex>

namespace credkit::detail {

namespace {
std::mutex g_mutex;
std::weak_ptr<DefaultRunner> g_runner;
}  // namespace

DefaultRunner::DefaultRunner()
    : io_(std::make_shared<boost::asio::io_context>(1)), guard_(io_->get_executor()) {
  // The thread owns a reference to the io_context so it stays valid if the runner is
  // released from this very thread (then detached rather than joined).
  thread_ = std::thread([io = io_] { io->run(); });
}

DefaultRunner::~DefaultRunner() {
  guard_.reset();
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();
  } else if (thread_.joinable()) {
    thread_.join();
  }
}

std::shared_ptr<DefaultRunner> DefaultRunner::acquire() {
  std::lock_guard lock(g_mutex);
  if (auto existing = g_runner.lock()) return existing;
  std::shared_ptr<DefaultRunner> created(new DefaultRunner());
  g_runner = created;
  return created;
}

}  // namespace credkit::detail
