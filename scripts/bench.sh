#!/usr/bin/env bash
# Benchmarks (not a test): builds the release and dist binaries, then prints the table
# of examples/bench.rs, then examples/bench_profiles.rs's. Figures are ratios against baselines measured in the same run.
#   scripts/bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh
command -v dbus-daemon >/dev/null || apt_install dbus
cargo build --release --locked --bins
cargo build --profile dist --locked --bin uid2d
cargo run --release --locked --example bench -- "$@"
# Profiles (issue 28): a switch with 100 app scopes, memory per profile.
cargo run --release --locked --example bench_profiles -- "$@"
