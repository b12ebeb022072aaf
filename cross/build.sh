#!/usr/bin/env bash
# Cross-builds uid2d (the one executable; uid2ctl is a link to it) for a TV target, and
# optionally runs the test suite for that target under qemu-user.
# No Docker needed: Debian cross gcc + qemu-user, or zig.
#
#   cross/build.sh TARGET [--test] [--profile dist|release]
#
# TARGET is one of
#   aarch64-unknown-linux-gnu        glibc, links against Debian 12's cross glibc (needs GLIBC_2.34)
#   armv7-unknown-linux-gnueabihf    the same for 32-bit ARM hard-float
#   aarch64-unknown-linux-musl       fully static (no glibc on the TV needed)
#   armv7-unknown-linux-musleabihf   fully static, if rustup can install the target
#   <gnu triple>.<glibc version>     through cargo-zigbuild, e.g.
#                                    armv7-unknown-linux-gnueabihf.2.17 (glibc 2.17 floor)
#   x86_64-unknown-linux-gnu         the host, for comparison
#
# --profile: dist (default; size-optimised, stripped, panic=abort, what we ship),
# release (what Yocto/Buildroot build) or dev (fast, unoptimised: CI's proof that it builds). --test runs `cargo test --workspace` for the
# target: the unit tests and the D-Bus end-to-end tests, whose spawned uid2d (also as
# uid2ctl) goes through UID2D_TEST_RUNNER (the qemu command below).
#
# Installs what is missing: the rustup target; as root, Debian packages via apt-get; for
# zig targets, ziglang (pip) and cargo-zigbuild (cargo install). Prints timings, where the
# binaries landed, their size, and the glibc floor (gnu) or `file` output (musl).
set -euo pipefail
cd "$(dirname "$0")/.."

ZIGBUILD_VERSION=0.24.1 # cargo-zigbuild, `cargo install --locked --version`
ZIGLANG_VERSION=0.17.1  # PyPI ziglang

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

target=""
profile=dist
run_tests=0
while [ $# -gt 0 ]; do
  case "$1" in
    --test) run_tests=1 ;;
    --profile) profile="${2:?--profile needs dist or release}"; shift ;;
    --profile=*) profile="${1#--profile=}" ;;
    -h | --help) usage 0 ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *) [ -z "$target" ] || usage; target="$1" ;;
  esac
  shift
done
[ -n "$target" ] || usage
case "$profile" in dist | release | dev) ;; *) echo "--profile must be dist, release or dev" >&2; exit 2 ;; esac
# cargo puts the dev profile in target/…/debug.
profile_dir=$profile
[ "$profile" = dev ] && profile_dir=debug

# `<triple>.<glibc>` selects cargo-zigbuild; the rustup triple is the part before it.
triple="$target"
zig=0
if [[ "$target" =~ ^(.+-gnu[a-z]*)\.([0-9]+\.[0-9]+)$ ]]; then
  triple="${BASH_REMATCH[1]}"
  zig=1
fi

host=$(rustc -vV | sed -n 's/^host: //p')
case "$triple" in
  aarch64-unknown-linux-gnu | aarch64-unknown-linux-musl)
    gcc=aarch64-linux-gnu-gcc prefix=aarch64-linux-gnu
    apt_pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    qemu="qemu-aarch64" sysroot=/usr/aarch64-linux-gnu ;;
  armv7-unknown-linux-gnueabihf | armv7-unknown-linux-musleabihf)
    gcc=arm-linux-gnueabihf-gcc prefix=arm-linux-gnueabihf
    apt_pkgs=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
    qemu="qemu-arm" sysroot=/usr/arm-linux-gnueabihf ;;
  "$host")
    gcc="" prefix="" apt_pkgs=() qemu="" sysroot="" ;;
  *) echo "unsupported target: $target" >&2; usage ;;
esac
musl=0
[[ "$triple" == *-musl* ]] && musl=1
# zig links with its own libc stubs: no cross gcc needed, only the target libc for qemu.
if [ "$zig" = 1 ]; then
  gcc=""
  apt_pkgs=("${apt_pkgs[@]/gcc-*/}")
fi
runner=""
if [ -n "$qemu" ]; then
  if [ "$musl" = 1 ]; then runner="$qemu"; else runner="$qemu -L $sysroot"; fi
fi

# armv7: our code (and every crate's) in Thumb-2 instead of the A32 encoding: the
# `dist` executable is 23 % smaller (3,532,484 -> 2,717,380 B, docs/benchmarks.md). The
# precompiled std stays A32; calls between the two are ordinary interworking. Any ARMv7-A
# TV core runs Thumb-2. Flags already in the variable are kept.
if [ "$triple" = armv7-unknown-linux-gnueabihf ]; then
  export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUSTFLAGS="${CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUSTFLAGS:-} -C target-feature=+thumb-mode"
fi

# ---------------------------------------------------------------------------- helpers
t_all=$(date +%s)
step_start=0
step() { step_start=$(date +%s); echo "== $*"; }
done_step() { echo "   ($(($(date +%s) - step_start)) s)"; }
timings=()
record() { timings+=("$(printf '%-28s %4d s' "$1" $(($(date +%s) - step_start)))"); done_step; }

# ------------------------------------------------------------------- host packages
need_apt=()
[ -z "$gcc" ] || command -v "$gcc" >/dev/null || need_apt+=("${apt_pkgs[@]}")
if [ "$zig" = 1 ] && [ -n "$sysroot" ] && [ ! -d "$sysroot/lib" ]; then
  need_apt+=("${apt_pkgs[@]}")
fi
# qemu-user: for --test, and for the start-up smoke check after every build.
[ -z "$qemu" ] || command -v "$qemu" >/dev/null || need_apt+=(qemu-user)
command -v file >/dev/null || need_apt+=(file)
command -v objdump >/dev/null || need_apt+=(binutils)
if [ "$run_tests" = 1 ]; then
  command -v dbus-daemon >/dev/null || need_apt+=(dbus)
  command -v setpriv >/dev/null || need_apt+=(util-linux)
fi
if [ "$zig" = 1 ] && ! command -v zig >/dev/null && ! python3 -c 'import ziglang' 2>/dev/null; then
  command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
fi
# Drop empty entries and duplicates.
mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | sed '/^$/d' | sort -u)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "apt-get install ${need_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing host packages: ${need_apt[*]} (run as root, or install them)" >&2
    exit 1
  fi
  # No recommends, and no installed package upgraded where the archive allows.
  # shellcheck source=scripts/lib/apt.sh
  . scripts/lib/apt.sh
  apt_install "${need_apt[@]}"
  record "apt packages"
fi

# ------------------------------------------------------------------ rust target, zig
if ! rustup target list --installed | grep -qx "$triple"; then
  step "rustup target add $triple"
  if ! rustup target add "$triple"; then
    echo "rustup could not install $triple." >&2
    if [ "$triple" = armv7-unknown-linux-musleabihf ]; then
      echo "Use armv7-unknown-linux-gnueabihf.2.17 (cargo-zigbuild, glibc 2.17 floor) instead." >&2
    fi
    exit 1
  fi
  record "rustup target"
fi

if [ "$zig" = 1 ]; then
  if ! command -v zig >/dev/null && ! python3 -c 'import ziglang' 2>/dev/null; then
    step "pip install ziglang==$ZIGLANG_VERSION"
    # Debian 12's pip refuses system-wide installs (PEP 668) unless told otherwise.
    python3 -m pip install -q "ziglang==$ZIGLANG_VERSION" ||
      python3 -m pip install -q --break-system-packages "ziglang==$ZIGLANG_VERSION"
    record "pip ziglang"
  fi
  if ! command -v cargo-zigbuild >/dev/null; then
    step "cargo install cargo-zigbuild $ZIGBUILD_VERSION"
    cargo install --locked --quiet --version "$ZIGBUILD_VERSION" cargo-zigbuild
    record "cargo install zigbuild"
  fi
fi

# --------------------------------------------------------------------------- build
cargo_args=(--locked --profile "$profile")
if [ "$zig" = 1 ]; then
  # Its own target dir: zig-linked artifacts must not mix with the gcc-linked ones.
  target_dir="${CARGO_TARGET_DIR:-target}/zig"
  build=(cargo zigbuild --target-dir "$target_dir" --target "$target")
  out_dir="$target_dir/$triple/$profile_dir"
  # For --test: the qemu runner. zigbuild sets the linker and CC itself.
  runner_var="CARGO_TARGET_$(echo "$triple" | tr 'a-z.-' 'A-Z__')_RUNNER"
  export "$runner_var=$runner"
elif [ "$triple" = "$host" ]; then
  build=(cargo build)
  out_dir="${CARGO_TARGET_DIR:-target}/$profile_dir"
else
  build=(cargo --config cross/targets.toml build --target "$triple")
  out_dir="${CARGO_TARGET_DIR:-target}/$triple/$profile_dir"
fi

step "${build[*]} ${cargo_args[*]} -p uid2d --bin uid2d"
"${build[@]}" "${cargo_args[@]}" -p uid2d --bin uid2d
record "build ($profile)"

# ------------------------------------------------------------------------- report
strip_tool=""
for s in ${prefix:+$prefix-strip} llvm-strip strip; do
  if command -v "$s" >/dev/null; then strip_tool="$s"; break; fi
done
objdump_tool=objdump
[ -n "$prefix" ] && command -v "$prefix-objdump" >/dev/null && objdump_tool="$prefix-objdump"

# The highest GLIBC_x.y symbol version a binary needs: the oldest glibc it runs on.
glibc_floor() {
  "$objdump_tool" -T "$1" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -n 1
}

echo
echo "== artifacts ($target, profile $profile)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for bin in uid2d; do
  path="$out_dir/$bin"
  size=$(stat -c %s "$path")
  cp "$path" "$tmp/$bin"
  stripped=$size
  if [ -n "$strip_tool" ] && "$strip_tool" "$tmp/$bin" 2>/dev/null; then
    stripped=$(stat -c %s "$tmp/$bin")
  fi
  printf '%s\n  size %d bytes, stripped %d bytes (%s MB)\n' "$path" "$size" "$stripped" \
    "$(awk -v b="$stripped" 'BEGIN { printf "%.2f", b / 1000000 }')"
  if [ "$musl" = 1 ]; then
    echo "  $(file -b "$path")"
  else
    floor=$(glibc_floor "$path")
    echo "  glibc floor: ${floor:-none found} ($(file -b "$path" | cut -d, -f1-2))"
  fi
done

# Smoke check: the binary starts on the target's libc (under qemu unless native).
if [ -z "$qemu" ] || command -v "$qemu" >/dev/null; then
  echo "  starts: $($runner "$out_dir/uid2d" --version)"
fi

# --------------------------------------------------------------------------- tests
if [ "$run_tests" = 1 ]; then
  echo
  if [ "$triple" = "$host" ]; then
    test_cmd=(cargo test --locked --workspace)
  elif [ "$zig" = 1 ]; then
    test_cmd=(cargo zigbuild test --locked --workspace --target-dir "$target_dir" --target "$target")
  else
    test_cmd=(cargo --config cross/targets.toml test --locked --workspace --target "$triple")
  fi
  # The tests spawn our own binary (uid2d, also through its uid2ctl link); built for the
  # target, it needs the same qemu prefix the cargo runner gives the test binaries themselves.
  export UID2D_TEST_RUNNER="$runner"
  # tests/crash.rs restarts the daemon UID2D_CRASH_ITERATIONS times (default 200, about
  # 3 min under qemu-aarch64). The native run does the full loop; under emulation a shorter one
  # checks the architecture. Set the variable yourself to override.
  if [ -n "$runner" ]; then
    export UID2D_CRASH_ITERATIONS="${UID2D_CRASH_ITERATIONS:-40}"
  fi
  step "UID2D_TEST_RUNNER='$runner' UID2D_CRASH_ITERATIONS=${UID2D_CRASH_ITERATIONS:-default} ${test_cmd[*]}"
  "${test_cmd[@]}"
  record "test (under ${qemu:-native})"
fi

echo
echo "== timings ($target)"
printf '   %s\n' "${timings[@]}"
echo "   total                        $(printf '%4d' $(($(date +%s) - t_all))) s"
