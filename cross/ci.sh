#!/usr/bin/env bash
# CI's cross stage: builds every shipped target and runs the whole test suite for
# aarch64 under qemu-user. Debug builds: they prove the target builds and links (the
# size-optimised `dist` builds of aarch64 and armv7 are gated by their size ceilings,
# cross/sizes.sh --check).
set -euo pipefail
cd "$(dirname "$0")/.."

# Under emulation each daemon start costs about a second: the kill -9 loop runs 200
# times natively (scripts/test.sh) and 40 times here.
UID2D_CRASH_ITERATIONS=${UID2D_CRASH_ITERATIONS:-40} \
  cross/build.sh aarch64-unknown-linux-gnu --profile dev --test
cross/build.sh armv7-unknown-linux-gnueabihf --profile dev
cross/build.sh aarch64-unknown-linux-musl --profile dev
cross/build.sh armv7-unknown-linux-gnueabihf.2.17 --profile dev
# The size ceilings (hard limits; the figures are printed).
cross/sizes.sh --check aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf
