#!/usr/bin/env bash
# Runs uid2d for real on this machine, without touching the system: a private D-Bus bus,
# the local UID2 operator simulator (real TLS, real UID2 crypto) and uid2d in the
# foreground. Ctrl-C stops all three. Another shell talks to it with uid2ctl; the exact
# commands are printed at start.
#
#   ./scripts/run.sh [--refresh-after SECS]   (default 60: watch it refresh)
set -euo pipefail
cd "$(dirname "$0")/.."

refresh_after=60
if [ "${1:-}" = "--refresh-after" ]; then refresh_after=${2:?seconds}; fi

if ! command -v dbus-daemon >/dev/null; then
  echo "== installing dbus"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dbus >/dev/null
fi
echo "== building (release)"
cargo build --release --locked --bins -p uid2d -p uid2-operator-sim

run=$PWD/target/run
rm -rf "$run" && mkdir -p "$run"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

cat > "$run/bus.conf" <<CONF
<busconfig>
  <type>session</type>
  <listen>unix:path=$run/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow eavesdrop="true"/>
  </policy>
</busconfig>
CONF
dbus-daemon --config-file="$run/bus.conf" --nofork --nosyslog --print-address=1 > "$run/address" 2>/dev/null &
pids+=($!)
until [ -s "$run/address" ]; do sleep 0.05; done
address=$(head -n1 "$run/address")

target/release/uid2-operator-sim --listen 127.0.0.1:0 --ca-out "$run/ca.pem" \
  --refresh-after "$refresh_after" > "$run/operator.txt" &
pids+=($!)
until grep -q '^cstg_subscription_id=' "$run/operator.txt" 2>/dev/null; do sleep 0.05; done
value() { sed -n "s/^$1=//p" "$run/operator.txt"; }

cat > "$run/uid2d.toml" <<CONF
base_url = "$(value base_url)"
ca_file = "$run/ca.pem"
log_level = "debug"

[generate]
subscription_id = "$(value cstg_subscription_id)"
public_key = "$(value cstg_public_key)"
app_name = "com.example.tv"
CONF

cat <<MSG

uid2d is starting on a private bus. In another shell:

  export BUS='$address'
  target/release/uid2ctl --bus "\$BUS" status
  curl -s --cacert $run/ca.pem '$(value base_url)/sim/identity?email=user@example.com' \\
    | target/release/uid2ctl --bus "\$BUS" set -
  target/release/uid2ctl --bus "\$BUS" token
  target/release/uid2ctl --bus "\$BUS" watch        # refreshes after ${refresh_after}s
  target/release/uid2ctl --bus "\$BUS" generate --email jane@example.com
  busctl --address="\$BUS" introspect com.uid2.Manager /com/uid2/Manager

MSG
target/release/uid2d --bus "$address" --config "$run/uid2d.toml" --state-dir "$run/state"
