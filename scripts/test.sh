#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs the checks and
# the whole test suite, natively and for ARM under qemu-user. Used by `make test` and by
# CI (.ci/run).
#
#   scripts/test.sh            everything, the web module in Chromium included (as root on
#                              a fresh Debian 12, ~20 min on 2 cores)
#   scripts/test.sh --native   only the native checks and tests (~5 min)
set -euo pipefail
cd "$(dirname "$0")/.."
native_only=0
[ "${1:-}" = "--native" ] && native_only=1
# Every test runner's output also goes here, for the closing count.
results=$(mktemp)
trap 'rm -f "$results"' EXIT
summary() {
  awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$results"
}

need_apt=()
command -v dbus-daemon >/dev/null || need_apt+=(dbus)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v xmllint >/dev/null || need_apt+=(libxml2-utils)
command -v setpriv >/dev/null || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${need_apt[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "== installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (deny warnings)"
cargo clippy --locked --workspace --all-targets -- -D warnings
if [ -x scripts/check-unit.sh ]; then
  echo "== unit file, policy and install checks"
  scripts/check-unit.sh
fi
echo "== cargo test"
cargo test --locked --workspace 2>&1 | tee -a "$results"

if [ "$native_only" = 1 ]; then
  summary
  exit 0
fi
echo "== the Debian package (cargo deb --profile dev: the file list, not the optimiser)"
scripts/check-deb.sh --profile dev
echo "== the web module in headless Chromium (installs chromium if missing)"
web=$(mktemp)
scripts/test-web.sh 2>&1 | tee "$web"
# Its runner ends with "N passed, N failed": counted with the rest.
tail -n 1 "$web" | awk '/ passed, [0-9]+ failed$/ { printf "test result: web. %d passed; %d failed;\n", $1, $3 }' >> "$results"
rm -f "$web"
echo "== cross builds and the aarch64 test suite under qemu"
cross/ci.sh 2>&1 | tee -a "$results"
summary
