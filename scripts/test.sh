#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs the checks and
# the whole test suite, natively and for ARM under qemu-user. Used by `make test` and by
# CI (.ci/run). docs/testing.md lists every phase and everything it installs.
#
#   scripts/test.sh            everything (as root on a fresh Debian 12; measured on a
#                              2-core VM: ~29 min and ~13 GB of disk, see docs/testing.md)
#   scripts/test.sh --native   only fmt, clippy, the unit/policy/install checks and
#                              cargo test (~6.5 min there)
#
# Needs cargo (rustup). As root, installs the missing Debian packages with
# --no-install-recommends and without upgrading installed ones where the archive allows
# (scripts/lib/apt.sh): dbus, systemd (systemd-analyze, busctl), iproute2 (ip, for
# tests/network.rs), libxml2-utils,
# util-linux (setpriv), curl; for the full run also nodejs (when node is missing or older
# than 18). The phases install more themselves (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh
native_only=0
[ "${1:-}" = "--native" ] && native_only=1
# Every test runner's output also goes here, for the closing count. A failing cargo test
# or check stops the run; the README session and the web module are counted and the run
# goes on. The exit status is non-zero when anything failed.
results=$(mktemp)
trap 'rm -f "$results"' EXIT
summary() {
  awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f; exit f > 0 }' "$results"
}
# count NAME FILE: a runner whose last line is "N passed, N failed" (scripts/test-web.sh,
# scripts/test-readme.sh, scripts/test-vm.sh), added to the closing count like a cargo test binary.
count() {
  tail -n 1 "$2" | awk -v name="$1" '/ passed, [0-9]+ failed$/ { printf "test result: %s. %d passed; %d failed;\n", name, $1, $3; ok = 1 }
    END { if (!ok) printf "test result: %s. 0 passed; 1 failed;\n", name }' >>"$results"
}
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
# Free disk where the build lives, printed at each phase: CI's machine has no fixed disk
# size, and a run that fills it fails far from the cause.
disk() { df -h --output=avail "$(dirname "${CARGO_TARGET_DIR:-target}")" 2>/dev/null | tail -n 1 | tr -d ' '; }
# prune DIR...: on CI (a throwaway clone), removes build output no later phase reads;
# locally it is kept for the next run.
prune() {
  [ -n "${CI:-}" ] || return 0
  echo "== removing ${*} (CI: no later phase reads it)"
  rm -rf "$@"
}

command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (rust-version in Cargo.toml)" >&2; exit 1; }
need_apt=()
command -v dbus-daemon >/dev/null || need_apt+=(dbus)
command -v systemd-analyze >/dev/null && command -v busctl >/dev/null || need_apt+=(systemd)
command -v xmllint >/dev/null || need_apt+=(libxml2-utils)
command -v setpriv >/dev/null || need_apt+=(util-linux)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v curl >/dev/null || need_apt+=(curl)
if [ "$native_only" = 0 ] && [ "$(node_major)" -lt 18 ]; then
  need_apt+=(nodejs)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  apt_install "${need_apt[@]}"
fi
if [ "$native_only" = 0 ] && [ "$(node_major)" -lt 18 ]; then
  echo "node $(node --version 2>/dev/null || echo missing) is older than 18 and Debian's nodejs did not" \
    "replace it: install Node.js 18 or later (the web module's tests need it)" >&2
  exit 1
fi

# A clean clone gains nothing from incremental state (it was 2.7 GB of target/debug).
[ -n "${CI:-}" ] && export CARGO_INCREMENTAL=0
echo "== cargo fmt --check (free disk: $(disk))"
cargo fmt --all -- --check
# `cargo fmt` follows `mod` items, not the modules src/lib.rs declares inside `internal!`:
# every tracked Rust file, by name.
git ls-files -z '*.rs' | xargs -0 rustfmt --edition 2021 --check
echo "== cargo clippy (deny warnings)"
cargo clippy --locked --workspace --all-targets -- -D warnings
# The library as the binaries link it: without the test-support feature the test targets
# turn on, so code only tests reach shows up as dead.
cargo clippy --locked -p uid2d --lib --bins -- -D warnings
if [ -x scripts/check-unit.sh ]; then
  echo "== unit file, policy and install checks"
  scripts/check-unit.sh
fi
echo "== cargo test (free disk: $(disk))"
cargo test --locked --workspace 2>&1 | tee -a "$results"
echo "== cargo test: the bundled-roots build's trust store (one test file)"
cargo test --locked --features bundled-roots --test trust_store 2>&1 | tee -a "$results"

if [ "$native_only" = 1 ]; then
  summary
  exit
fi
echo "== the README's session, as printed, against scripts/run.sh (release build)"
readme=$(mktemp)
scripts/test-readme.sh 2>&1 | tee "$readme" || true
count readme "$readme"
rm -f "$readme"
echo "== the Debian package (cargo deb: release profile, the build the session used)"
scripts/check-deb.sh
echo "== the web module in headless Chromium (installs chromium if missing)"
web=$(mktemp)
scripts/test-web.sh 2>&1 | tee "$web" || true
count web "$web"
rm -f "$web"
prune target/web-test
# The booted system: x86_64 every run (4 min on 2 cores, 7 with a fresh image); arm64
# only with UID2D_VM_ARM64=1 (its image and release cross build add 17-35 min to a fresh
# run, past CI's budget; docs/testing.md). Needs root (mmdebstrap,
# apt, qemu): without it, and outside CI, it is skipped, saying so; in CI it counts as failed.
vm_arches=x86_64
[ "${UID2D_VM_ARM64:-0}" = 1 ] && vm_arches=all
if [ "$(id -u)" -ne 0 ] && [ -z "${CI:-}" ]; then
  echo "== uid2d on a booted system: skipped (needs root; CI runs it as root)"
else
  echo "== uid2d on a booted system: the .deb under systemd in a Debian 12 guest (qemu-system, $vm_arches)"
  vm=$(mktemp)
  scripts/test-vm.sh "$vm_arches" 2>&1 | tee "$vm" || true
  count vm "$vm"
  rm -f "$vm"
fi
target=${CARGO_TARGET_DIR:-target}
prune "$target/debug" "$target/release"
echo "== cross builds and the aarch64 test suite under qemu (free disk: $(disk))"
cross/ci.sh 2>&1 | tee -a "$results"
summary
