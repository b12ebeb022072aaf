#!/usr/bin/env bash
# Runs uid2d for real on this machine, without touching the system: a private D-Bus bus,
# the local UID2 operator simulator (real TLS, real UID2 crypto; it is the EUID operator
# too) and uid2d, whose log shows here. Ctrl-C stops all three.
#
#   ./scripts/run.sh [--refresh-after SECS]   (default 60: the identities the simulator
#                                              hands out are due for refresh after SECS)
#
# Once uid2d serves, it writes target/run/env and says so. In another shell, from the
# repository, `source target/run/env` defines what the README's session uses:
#   BUS       the private bus's address (uid2ctl --bus "$BUS", busctl --address="$BUS")
#   OPERATOR  the simulator's base URL (GET $OPERATOR/sim/identity?email=… for an identity)
#   CA        the simulator's throw-away CA certificate (curl --cacert "$CA")
#   RUN       this run's directory, target/run (state, logs, files the session creates)
#   OPERATOR_API_KEY, OPERATOR_API_SECRET   the simulator's API credentials (server SDKs)
#   PATH      with target/release first, so `uid2ctl` is the one just built
# Installs dbus (and curl, for the session) with apt-get when root and missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh
# shellcheck source=scripts/lib/bus.sh
. scripts/lib/bus.sh

refresh_after=60
case "${1:-}" in
  "") ;;
  --refresh-after) refresh_after=${2:?--refresh-after needs a number of seconds} ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
esac

command -v dbus-daemon >/dev/null || apt_install dbus
if ! command -v curl >/dev/null; then
  apt_install curl || echo "note: the README's session needs curl" >&2
fi
echo "== building (release)"
# Two commands: uid2d alone builds with the features `cargo deb` (scripts/check-deb.sh)
# uses, so the package check reuses this build.
cargo build --release --locked --bins -p uid2d
cargo build --release --locked --bins -p uid2-operator-sim
# uid2ctl is a role of uid2d, started through a link by that name (as installed).
ln -sfn uid2d target/release/uid2ctl
ln -sfn uid2d target/release/uid2-gateway

repo=$PWD
run=$repo/target/run
# Another run.sh serving from target/run would lose its bus and state to this one.
if [ -f "$run/env" ] && old_bus=$(sed -n "s/^export BUS='\(.*\)'$/\1/p" "$run/env") &&
  [ -n "$old_bus" ] && timeout 5 target/release/uid2ctl --bus "$old_bus" status >/dev/null 2>&1; then
  echo "another scripts/run.sh is serving from target/run: stop it first" >&2
  exit 1
fi
rm -rf "$run" && mkdir -p "$run"
pids=()
cleanup() {
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  bus_stop
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bus_start "$run"

target/release/uid2-operator-sim --listen 127.0.0.1:0 --ca-out "$run/ca.pem" \
  --refresh-after "$refresh_after" >"$run/operator.txt" &
pids+=($!)
# It prints its settings once it listens; the last line is api_secret=.
until grep -q '^api_secret=' "$run/operator.txt" 2>/dev/null; do
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "the operator simulator did not start" >&2; exit 1; }
  sleep 0.05
done
value() { sed -n "s/^$1=//p" "$run/operator.txt"; }

cat >"$run/uid2d.toml" <<CONF
base_url = "$(value base_url)"
ca_file = "$run/ca.pem"
log_level = "debug"

[generate]
subscription_id = "$(value cstg_subscription_id)"
public_key = "$(value cstg_public_key)"
app_name = "com.example.tv"

# EUID from the same simulator (EUID bases end in /v2), so that nothing here talks to
# prod.euid.eu and uid2ctl doctor checks the operator this setup really uses.
[euid]
base_url = "$(value base_url)/v2"

[euid.generate]
subscription_id = "$(value cstg_subscription_id)"
public_key = "$(value cstg_public_key)"
app_name = "com.example.tv"
CONF

target/release/uid2d --bus "$BUS_ADDRESS" --config "$run/uid2d.toml" --state-dir "$run/state" &
uid2d=$!
pids+=("$uid2d")
# Serving: the first call is answered (uid2d takes its bus name before it answers).
for _ in $(seq 300); do
  target/release/uid2ctl --bus "$BUS_ADDRESS" status >/dev/null 2>&1 && break
  kill -0 "$uid2d" 2>/dev/null || { echo "uid2d exited during start-up" >&2; exit 1; }
  sleep 0.1
done
target/release/uid2ctl --bus "$BUS_ADDRESS" status >/dev/null || { echo "uid2d does not answer" >&2; exit 1; }

# Single-quoted values: readable, and safe for any path without a quote in it.
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
cat >"$run/env" <<ENV
# Written by scripts/run.sh for the session in README.md: source target/run/env
export BUS=$(q "$BUS_ADDRESS")
export OPERATOR=$(q "$(value base_url)")
export CA=$(q "$run/ca.pem")
export RUN=$(q "$run")
export OPERATOR_API_KEY=$(q "$(value api_key)")
export OPERATOR_API_SECRET=$(q "$(value api_secret)")
case ":\$PATH:" in *:$(q "$repo/target/release"):*) ;; *) export PATH=$(q "$repo/target/release"):\$PATH ;; esac
ENV

cat <<MSG

uid2d is serving on a private bus (identities due for refresh after ${refresh_after} s).
In another shell, from $repo:

  source target/run/env
  uid2ctl --bus "\$BUS" status

then the session in README.md. Ctrl-C here stops uid2d, the simulator and the bus.

MSG
wait "$uid2d"
