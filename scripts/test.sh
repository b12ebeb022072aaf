#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs the checks and
# the whole test suite. Used by `make test` and by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

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
cargo test --locked --workspace
