// PostGate (src/core/post_gate.hpp) over generated schedules of real threads (RapidCheck,
// seeded: RC_PARAMS). Its rule: once close() has returned, no pass is inside and none enters;
// close() never returns while a pass that entered before it is still inside; a pass that did
// not enter leaves nothing behind. Each case runs two passers and one closer; the schedule
// (how many passes, how long each stays inside, when the close comes) is generated, and the
// threads are released together so their operations interleave.
#include <doctest/doctest.h>

#include <rapidcheck.h>

#include "core/post_gate.hpp"

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

using credkit::detail::PostGate;

namespace {

const bool rc_defaults = [] {
  ::setenv("RC_PARAMS", "seed=20261204 max_success=10000 max_size=40", /*overwrite=*/0);
  return true;
}();

// Busy work the optimiser keeps: a schedule's "stay inside for n steps".
void spin(int steps) {
  for (int i = 0; i < steps; ++i) asm volatile("" ::: "memory");
}

struct Schedule {
  std::vector<int> passes_a;  // per pass: steps spent inside
  std::vector<int> passes_b;
  int close_after = 0;  // steps before the closer closes
};

}  // namespace

TEST_CASE("PostGate properties: after close() returns no pass is inside and none enters") {
  CHECK(rc::check("any schedule of passes and one close", [] {
    Schedule s;
    s.passes_a = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 200));
    s.passes_b = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 200));
    s.close_after = *rc::gen::inRange(0, 2000);

    PostGate gate;
    std::atomic<bool> torn_down{false};  // set by the closer once close() returned
    std::atomic<int> inside{0};
    std::atomic<int> violations{0};
    std::atomic<int> entered{0}, refused{0};
    std::atomic<int> ready{0};
    const auto go = [&] {
      ++ready;
      while (ready.load() < 3) std::this_thread::yield();
    };
    const auto passer = [&](const std::vector<int>& passes) {
      go();
      for (int steps : passes) {
        PostGate::Pass pass(gate);
        if (!pass.entered()) {
          ++refused;
          continue;
        }
        ++entered;
        ++inside;
        if (torn_down.load()) ++violations;  // entered after close() returned
        spin(steps);
        if (torn_down.load()) ++violations;  // close() returned while this pass was inside
        --inside;
      }
    };
    std::thread a(passer, std::cref(s.passes_a));
    std::thread b(passer, std::cref(s.passes_b));
    std::thread closer([&] {
      go();
      spin(s.close_after);
      gate.close();
      if (inside.load() != 0) ++violations;
      torn_down = true;
    });
    a.join();
    b.join();
    closer.join();
    RC_ASSERT(violations.load() == 0);
    RC_ASSERT(gate.closed());
    RC_ASSERT(entered.load() + refused.load() == int(s.passes_a.size() + s.passes_b.size()));
    // Nothing is left counted: a closed, empty gate closes again at once and refuses.
    gate.close();
    RC_ASSERT(!PostGate::Pass(gate).entered());
  }));
}
