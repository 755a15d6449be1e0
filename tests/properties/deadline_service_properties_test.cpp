// The one-timer-per-io_context deadline heap (src/core/deadline_service.hpp) over generated
// sequences of arm, re-arm, cancel and owner loss (RapidCheck, seeded: RC_PARAMS). Deadlines
// are microseconds long: the io_context's run() returns once nothing is armed, so each case
// takes well under a millisecond of real time and waits on nothing but the service itself.
#include <doctest/doctest.h>

#include <rapidcheck.h>

#include "core/deadline_service.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <vector>

using namespace std::chrono_literals;
using credkit::detail::DeadlineService;

namespace {

const bool rc_defaults = [] {
  ::setenv("RC_PARAMS", "seed=20261204 max_success=10000 max_size=40", /*overwrite=*/0);
  return true;
}();

/// What happened to one deadline; outlives its owner.
struct Record {
  std::vector<std::uint64_t> fired;  // the seqs it was called with
  std::chrono::steady_clock::time_point due_after{};  // the last arm's earliest due time
  bool fired_early = false;
};

/// One deadline's owner (a credential, in credkit), held weakly by the deadline.
struct Owner {
  std::shared_ptr<Record> record = std::make_shared<Record>();
};

void on_due(const std::shared_ptr<void>& owner, std::uint64_t seq) {
  auto& r = *static_cast<Owner*>(owner.get())->record;
  r.fired.push_back(seq);
  if (std::chrono::steady_clock::now() < r.due_after) r.fired_early = true;
}

struct Op {
  enum Kind { arm, cancel, drop_owner } kind;
  std::size_t target;
  int micros;
};

}  // namespace

TEST_CASE("DeadlineService properties: the last arm of a live owner fires once, not early; cancelled and orphaned never") {
  CHECK(rc::check("any sequence of arms, cancels and lost owners", [] {
    const auto count = *rc::gen::inRange<std::size_t>(1, 12);
    const auto ops = *rc::gen::container<std::vector<Op>>(rc::gen::build<Op>(
        rc::gen::set(&Op::kind, rc::gen::weightedElement<Op::Kind>({{6, Op::arm}, {2, Op::cancel}, {1, Op::drop_owner}})),
        rc::gen::set(&Op::target, rc::gen::inRange<std::size_t>(0, 12)),
        rc::gen::set(&Op::micros, rc::gen::weightedOneOf<int>({{3, rc::gen::just(0)}, {2, rc::gen::inRange(1, 300)}}))));
    boost::asio::io_context io;
    auto& service = boost::asio::use_service<DeadlineService>(io);
    const auto strand = boost::asio::make_strand(io);
    std::vector<DeadlineService::Deadline> deadlines(count);
    std::vector<std::shared_ptr<Owner>> owners(count);
    std::vector<std::shared_ptr<Record>> records(count);
    std::vector<std::optional<std::uint64_t>> expected(count);  // the seq that must fire
    std::uint64_t seq = 0;
    for (std::size_t i = 0; i < count; ++i) {
      owners[i] = std::make_shared<Owner>();
      records[i] = owners[i]->record;
      deadlines[i].attach(service, strand);
    }
    for (const Op& op : ops) {
      const std::size_t i = op.target % count;
      switch (op.kind) {
        case Op::arm:
          if (!owners[i]) break;  // its credential is gone
          ++seq;
          records[i]->due_after = std::chrono::steady_clock::now() + std::chrono::microseconds(op.micros);
          deadlines[i].arm(std::chrono::microseconds(op.micros), owners[i], &on_due, seq);
          expected[i] = seq;
          break;
        case Op::cancel:
          deadlines[i].cancel();
          expected[i].reset();
          break;
        case Op::drop_owner:
          owners[i].reset();  // the deadline holds it weakly: it must never be called
          expected[i].reset();
          break;
      }
    }
    io.run();  // returns once every deadline has fired or gone: no wait stays pending
    for (std::size_t i = 0; i < count; ++i) {
      const Record& r = *records[i];
      RC_ASSERT(!r.fired_early);
      if (expected[i]) {
        RC_ASSERT(r.fired.size() == 1u);  // once, with the last arm's seq
        RC_ASSERT(r.fired.front() == *expected[i]);
      } else {
        RC_ASSERT(r.fired.empty());  // cancelled, never armed, or its owner gone
      }
    }
  }));
}

TEST_CASE("DeadlineService: an io_context destroyed before its deadlines leaves them safe to cancel, re-arm and destroy") {
  std::vector<DeadlineService::Deadline> deadlines(3);
  auto owner = std::make_shared<Owner>();
  const auto record = owner->record;
  {
    boost::asio::io_context io;
    auto& service = boost::asio::use_service<DeadlineService>(io);
    for (auto& d : deadlines) {
      d.attach(service, io.get_executor());
      d.arm(1h, owner, &on_due, 1);
    }
  }
  deadlines[0].cancel();
  deadlines[1].arm(1ms, owner, &on_due, 2);  // the book is closed: nothing is queued
  CHECK(record->fired.empty());
}
