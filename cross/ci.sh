#!/usr/bin/env bash
# CI's cross stage: builds every shipped target and runs the whole test suite for
# aarch64 under qemu-user. Debug builds: they prove the target builds and links (the
# size-optimised `dist` builds of aarch64 and armv7 are gated by their size ceilings,
# cross/sizes.sh --check).
set -euo pipefail
cd "$(dirname "$0")/.."

# Under emulation each daemon start costs about a second: the kill -9 loop runs 200
# times natively (scripts/test.sh) and 40 times here.
target=${CARGO_TARGET_DIR:-target}
# done_with DIR: on CI (a throwaway clone) a target's debug build is removed once checked,
# so the stage needs the disk of one target at a time (the aarch64 test build is ~2 GB).
done_with() {
  [ -n "${CI:-}" ] || return 0
  rm -rf "$1"
  echo "== removed $1 (free disk: $(df -h --output=avail "$(dirname "$target")" | tail -n 1 | tr -d ' '))"
}
UID2D_CRASH_ITERATIONS=${UID2D_CRASH_ITERATIONS:-40} \
  cross/build.sh aarch64-unknown-linux-gnu --profile dev --test
done_with "$target/aarch64-unknown-linux-gnu/debug"
cross/build.sh armv7-unknown-linux-gnueabihf --profile dev
done_with "$target/armv7-unknown-linux-gnueabihf/debug"
cross/build.sh aarch64-unknown-linux-musl --profile dev
done_with "$target/aarch64-unknown-linux-musl/debug"
cross/build.sh armv7-unknown-linux-gnueabihf.2.17 --profile dev
done_with "$target/zig"
# The size ceilings (hard limits; the figures are printed).
cross/sizes.sh --check aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf
