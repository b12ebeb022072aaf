#!/usr/bin/env bash
# Tests web/uid2-secure-signals.js in headless Chromium (Debian's chromium package):
# a fake OEM bridge and stand-ins for GPT and IMA, then (second level) a real uid2d on
# a private D-Bus bus behind an HTTP stand-in for the bridge that runs uid2ctl.
#
#   scripts/test-web.sh                 both levels (builds uid2d/uid2ctl, debug, if needed)
#   scripts/test-web.sh --browser-only  only the page tests: no cargo, no dbus-daemon
#
# Installs chromium (and dbus for the second level) with apt-get when root and missing:
# chromium with --no-install-recommends is 24 packages, ~124 MB to download, ~414 MB on
# disk, ~25 s on a fresh Debian 12 machine (measured here). Needs node (>= 18).
# The last line printed is "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

browser_only=0
[ "${1:-}" = "--browser-only" ] && browser_only=1

fail_setup() {
  echo "$*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

command -v node >/dev/null || fail_setup "node is missing (Node.js 18 or later runs web/test/run.mjs)"

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
if [ "$browser_only" = 0 ]; then
  command -v dbus-daemon >/dev/null || need_apt+=(dbus)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || fail_setup "missing: ${need_apt[*]} (run as root, or install them)"
  echo "== installing ${need_apt[*]} (chromium is large: ~124 MB download)"
  start=$(date +%s)
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
    || fail_setup "apt-get install ${need_apt[*]} failed"
  echo "== installed in $(( $(date +%s) - start )) s"
fi

pids=()
run=
cleanup() {
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "$run" ] && rm -rf "$run"
}
trap cleanup EXIT INT TERM

if [ "$browser_only" = 0 ]; then
  echo "== building uid2d and uid2ctl (debug)"
  cargo build --locked --bins -p uid2d -q || fail_setup "cargo build failed"
  run=$(mktemp -d)
  # A private bus with scripts/run.sh's policy: nothing on the system bus is touched.
  # (uid2d does not get as far as "serving" on a bus without the eavesdrop rule.)
  cat > "$run/bus.conf" <<CONF
<busconfig>
  <type>session</type>
  <listen>unix:path=$run/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow eavesdrop="true"/>
  </policy>
</busconfig>
CONF
  dbus-daemon --config-file="$run/bus.conf" --nofork --nosyslog --print-address=1 > "$run/address" 2>/dev/null &
  pids+=($!)
  until [ -s "$run/address" ]; do sleep 0.05; done
  address=$(head -n1 "$run/address")
  # No operator is needed: the identity the test sets is not due for refresh. The
  # base URL points at a closed loopback port so that nothing could leave the machine.
  printf 'base_url = "http://127.0.0.1:9"\n' > "$run/uid2d.toml"
  target/debug/uid2d --bus "$address" --config "$run/uid2d.toml" --state-dir "$run/state" \
    > "$run/uid2d.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    target/debug/uid2ctl --bus "$address" status >/dev/null 2>&1 && break
    sleep 0.1
  done
  target/debug/uid2ctl --bus "$address" status >/dev/null 2>&1 \
    || { cat "$run/uid2d.log" >&2; fail_setup "uid2d did not come up on the private bus"; }
  export UID2D_BUS="$address" UID2CTL="$PWD/target/debug/uid2ctl"
fi

echo "== web tests ($(chromium --version 2>/dev/null | head -n1))"
node web/test/run.mjs --chromium "$(command -v chromium)"
