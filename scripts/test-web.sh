#!/usr/bin/env bash
# Tests web/uid2-secure-signals.js in headless Chromium (Debian's chromium package):
# a fake OEM bridge and stand-ins for GPT and IMA, then (second level) a real uid2d on
# a private D-Bus bus behind an HTTP stand-in for the bridge that runs uid2ctl; then
# checks that web/uid2-tv-sdk.classic.js is the build of web/uid2-tv-sdk.js; then
# (third level, tests/html5/) web/uid2-tv-sdk.js in pages that reach the real
# uid2-gateway and uid2d, each page with its own session and origin, with Prebid.js's
# UID2/EUID ID modules and the IAB Tech Lab's CMP API code (npm, pinned by
# web/test/package-lock.json, installed into target/web-test). With UID2_WEB_SDK_DIR (and UID2_EXAMPLES_DIR) set, the third level
# also runs the reference_* tests: the UID2 web SDK itself beside the TV SDK
# (docs/testing.md says how to build it; it is not on the npm registry).
#
#   scripts/test-web.sh                 both levels (builds uid2d, links uid2ctl, debug, if needed)
#   scripts/test-web.sh --browser-only  only the page tests: no cargo, no dbus-daemon
#
# Installs chromium (and dbus for the second level) with apt-get when root and missing
# (scripts/lib/apt.sh: no recommends, no installed package upgraded where the archive
# allows): chromium with --no-install-recommends is 24 packages, ~124 MB to download,
# ~414 MB on disk, ~25 s on a fresh Debian 12 machine (measured here). Needs node (>= 18):
# scripts/test.sh installs Debian's nodejs when it is missing.
# The last line printed is "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh
# shellcheck source=scripts/lib/bus.sh
. scripts/lib/bus.sh

browser_only=0
[ "${1:-}" = "--browser-only" ] && browser_only=1

fail_setup() {
  echo "$*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

command -v node >/dev/null || fail_setup "node is missing (Node.js 18 or later runs web/test/run.mjs)"
if [ "$browser_only" = 0 ] && ! command -v npm >/dev/null; then
  [ "$(id -u)" = 0 ] || fail_setup "npm is missing (it installs the web tests' packages)"
  apt_install npm || fail_setup "apt-get install npm failed"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 18 ] || fail_setup "node $(node --version 2>/dev/null) is too old (Node.js 18 or later runs web/test/run.mjs)"

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
if [ "$browser_only" = 0 ]; then
  command -v dbus-daemon >/dev/null || need_apt+=(dbus)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]} (chromium is large: ~124 MB download)"
  start=$(date +%s)
  apt_install "${need_apt[@]}" || fail_setup "apt-get install ${need_apt[*]} failed"
  echo "== installed in $(( $(date +%s) - start )) s"
fi

pids=()
run=
cleanup() {
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  bus_stop
  wait 2>/dev/null || true
  [ -n "$run" ] && rm -rf "$run"
}
trap cleanup EXIT INT TERM

if [ "$browser_only" = 0 ]; then
  echo "== building uid2d and its uid2ctl link (debug)"
  cargo build --locked --bins -p uid2d -q || fail_setup "cargo build failed"
  ln -sfn uid2d target/debug/uid2ctl
  run=$(mktemp -d)
  # A private bus (scripts/lib/bus.sh, as scripts/run.sh): nothing on the system bus is touched.
  bus_start "$run" || fail_setup "no private bus"
  address=$BUS_ADDRESS
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

if [ "$browser_only" = 0 ]; then
  # The web tests' npm packages, exactly as web/test/package-lock.json pins them (it
  # records no download addresses); installed again only when the lock file changes.
  deps=target/web-test
  lock_sum=$(sha256sum web/test/package-lock.json | cut -d' ' -f1)
  if [ "$(cat "$deps/.lock-sum" 2>/dev/null)" != "$lock_sum" ]; then
    echo "== npm ci: Prebid.js, esbuild, jQuery, the IAB TCF stub and GPP CMP API (web/test/package-lock.json)"
    start=$(date +%s)
    rm -rf "$deps" && mkdir -p "$deps"
    cp web/test/package.json web/test/package-lock.json "$deps/"
    (cd "$deps" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || fail_setup "npm ci failed"
    echo "$lock_sum" > "$deps/.lock-sum"
    echo "== installed in $(( $(date +%s) - start )) s"
  fi
  cp web/test/prebid-entry.js "$deps/"
  "$deps/node_modules/.bin/esbuild" "$deps/prebid-entry.js" --bundle --format=iife \
    --target=es2020 --log-level=warning --outfile="$deps/prebid.js" || fail_setup "bundling Prebid.js failed"
  cp web/test/gpp-cmp-entry.js "$deps/"
  "$deps/node_modules/.bin/esbuild" "$deps/gpp-cmp-entry.js" --bundle --format=iife \
    --target=es2020 --log-level=warning --outfile="$deps/gpp-cmpapi.js" || fail_setup "bundling the GPP CMP API failed"
fi

echo "== web tests ($(chromium --version 2>/dev/null | head -n1))"
logs=$(mktemp -d)
pages=0
node web/test/run.mjs --chromium "$(command -v chromium)" | tee "$logs/pages.log" || pages=$?
passed=$(tail -n 1 "$logs/pages.log" | awk '/ passed, [0-9]+ failed$/ { print $1 }')
failed=$(tail -n 1 "$logs/pages.log" | awk '/ passed, [0-9]+ failed$/ { print $3 }')
passed=${passed:-0}
failed=${failed:-1}
if node web/build-classic.mjs --check; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi
if [ "$browser_only" = 0 ]; then
  skip=(--skip reference_)
  if [ -n "${UID2_WEB_SDK_DIR:-}" ]; then
    skip=()
  else
    echo "== reference_* tests skipped: UID2_WEB_SDK_DIR is not set (the UID2 web SDK is not on the npm registry)"
  fi
  echo "== the TV SDK through uid2-gateway (cargo test --test html5 -- --ignored)"
  CHROMIUM=$(command -v chromium) cargo test --locked -q --test html5 -- --ignored "${skip[@]}" 2>&1 | tee "$logs/html5.log" || true
  read -r p f < <(awk '/^test result:/ { p += $4; f += $6; seen = 1 } END { if (seen) print p, f; else print 0, 1 }' "$logs/html5.log")
  passed=$((passed + p))
  failed=$((failed + f))
fi
rm -rf "$logs"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$pages" = 0 ]
