#!/usr/bin/env bash
# Benchmarks (not a test): builds the release and dist binaries, then prints the table
# of examples/bench.rs. Figures are ratios against baselines measured in the same run.
#   scripts/bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dbus-daemon >/dev/null || { apt-get update -qq && apt-get install -y -qq dbus >/dev/null; }
cargo build --release --locked --bins
cargo build --profile dist --locked --bin uid2d
cargo run --release --locked --example bench -- "$@"
