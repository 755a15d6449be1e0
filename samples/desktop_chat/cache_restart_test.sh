#!/usr/bin/env bash
# desktop_chat --cache against a real Secret Service: gnome-keyring-daemon on the private
# session bus this script runs in (ctest starts it under dbus-run-session with
# private_session_bus.conf, which activates no services), with HOME and the
# XDG directories in a temporary directory (the user's real keyring is never touched). The
# first start fetches and stores the token, encrypted with a key the keychain creates; the
# second start reads it back with that key and does not fetch.
#
#   dbus-run-session --config-file=private_session_bus.conf -- bash cache_restart_test.sh <desktop_chat>
set -euo pipefail
exe=$1
[ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ] || { echo "no session bus: run under dbus-run-session" >&2; exit 1; }
tmp=$(mktemp -d)
keyring_pid=
cleanup() {
  [ -n "$keyring_pid" ] && kill "$keyring_pid" 2>/dev/null && wait "$keyring_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
export HOME=$tmp/home XDG_DATA_HOME=$tmp/data XDG_CONFIG_HOME=$tmp/config XDG_CACHE_HOME=$tmp/cache-home
export XDG_RUNTIME_DIR=$tmp/run
mkdir -p "$HOME" "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR" "$tmp/cache"
chmod 700 "$XDG_RUNTIME_DIR"

# The login keyring is created and unlocked with this password (stdin), as a desktop login does.
printf 'demo-login-password' | gnome-keyring-daemon --unlock --components=secrets --foreground >/dev/null 2>&1 &
keyring_pid=$!

# Bounded wait (5 s) until the Secret Service answers and has a default collection.
default_alias() {
  dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true' || return 1
  dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets \
    org.freedesktop.Secret.Service.ReadAlias string:default 2>/dev/null | grep -o 'object path "[^"]*"'
}
for _ in $(seq 1 100); do
  alias=$(default_alias || true)
  [ -n "$alias" ] && [ "$alias" != 'object path "/"' ] && break
  sleep 0.05
done
[ -n "${alias:-}" ] && [ "$alias" != 'object path "/"' ] || { echo "gnome-keyring-daemon did not come up" >&2; exit 1; }

expect() {  # expect <output> <text>
  grep -qF -- "$2" <<<"$1" || { echo "expected '$2' in:" >&2; echo "$1" >&2; exit 1; }
}
first=$("$exe" --duration 3 --lifetime 60 --cache "$tmp/cache")
expect "$first" "no usable cached token (key from the secret-service keychain): fetching"
expect "$first" "token fetches:          1"
expect "$first" "expired tokens sent:    0"
[ -s "$tmp/cache/desktop_chat.tokens" ] || { echo "no cache file was written" >&2; exit 1; }
if grep -q "eyJ" "$tmp/cache/desktop_chat.tokens"; then echo "the cache file holds a token in clear" >&2; exit 1; fi

second=$("$exe" --duration 3 --lifetime 60 --cache "$tmp/cache")
expect "$second" "a cached token from an earlier run (key from the secret-service keychain): no fetch at start"
expect "$second" "token fetches:          0"
expect "$second" "expired tokens sent:    0"

# Without the keychain's key the file is useless: a fresh keyring (new key) cannot read it.
kill "$keyring_pid"; wait "$keyring_pid" 2>/dev/null || true; keyring_pid=
rm -rf "$XDG_DATA_HOME/keyrings"
printf 'demo-login-password' | gnome-keyring-daemon --unlock --components=secrets --foreground >/dev/null 2>&1 &
keyring_pid=$!
for _ in $(seq 1 100); do
  alias=$(default_alias || true)
  [ -n "$alias" ] && [ "$alias" != 'object path "/"' ] && break
  sleep 0.05
done
third=$("$exe" --duration 3 --lifetime 60 --cache "$tmp/cache")
expect "$third" "the cached tokens cannot be read with the keychain's key"
expect "$third" "token fetches:          1"
fourth=$("$exe" --duration 3 --lifetime 60 --cache "$tmp/cache")
expect "$fourth" "token fetches:          0"
echo "desktop_chat --cache: first start fetched once, second start fetched nothing; a new key cannot read the old file, which is replaced"
