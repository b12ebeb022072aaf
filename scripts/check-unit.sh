#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# CI gate for the OS integration files: the systemd unit, the sysusers.d entry,
# the D-Bus policy, activation file and interface XML, and `make install` (with
# the vendor config in /usr/lib/uid2d and nothing in /etc), and the Ripple pack's unit
# drop-ins applied to uid2-gateway's unit and a stand-in for Ripple's.
#
#   scripts/check-unit.sh
#
# Needs systemd-analyze and systemd-sysusers (package systemd), xmllint
# (libxml2-utils), dbus.socket (dbus: the unit requires it, so verify needs it)
# and /bin/kill (procps: the unit's ExecReload=). Run as root on a fresh
# Debian 12 it installs what is missing; otherwise it says what to install.
# Environment:
#   MAX_EXPOSURE   highest accepted `systemd-analyze security` exposure x 10 (default 12, i.e. 1.2)
#   UID2D_BIN      binary that the verified copy of the unit runs (default: a
#                  built target/{debug,release}/uid2d, else /bin/true)
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=${MAX_EXPOSURE:-12}
UNIT=systemd/uid2d.service
SYSUSERS=systemd/uid2d.sysusers
POLICY=dbus/com.uid2.Manager.conf
ACTIVATION=dbus/com.uid2.Manager.service
INTERFACE_XML=dbus/com.uid2.Manager1.xml

fail() {
  echo "check-unit: FAIL: $*" >&2
  exit 1
}

# ---- tools -------------------------------------------------------------------
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v systemd-sysusers >/dev/null || need+=(systemd)
command -v xmllint >/dev/null || need+=(libxml2-utils)
[ -e /lib/systemd/system/dbus.socket ] || [ -e /usr/lib/systemd/system/dbus.socket ] || need+=(dbus)
[ -x /bin/kill ] || need+=(procps)
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "== installing ${need[*]}"
  # shellcheck source=scripts/lib/apt.sh
  . scripts/lib/apt.sh
  apt_install "${need[@]}" || fail "missing packages: ${need[*]} (install them, or run as root on Debian)"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- 1. systemd-analyze security ---------------------------------------------
echo "== systemd-analyze security (offline, threshold $MAX_EXPOSURE)"
mkdir "$tmp/security"
cp "$UNIT" "$tmp/security/uid2d.service"
rc=0
(cd "$tmp/security" && systemd-analyze security --offline=true --no-pager \
  --threshold="$MAX_EXPOSURE" ./uid2d.service) >"$tmp/security.out" 2>&1 || rc=$?
score=$(grep -a 'Overall exposure level' "$tmp/security.out" || true)
[ -n "$score" ] || { cat "$tmp/security.out" >&2; fail "systemd-analyze security printed no score"; }
echo "$score"
if [ "$rc" -ne 0 ]; then
  grep -a '✗' "$tmp/security.out" >&2 || true
  fail "exposure above $MAX_EXPOSURE/10 (rc $rc); the lines above are what counts against it"
fi

# ---- 2. systemd-analyze verify -----------------------------------------------
# verify exits 0 on warnings (unknown keys, bad values), so any output fails.
# It needs ExecStart='s binary to exist: verify a copy that runs a built uid2d,
# or /bin/true before the first build. --man=no: whether man pages named in
# Documentation= exist on the CI host says nothing about the unit.
# No line is filtered.
bin=${UID2D_BIN:-}
if [ -z "$bin" ]; then
  for candidate in target/debug/uid2d target/release/uid2d; do
    if [ -x "$candidate" ]; then bin=$PWD/$candidate; break; fi
  done
fi
bin=${bin:-/bin/true}
echo "== systemd-analyze verify (ExecStart=$bin)"
mkdir "$tmp/verify"
grep -q '^ExecStart=/usr/bin/uid2d$' "$UNIT" || fail "$UNIT: ExecStart= must be exactly /usr/bin/uid2d (make install rewrites it)"
sed "s|^ExecStart=/usr/bin/uid2d\$|ExecStart=$bin|" "$UNIT" >"$tmp/verify/uid2d.service"
rc=0
(cd "$tmp/verify" && systemd-analyze verify --man=no uid2d.service) >"$tmp/verify.out" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] || [ -s "$tmp/verify.out" ]; then
  cat "$tmp/verify.out" >&2
  fail "systemd-analyze verify: rc $rc, or it printed something (above)"
fi
echo "clean"

# ---- 3. unit <-> D-Bus files consistency -------------------------------------
echo "== unit, activation file and policy agree"
grep -qx 'BusName=com.uid2.Manager' "$UNIT" || fail "$UNIT: BusName=com.uid2.Manager missing"
grep -qx 'Alias=dbus-com.uid2.Manager.service' "$UNIT" || fail "$UNIT: Alias=dbus-com.uid2.Manager.service missing"
grep -qx 'Name=com.uid2.Manager' "$ACTIVATION" || fail "$ACTIVATION: Name= is not com.uid2.Manager"
grep -qx 'SystemdService=dbus-com.uid2.Manager.service' "$ACTIVATION" || fail "$ACTIVATION: SystemdService= is not the unit's Alias="
user=$(sed -n 's/^User=//p' "$UNIT")
[ "$user" = uid2d ] || fail "$UNIT: User= is '$user', expected uid2d"
grep -Eq "^u[[:space:]]+$user[[:space:]]" "$SYSUSERS" || fail "$SYSUSERS does not create user $user"
grep -q "<policy user=\"$user\">" "$POLICY" || fail "$POLICY: no <policy user=\"$user\"> owning the name"
# Above the measured worst case (106 MiB under maximal calls, docs/benchmarks.md) with margin.
memory_max=$(sed -n 's/^MemoryMax=\([0-9][0-9]*\)M$/\1/p' "$UNIT")
[ -n "$memory_max" ] || fail "$UNIT: MemoryMax=<N>M missing"
[ "$memory_max" -ge 128 ] || fail "$UNIT: MemoryMax=${memory_max}M leaves no margin over the measured 106 MiB"
echo "ok"

# ---- 4. sysusers.d entry -------------------------------------------------------
echo "== systemd-sysusers (into a scratch root)"
mkdir -p "$tmp/sysroot/etc"
systemd-sysusers --root="$tmp/sysroot" "$PWD/$SYSUSERS" >"$tmp/sysusers.out" 2>&1 \
  || { cat "$tmp/sysusers.out" >&2; fail "systemd-sysusers rejected $SYSUSERS"; }
if grep -Eiv '^(Creating (user|group) )' "$tmp/sysusers.out" | grep -q .; then
  cat "$tmp/sysusers.out" >&2
  fail "systemd-sysusers warned about $SYSUSERS"
fi
entry=$(grep "^uid2d:" "$tmp/sysroot/etc/passwd" || true)
[ -n "$entry" ] || fail "systemd-sysusers created no uid2d user"
case "$entry" in
  *:/usr/sbin/nologin | *:/sbin/nologin) echo "$entry" ;;
  *) fail "uid2d user can log in: $entry" ;;
esac
grep -q '^uid2d:' "$tmp/sysroot/etc/group" || fail "systemd-sysusers created no uid2d group"

# ---- 5. XML ----------------------------------------------------------------------
echo "== xmllint"
# signals_only_from POLICY IFACE USER: everyone is denied sending IFACE's signals (to one
# connection or to all), USER is allowed (tests/contract.rs proves it on a bus).
signals_only_from() {
  xmllint --nonet --xpath "//policy[@context=\"default\"]/deny[@send_type=\"signal\" and @send_interface=\"$2\" and count(@*)=2]" \
    "$1" >/dev/null 2>&1 || fail "$1: does not deny everyone the signals of $2"
  xmllint --nonet --xpath "//policy[@user=\"$3\"]/allow[@send_type=\"signal\" and @send_interface=\"$2\" and count(@*)=2]" \
    "$1" >/dev/null 2>&1 || fail "$1: does not allow $3 the signals of $2"
}
xmllint --noout --nonet "$INTERFACE_XML" "$POLICY" || fail "xmllint: $INTERFACE_XML or $POLICY is not well-formed XML"
# Every method of each interface is allowed by name in the policy, and nothing else.
for iface in com.uid2.Manager1 com.uid2.Broker1 com.uid2.Diagnostics1 com.uid2.Privacy1; do
  xml="dbus/$iface.xml"
  xmllint --noout --nonet "$xml" || fail "xmllint: $xml is not well-formed XML"
  xml_methods=$(xmllint --nonet --xpath "//interface[@name=\"$iface\"]/method/@name" "$xml" \
    | grep -o '"[^"]*"' | tr -d '"' | sort)
  policy_methods=$(xmllint --nonet --xpath \
    "//policy[@context=\"default\"]/allow[@send_destination=\"com.uid2.Manager\" and @send_interface=\"$iface\"]/@send_member" \
    "$POLICY" | grep -o '"[^"]*"' | tr -d '"' | sort)
  if [ "$xml_methods" != "$policy_methods" ]; then
    diff <(echo "$xml_methods") <(echo "$policy_methods") >&2 || true
    fail "methods in $xml (<) and allowed in $POLICY (>) differ"
  fi
  signals_only_from "$POLICY" "$iface" "$user"
done
# No property is writable, so Properties.Set must not be allowed.
if xmllint --nonet --xpath '//property[@access!="read"]' "$INTERFACE_XML" >/dev/null 2>&1; then
  fail "$INTERFACE_XML has a writable property; review the policy's Properties rules"
fi
if xmllint --nonet --xpath '//allow[@send_interface="org.freedesktop.DBus.Properties" and not(@send_member)] | //allow[@send_member="Set"]' "$POLICY" >/dev/null 2>&1; then
  fail "$POLICY allows Properties.Set"
fi
if command -v gdbus-codegen >/dev/null; then
  gdbus-codegen --interface-prefix com.uid2. --generate-c-code "$tmp/codegen" "$INTERFACE_XML"
  echo "gdbus-codegen: ok"
fi
echo "ok ($(echo "$xml_methods" | wc -l) methods)"

# ---- 6. make install -------------------------------------------------------------
echo "== make install DESTDIR=... prefix=/usr"
# Stub binaries: this checks the Makefile, not the build.
mkdir -p "$tmp/bin"
for b in uid2d; do
  printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/$b"
  chmod 0755 "$tmp/bin/$b"
done
make -s install DESTDIR="$tmp/root" prefix=/usr TARGET_DIR="$tmp/bin" >"$tmp/install.out" 2>&1 \
  || { cat "$tmp/install.out" >&2; fail "make install failed"; }
# Files with their modes; the role links (`uid2ctl`) as "link TARGET".
actual=$(cd "$tmp/root" && find . \( -type f -printf '%m %p\n' \) -o \( -type l -printf 'link %l %p\n' \) \
  | sed 's| \./| /|' | awk '{ print $NF, $0 }' | sort -k1,1 | cut -d' ' -f2-)
expected=$(awk '{ print $NF, $0 }' <<'EOF' | sort -k1,1 | cut -d' ' -f2-
755 /usr/bin/uid2d
link uid2d /usr/bin/uid2ctl
link uid2d /usr/bin/uid2-gateway
644 /usr/lib/systemd/system/uid2d.service
644 /usr/lib/sysusers.d/uid2d.conf
644 /usr/share/dbus-1/system.d/com.uid2.Manager.conf
644 /usr/share/dbus-1/system-services/com.uid2.Manager.service
644 /usr/share/dbus-1/interfaces/com.uid2.Broker1.xml
644 /usr/share/dbus-1/interfaces/com.uid2.Diagnostics1.xml
644 /usr/share/dbus-1/interfaces/com.uid2.Privacy1.xml
644 /usr/share/dbus-1/interfaces/com.uid2.Profiles1.xml
644 /usr/share/dbus-1/interfaces/com.uid2.Manager1.xml
644 /usr/lib/uid2d/uid2d.toml
644 /usr/lib/systemd/system/uid2-gateway.service
644 /usr/lib/sysusers.d/uid2-gateway.conf
644 /usr/share/dbus-1/system.d/com.uid2.Gateway.conf
644 /usr/share/dbus-1/interfaces/com.uid2.Gateway1.xml
644 /usr/share/uid2d/rdk/ripple/uid2.rules.json.in
644 /usr/share/uid2d/rdk/ripple/uid2.extn-sdk.json
644 /usr/share/uid2d/rdk/ripple/uid2.openrpc.json
644 /usr/share/uid2d/rdk/ripple/uid2-gateway.service.d/ripple.conf
644 /usr/share/uid2d/rdk/ripple/ripple.service.d/uid2-gateway.conf
EOF
)
if [ "$actual" != "$expected" ]; then
  diff <(echo "$expected") <(echo "$actual") >&2 || true
  fail "installed files or modes differ from the expected list (< expected, > installed)"
fi
odd=$(find "$tmp/root" -mindepth 1 -type d ! -perm 755 -printf '%m %p\n')
[ -z "$odd" ] || fail "make install made directories that are not 0755: $odd"
cmp -s "$UNIT" "$tmp/root/usr/lib/systemd/system/uid2d.service" \
  || fail "with prefix=/usr the installed unit must equal $UNIT"
cmp -s dist/uid2d.toml "$tmp/root/usr/lib/uid2d/uid2d.toml" \
  || fail "the installed vendor config /usr/lib/uid2d/uid2d.toml must equal dist/uid2d.toml"
cmp -s systemd/uid2-gateway.service "$tmp/root/usr/lib/systemd/system/uid2-gateway.service" \
  || fail "with prefix=/usr the installed gateway unit must equal systemd/uid2-gateway.service"
echo "$(echo "$expected" | wc -l) files, modes ok"

echo "== make install prefix=/usr/local sysconfdir=/usr/local/etc (ExecStart= rewrite)"
make -s install DESTDIR="$tmp/root2" prefix=/usr/local sysconfdir=/usr/local/etc TARGET_DIR="$tmp/bin" \
  >"$tmp/install2.out" 2>&1 || { cat "$tmp/install2.out" >&2; fail "make install (prefix=/usr/local) failed"; }
execstart=$(grep '^ExecStart=' "$tmp/root2/usr/local/lib/systemd/system/uid2d.service")
[ "$execstart" = "ExecStart=/usr/local/bin/uid2d --config /usr/local/etc/uid2d/uid2d.toml" ] \
  || fail "unexpected $execstart"
[ -x "$tmp/root2/usr/local/bin/uid2d" ] || fail "prefix=/usr/local did not install /usr/local/bin/uid2d"
echo "$execstart"

# ---- 7. uid2-gateway: its unit, sysusers entry and policy ------------------------
echo "== uid2-gateway"
GW_UNIT=systemd/uid2-gateway.service
GW_SYSUSERS=systemd/uid2-gateway.sysusers
GW_POLICY=dbus/com.uid2.Gateway.conf
# The exposure line of uid2-gateway.service in directory $1 (with any drop-ins there);
# fails, naming $2, above MAX_EXPOSURE.
gateway_exposure() {
  local out=$1/security.out rc=0 line
  (cd "$1" && systemd-analyze security --offline=true --no-pager \
    --threshold="$MAX_EXPOSURE" ./uid2-gateway.service) >"$out" 2>&1 || rc=$?
  line=$(grep -a 'Overall exposure level' "$out" || true)
  [ -n "$line" ] && [ "$rc" -eq 0 ] || { cat "$out" >&2; fail "$2: exposure above $MAX_EXPOSURE/10"; }
  echo "$line"
}
mkdir "$tmp/gw"
cp "$GW_UNIT" "$tmp/gw/uid2-gateway.service"
gateway_exposure "$tmp/gw" "$GW_UNIT"
gw_bin=/bin/true
[ -x target/debug/uid2d ] && ln -sfn uid2d target/debug/uid2-gateway && gw_bin=$PWD/target/debug/uid2-gateway
grep -q '^ExecStart=/usr/bin/uid2-gateway ' "$GW_UNIT" || fail "$GW_UNIT: ExecStart= must run /usr/bin/uid2-gateway"
sed "s|^ExecStart=/usr/bin/uid2-gateway |ExecStart=$gw_bin |" "$GW_UNIT" >"$tmp/gw/uid2-gateway.service"
rc=0
(cd "$tmp/gw" && systemd-analyze verify --man=no uid2-gateway.service) >"$tmp/gw-verify.out" 2>&1 || rc=$?
# It names uid2d.service, which is not in the scratch directory.
grep -v 'uid2d.service' "$tmp/gw-verify.out" >"$tmp/gw-verify.rest" || true
if [ "$rc" -ne 0 ] || [ -s "$tmp/gw-verify.rest" ]; then
  cat "$tmp/gw-verify.out" >&2
  fail "systemd-analyze verify $GW_UNIT: rc $rc, or it printed something (above)"
fi
grep -qx 'BusName=com.uid2.Gateway' "$GW_UNIT" || fail "$GW_UNIT: BusName=com.uid2.Gateway missing"
gw_user=$(sed -n 's/^User=//p' "$GW_UNIT")
broker_group=$(sed -n 's/^SupplementaryGroups=//p' "$GW_UNIT")
runtime_group=$(sed -n 's/^ExecStart=.*--session-group \([^ ]*\).*/\1/p' "$GW_UNIT")
mkdir -p "$tmp/gw-sysroot/etc"
systemd-sysusers --root="$tmp/gw-sysroot" "$PWD/$GW_SYSUSERS" >"$tmp/gw-sysusers.out" 2>&1 \
  || { cat "$tmp/gw-sysusers.out" >&2; fail "systemd-sysusers rejected $GW_SYSUSERS"; }
grep -q "^$gw_user:" "$tmp/gw-sysroot/etc/passwd" || fail "$GW_SYSUSERS creates no user $gw_user"
grep -Eq "^$broker_group:.*[:,]$gw_user(,|\$)" "$tmp/gw-sysroot/etc/group" || fail "$GW_SYSUSERS does not put $gw_user in $broker_group"
grep -q "^$runtime_group:" "$tmp/gw-sysroot/etc/group" || fail "$GW_SYSUSERS creates no group $runtime_group"
xmllint --noout --nonet "$GW_POLICY" dbus/com.uid2.Gateway1.xml || fail "xmllint: $GW_POLICY or com.uid2.Gateway1.xml"
grep -q "<policy user=\"$gw_user\">" "$GW_POLICY" || fail "$GW_POLICY: $gw_user does not own the name"
signals_only_from "$GW_POLICY" com.uid2.Gateway1 "$gw_user"
xml_methods=$(xmllint --nonet --xpath '//interface[@name="com.uid2.Gateway1"]/method/@name' dbus/com.uid2.Gateway1.xml \
  | grep -o '"[^"]*"' | tr -d '"' | sort)
for who in "group=\"$runtime_group\"" 'user="root"'; do
  policy_methods=$(xmllint --nonet --xpath \
    "//policy[@$who]/allow[@send_interface=\"com.uid2.Gateway1\"]/@send_member" "$GW_POLICY" \
    | grep -o '"[^"]*"' | tr -d '"' | sort)
  [ "$xml_methods" = "$policy_methods" ] || fail "$GW_POLICY: the methods allowed to $who are not those of com.uid2.Gateway1"
done
echo "ok"

# ---- 8. the Ripple pack: its unit drop-ins ------------------------------------------
echo "== the Ripple pack (packaging/rdk/ripple)"
PACK=packaging/rdk/ripple
mkdir -p "$tmp/rp/uid2-gateway.service.d" "$tmp/rp/ripple.service.d"
sed "s|^ExecStart=/usr/bin/uid2-gateway |ExecStart=$gw_bin |" "$GW_UNIT" >"$tmp/rp/uid2-gateway.service"
cp "$PACK/uid2-gateway.service.d/ripple.conf" "$tmp/rp/uid2-gateway.service.d/"
cp "$PACK/ripple.service.d/uid2-gateway.conf" "$tmp/rp/ripple.service.d/"
# Ripple's own unit is the OEM's: a stand-in of its shape (Type=notify, like Ripple's).
printf '[Unit]\nDescription=Ripple stand-in\n[Service]\nType=notify\nExecStart=/bin/true\n' >"$tmp/rp/ripple.service"
grep -q '^ExecStart=.* \$BROKER_ARGS$' "$GW_UNIT" || fail "$GW_UNIT: ExecStart= must end with \$BROKER_ARGS (the pack's drop-in sets it)"
rc=0
(cd "$tmp/rp" && systemd-analyze verify --man=no uid2-gateway.service ripple.service) >"$tmp/rp-verify.out" 2>&1 || rc=$?
grep -v 'uid2d.service' "$tmp/rp-verify.out" >"$tmp/rp-verify.rest" || true
if [ "$rc" -ne 0 ] || [ -s "$tmp/rp-verify.rest" ]; then
  cat "$tmp/rp-verify.out" >&2
  fail "systemd-analyze verify of the units with the pack's drop-ins: rc $rc, or it printed something (above)"
fi
rp_score=$(gateway_exposure "$tmp/rp" "the gateway with the Ripple drop-in")
# The JSON files are checked against the live endpoint by tests/firebolt.rs.
echo "drop-ins verified with the units; with the broker drop-in: ${rp_score#*: }"

echo "check-unit: OK (${score#*: })"
