#!/usr/bin/env bash
# token_server --metrics-port, scraped over HTTP: promtool finds nothing to say about the
# exposition, and the values are what happened (one token request from here, one from the
# server's own probe credential).
#
#   bash metrics_scrape_test.sh <token_server> <promtool>
set -euo pipefail
exe=$1
promtool=$2
log=$(mktemp)
scrape=$(mktemp)
"$exe" --port 0 --metrics-port 0 >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -f "$log" "$scrape"' EXIT

get() {  # get <url>: the body, or a failure after 5 s
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
}
for _ in $(seq 1 100); do grep -q "metrics at" "$log" && break; sleep 0.05; done  # bounded: 5 s
port=$(grep -o '(port [0-9]*)' "$log" | grep -o '[0-9]*')
metrics_port=$(grep -o 'metrics at http://127.0.0.1:[0-9]*' "$log" | grep -o '[0-9]*$')
[ -n "$port" ] && [ -n "$metrics_port" ] || { echo "token_server did not start:" >&2; cat "$log" >&2; exit 1; }

get "http://127.0.0.1:$port/chat/user/alice/token" >/dev/null
# The probe credential fetches once at start; wait (bounded) until its fetch is reported.
for _ in $(seq 1 100); do
  get "http://127.0.0.1:$metrics_port/metrics" >"$scrape"
  grep -q 'credkit_fetches_total{credential="probe"' "$scrape" && break
  sleep 0.05
done

verdict=$("$promtool" check metrics <"$scrape" 2>&1) || { echo "promtool: $verdict" >&2; exit 1; }
[ -z "$verdict" ] || { echo "promtool: $verdict" >&2; exit 1; }

expect() {  # expect <series> <value>
  grep -qxF -- "$1 $2" "$scrape" || { echo "expected '$1 $2' in the scrape:" >&2; cat "$scrape" >&2; exit 1; }
}
expect 'token_server_requests_total{route="chat_user_token"}' 2  # alice and the probe
expect 'credkit_fetches_total{credential="probe",reason="initial",result="ok"}' 1
expect 'credkit_credential_state{credential="probe",state="fresh"}' 1
expect 'credkit_fetch_duration_seconds_count{credential="probe"}' 1
echo "token_server /metrics: promtool clean; requests and the probe's fetch as expected"
