#!/usr/bin/env bash
# Builds the minimal uid2d client of each TV app stack, then runs them all against the
# real uid2d (a private bus, the operator simulator, the daemon: `cargo test --test clients`).
#
#   examples/clients/run.sh                       build all, then run them against uid2d
#   examples/clients/run.sh --build-only [STACK…] only build (what tests/clients.rs calls)
#
# STACK is one of sd-bus, gdbus, qt, python, rust (default: all). Each client lands in
# target/clients/STACK/uid2-client and takes the bus from DBUS_SYSTEM_BUS_ADDRESS, as on a
# device. As root, missing Debian packages are installed with apt-get (scripts/lib/apt.sh:
# no recommends, no installed package upgraded where the archive allows); otherwise a stack
# whose tools are missing prints `SKIP STACK: reason` and is left out (exit status 0).
set -euo pipefail
cd "$(dirname "$0")/../.."

STACKS=(sd-bus gdbus qt python rust)
build_only=0
stacks=()
for arg in "$@"; do
  case "$arg" in
    --build-only) build_only=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    sd-bus | gdbus | qt | python | rust) stacks+=("$arg") ;;
    *) echo "unknown stack or option: $arg (stacks: ${STACKS[*]})" >&2; exit 2 ;;
  esac
done
[ ${#stacks[@]} -gt 0 ] || stacks=("${STACKS[@]}")

# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh

repo=$PWD
out=$repo/target/clients
mkdir -p "$out"
xml=$repo/dbus/com.uid2.Manager1.xml
# -Werror here only: the examples themselves build with plain -Wall -Wextra.
cflags="-O2 -g -Wall -Wextra -Werror"
skipped=()

# ------------------------------------------------------------------------- packages
# ensure STACK PACKAGE… : installs the missing packages as root (scripts/lib/apt.sh: no
# recommends, nothing installed upgraded); else prints SKIP.
ensure() {
  local stack=$1
  shift
  [ $# -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP $stack: missing Debian packages $* (run as root, or install them)"
    skipped+=("$stack")
    rm -f "$out/$stack/uid2-client"
    return 1
  fi
  local log=$out/apt.log t0=$SECONDS
  apt_install "$@" >"$log" 2>&1 || { cat "$log" >&2; echo "apt-get install $* failed" >&2; exit 1; }
  sed 's/^== /   /' "$log"
  echo "   ($((SECONDS - t0)) s)"
}

has() { command -v "$1" >/dev/null 2>&1; }
pc() { has pkg-config && pkg-config --exists "$@"; }

# --------------------------------------------------------------------------- stacks
build_sd_bus() {
  local need=()
  has cc || need+=(gcc)
  has make || need+=(make)
  has pkg-config || need+=(pkg-config)
  pc libsystemd || need+=(libsystemd-dev)
  ensure sd-bus "${need[@]}" || return 0
  make -s -C examples/clients/sd-bus O="$out/sd-bus" CFLAGS="$cflags"
}

build_gdbus() {
  local need=()
  has cc || need+=(gcc)
  has make || need+=(make)
  has pkg-config || need+=(pkg-config)
  pc gio-2.0 gio-unix-2.0 || need+=(libglib2.0-dev)
  has gdbus-codegen || need+=(libglib2.0-dev-bin)
  ensure gdbus "${need[@]}" || return 0
  make -s -C examples/clients/gdbus O="$out/gdbus" XML="$xml" CFLAGS="$cflags"
}

build_qt() {
  local need=() bins=""
  has c++ || need+=(g++)
  has make || need+=(make)
  has pkg-config || need+=(pkg-config)
  pc Qt5DBus || need+=(qtbase5-dev)
  pc Qt5Core && bins=$(pkg-config --variable=host_bins Qt5Core)
  [ -n "$bins" ] && [ -x "$bins/qdbusxml2cpp" ] && [ -x "$bins/moc" ] || need+=(qtbase5-dev-tools)
  ensure qt "${need[@]}" || return 0
  make -s -C examples/clients/qt O="$out/qt" XML="$xml" CXXFLAGS="$cflags"
}

build_python() {
  local need=() dir=$out/python req=examples/clients/python/requirements.txt
  has python3 || need+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
  ensure python "${need[@]}" || return 0
  # A venv of our own under target/: dbus-fast from PyPI, pinned in requirements.txt.
  if [ ! -f "$dir/venv/.installed" ] || [ "$req" -nt "$dir/venv/.installed" ]; then
    rm -rf "$dir/venv"
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    touch "$dir/venv/.installed"
  fi
  cat >"$dir/uid2-client" <<EOF
#!/bin/sh
exec "$dir/venv/bin/python" "$repo/examples/clients/python/uid2_client.py" "\$@"
EOF
  chmod +x "$dir/uid2-client"
}

build_rust() {
  has cargo || { echo "SKIP rust: cargo not found"; skipped+=(rust); return 0; }
  # examples/client.rs, a cargo example of this crate; cargo says where it put it.
  local exe
  exe=$(
    # Called from `cargo test` (tests/clients.rs), we inherit the variables cargo sets for
    # the crate under test. Build scripts (ring's) watch some of them: left in, they would
    # rebuild ring and all above it here, and again in the next plain cargo run.
    for v in $(compgen -e); do
      case "$v" in
        CARGO_PKG_* | CARGO_MANIFEST_* | CARGO_CRATE_NAME | CARGO_BIN_NAME | \
          CARGO_PRIMARY_PACKAGE | CARGO_TARGET_TMPDIR | CARGO_CFG_* | OUT_DIR) unset "$v" ;;
      esac
    done
    "${CARGO:-cargo}" build --locked --example client --message-format=json-render-diagnostics |
      sed -n 's/.*"executable":"\([^"]*\/examples\/client\)".*/\1/p' | tail -n 1
  )
  [ -n "$exe" ] || { echo "cargo did not report the client example's executable" >&2; exit 1; }
  mkdir -p "$out/rust"
  cp -f "$exe" "$out/rust/uid2-client"
}

t_all=$SECONDS
for stack in "${stacks[@]}"; do
  echo "== $stack"
  t0=$SECONDS
  mkdir -p "$out/$stack"
  "build_${stack//-/_}"
  if [ -x "$out/$stack/uid2-client" ]; then
    echo "   built target/clients/$stack/uid2-client ($((SECONDS - t0)) s)"
  fi
done
echo "== built in $((SECONDS - t_all)) s${skipped:+, skipped: ${skipped[*]}}"

if [ "$build_only" = 0 ]; then
  filters=()
  for stack in "${stacks[@]}"; do filters+=("${stack//-/_}_client"); done
  echo "== cargo test --test clients (each client against the real uid2d)"
  "${CARGO:-cargo}" test --locked --test clients -- "${filters[@]}"
fi
