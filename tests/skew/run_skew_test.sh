#!/usr/bin/env bash
# Clock-skew integration test (docs/refresh-semantics.md, R16): the real token_server runs
# unshifted on a loopback port; skew_client runs twice at once, its wall clock shifted by +2 h
# and by -2 h with libfaketime, and checks that the credential learns the offset from the
# responses' Date headers and judges, schedules and hands out tokens in service time.
#
#   run_skew_test.sh <token_server> <skew_client> [duration-seconds]
#
# Exit codes: 0 pass, 1 fail, 77 skipped (faketime is not installed).
#
# libfaketime is an LD_PRELOAD library. FAKETIME_DONT_FAKE_MONOTONIC=1 keeps CLOCK_MONOTONIC
# real: Asio's timers and libcurl's timeouts run on it, and a faked one would break them.
# Sanitizers: TSan works with the preload as is. ASan (GCC links its runtime dynamically)
# refuses to start when another preloaded library comes before it in the link order
# ("ASan runtime does not come first"); libfaketime only wraps clock functions, so the check
# is turned off for the client (verify_asan_link_order=0) and the test runs in every config.
set -uo pipefail

server_bin=${1:?usage: run_skew_test.sh <token_server> <skew_client> [duration]}
client_bin=${2:?usage: run_skew_test.sh <token_server> <skew_client> [duration]}
duration=${3:-34}
lifetime=10m20s   # 620 s: the default ACS policy refreshes 10 min before expiry, ~20 s after issue
lifetime_s=620

faketime_bin=$(command -v faketime || true)
if [ -z "$faketime_bin" ]; then
  echo "SKIPPED: faketime is not installed (Debian package 'faketime'; scripts/setup installs it)"
  exit 77
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# libfaketime must really shift this machine's clock (and leave the monotonic one alone).
real_now=$(date +%s)
shifted_now=$(FAKETIME_DONT_FAKE_MONOTONIC=1 "$faketime_bin" -f '+2h' date +%s)
if [ $((shifted_now - real_now - 7200)) -lt -5 ] || [ $((shifted_now - real_now - 7200)) -gt 5 ]; then
  echo "FAIL: faketime -f '+2h' does not shift the clock (date: $real_now, under faketime: $shifted_now)"
  exit 1
fi

"$server_bin" --port 0 --lifetime "$lifetime" >"$work/server.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$work/server.log" | head -n1)
  [ -n "$port" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "FAIL: token_server did not start"
  cat "$work/server.log"
  exit 1
fi
echo "token_server (unshifted) on port $port, token lifetime $lifetime_s s; clients run ${duration} s each, in parallel"

# Both shifts at once against the one server (half the wall time).
client_asan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
run_client() {  # <faketime offset> <shift seconds> <log>
  ASAN_OPTIONS="$client_asan" FAKETIME_DONT_FAKE_MONOTONIC=1 \
    "$faketime_bin" -f "$1" "$client_bin" --url "http://127.0.0.1:$port" --shift "$2" \
    --duration "$duration" --lifetime "$lifetime_s" >"$3" 2>&1
}
run_client '+2h' 7200 "$work/plus.log" &
plus_pid=$!
run_client '-2h' -7200 "$work/minus.log" &
minus_pid=$!
wait "$plus_pid"
plus_rc=$?
wait "$minus_pid"
minus_rc=$?

echo "--- client clock +2 h (exit $plus_rc)"
cat "$work/plus.log"
echo "--- client clock -2 h (exit $minus_rc)"
cat "$work/minus.log"
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "FAIL: token_server exited during the test"
  cat "$work/server.log"
  exit 1
fi
if [ "$plus_rc" -ne 0 ] || [ "$minus_rc" -ne 0 ]; then
  echo "FAIL: a skewed client saw a violation (exit codes: +2 h $plus_rc, -2 h $minus_rc)"
  exit 1
fi
echo "PASS: both skewed clients learned the offset and judged every token in service time"
