// Test helpers: run one asynchronous operation to completion on a test's io_context, and
// read the credkit::Error behind an exception_ptr.
#pragma once

#include <credkit/core/error.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <exception>
#include <stdexcept>
#include <utility>

namespace credkit::test {

/// The outcome of an operation completing with `void(std::exception_ptr, T)`.
template <typename T>
struct Outcome {
  std::exception_ptr error;
  T value{};
};

/// Runs `io` until `finished()`. A pending credkit operation keeps work on its handler's
/// executor (Asio's model), so `io` running out of work first is a failure, not a wait (and
/// never a spin: a stopped io_context's run_one() returns at once). `io` may have stopped
/// before (an earlier step ran it out of work): it is restarted first.
template <typename Finished>
void run_until(boost::asio::io_context& io, Finished finished) {
  io.restart();
  while (!finished() && io.run_one() > 0) {
  }
  REQUIRE_MESSAGE(finished(), "the io_context ran out of work before the operation completed");
}

/// As `run_until`, until `done` is set.
inline void run_until_done(boost::asio::io_context& io, const bool& done) {
  run_until(io, [&] { return done; });
}

/// Calls `start(handler)` with a handler bound to `io`, then runs `io` until that handler ran.
/// Bounded by the operation's own timeouts: every credkit operation completes.
template <typename T, typename Start>
Outcome<T> run_op(boost::asio::io_context& io, Start start) {
  Outcome<T> r;
  bool done = false;
  start(boost::asio::bind_executor(io, [&](std::exception_ptr e, T v) {
    r = {e, std::move(v)};
    done = true;
  }));
  run_until_done(io, done);
  return r;
}

/// As `run_op`, for operations completing with `void(std::exception_ptr)`.
template <typename Start>
std::exception_ptr run_void(boost::asio::io_context& io, Start start) {
  std::exception_ptr r;
  bool done = false;
  start(boost::asio::bind_executor(io, [&](std::exception_ptr e) {
    r = e;
    done = true;
  }));
  run_until_done(io, done);
  return r;
}

/// The credkit::Error in `e`; fails the test if `e` is null or holds another exception type.
inline Error as_error(const std::exception_ptr& e) {
  REQUIRE_MESSAGE(e, "expected the operation to fail");
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return err;
  } catch (const std::exception& ex) {
    FAIL("not a credkit::Error: " << ex.what());
  }
  throw std::logic_error("unreachable");
}

}  // namespace credkit::test
