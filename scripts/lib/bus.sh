# shellcheck shell=bash
# The private D-Bus bus of the shell scripts (scripts/run.sh, scripts/test-web.sh,
# scripts/test-readme.sh): a dbus-daemon of its own on a Unix socket, so that callers'
# UIDs are real and nothing on the system bus is touched. Source this file, then:
#
#   bus_start DIR   starts it on unix:path=DIR/bus (config DIR/bus.conf, log DIR/bus.log)
#                   and sets BUS_ADDRESS and BUS_PID; returns non-zero, saying why, when
#                   dbus-daemon is missing or does not start.
#   bus_stop        ends it and waits for it; harmless when it is not running. Call it
#                   from the caller's EXIT trap.
#
# The policy: every local user may own any name and call anything, and eavesdropping is
# allowed (uid2d does not get as far as serving on a bus without that rule). The shipped
# system-bus policy (dbus/com.uid2.Manager.conf) is tested by tests/contract.rs instead.

BUS_ADDRESS=
BUS_PID=

bus_start() {
  local dir=$1
  command -v dbus-daemon >/dev/null || {
    echo "dbus-daemon not found (Debian package dbus)" >&2
    return 1
  }
  mkdir -p "$dir"
  cat >"$dir/bus.conf" <<CONF
<busconfig>
  <type>session</type>
  <listen>unix:path=$dir/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow eavesdrop="true"/>
  </policy>
</busconfig>
CONF
  # dbus-daemon prints its address once it listens: read it from a FIFO, so this waits
  # for exactly that moment (or for its exit, which closes the FIFO empty).
  rm -f "$dir/bus.address"
  mkfifo "$dir/bus.address"
  dbus-daemon --config-file="$dir/bus.conf" --nofork --nosyslog --print-address=1 \
    >"$dir/bus.address" 2>"$dir/bus.log" &
  BUS_PID=$!
  IFS= read -r -t 30 BUS_ADDRESS <"$dir/bus.address" || BUS_ADDRESS=
  rm -f "$dir/bus.address"
  if [ -z "$BUS_ADDRESS" ]; then
    cat "$dir/bus.log" >&2
    bus_stop
    echo "dbus-daemon did not start (config $dir/bus.conf)" >&2
    return 1
  fi
}

bus_stop() {
  [ -n "$BUS_PID" ] || return 0
  kill "$BUS_PID" 2>/dev/null || true
  wait "$BUS_PID" 2>/dev/null || true
  BUS_PID=
}
