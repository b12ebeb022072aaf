#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# CI gate for the Debian package: builds it with cargo-deb from the
# [package.metadata.deb] section of Cargo.toml and checks what it contains.
#
#   scripts/check-deb.sh [extra cargo-deb arguments, e.g. --target aarch64-unknown-linux-gnu]
#
# Builds with cargo-deb's default, the release profile (what the package ships, and the
# build scripts/run.sh makes: scripts/test.sh runs this after the README session and so
# reuses it). Not `--profile dev`: cargo-deb warns that it will become an error.
#
# Checks: the file list with modes and owners (the files of `make install`, as in
# scripts/check-unit.sh, plus the copyright file Debian requires), no symlinks,
# the packaged unit, sysusers file and vendor config equal the repository's, no
# conffiles (nothing in /etc), Depends: names the bus, the postinst creates the
# user before it starts the unit, and the maintainer scripts parse. As root,
# also installs, reinstalls and purges the package into a scratch root (dpkg
# --root, scripts run with DPKG_ROOT, nothing started) and checks the user, the
# enable links, that the admin's config in /etc survives, and the purge. Prints
# the .deb and its size.
#
# Needs dpkg-deb (Debian/Ubuntu) and cargo. Installs cargo-deb (>= 3.8, the
# first with sysusers.d support) with `cargo install --locked` when it is missing
# or older: about 2 minutes on 2 cores. `cargo deb` then makes a release build,
# several minutes from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_REQ='^3.8'
START=$SECONDS

fail() {
  echo "check-deb: FAIL: $*" >&2
  exit 1
}

command -v dpkg-deb >/dev/null || fail "dpkg-deb not found (package dpkg)"

# ---- cargo-deb ---------------------------------------------------------------
have=$(cargo deb --version 2>/dev/null | sed -n 's/^cargo-deb \([0-9][0-9.]*\).*/\1/p' || true)
if [ -z "$have" ] || [ "$(printf '%s\n' "$have" 3.8.0 | sort -V | head -n1)" != 3.8.0 ]; then
  echo "== cargo install --locked cargo-deb --version '$CARGO_DEB_REQ' (found: ${have:-none})"
  cargo install --locked cargo-deb --version "$CARGO_DEB_REQ"
  have=$(cargo deb --version | sed -n 's/^cargo-deb \([0-9][0-9.]*\).*/\1/p')
fi
echo "cargo-deb $have ($((SECONDS - START)) s so far)"

# ---- build -------------------------------------------------------------------
echo "== cargo deb --locked $*"
build_start=$SECONDS
out=$(cargo deb --locked "$@") || fail "cargo deb failed"
deb=$(printf '%s\n' "$out" | tail -n1)
[ -f "$deb" ] || fail "cargo deb did not name a .deb (output: $out)"
echo "$deb (built in $((SECONDS - build_start)) s)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- file list -----------------------------------------------------------------
echo "== dpkg-deb -c: files, modes, owners"
dpkg-deb -c "$deb" >"$tmp/contents"
# Lines: "-rwxr-xr-x 0/0 123 2026-01-01 00:00 ./usr/bin/uid2d".
# The two symlinks: the uid2ctl and uid2-gateway roles of the one executable.
links=$(awk '$1 ~ /^l/ { p = $6; sub(/^\./, "", p); print p, $7, $8 }' "$tmp/contents" | LC_ALL=C sort)
[ "$links" = "$(printf '%s\n' '/usr/bin/uid2-gateway -> uid2d' '/usr/bin/uid2ctl -> uid2d')" ] \
  || fail "symlinks other than /usr/bin/uid2ctl and /usr/bin/uid2-gateway -> uid2d: $links"
# cargo-deb writes numeric ids (0/0), dpkg-buildpackage names (root/root).
notroot=$(awk '$2 != "0/0" && $2 != "root/root"' "$tmp/contents")
[ -z "$notroot" ] || fail "files not owned by root: $notroot"
baddirs=$(awk '$1 ~ /^d/ && $1 != "drwxr-xr-x"' "$tmp/contents")
[ -z "$baddirs" ] || fail "directories not 0755: $baddirs"
actual=$(awk '$1 ~ /^-/ { p = $6; sub(/^\./, "", p); print $1, p }' "$tmp/contents" | sort -k2)
expected=$(sort -k2 <<'EOF'
-rwxr-xr-x /usr/bin/uid2d
-rw-r--r-- /usr/lib/systemd/system/uid2d.service
-rw-r--r-- /usr/lib/sysusers.d/uid2d.conf
-rw-r--r-- /usr/share/dbus-1/system.d/com.uid2.Manager.conf
-rw-r--r-- /usr/share/dbus-1/system-services/com.uid2.Manager.service
-rw-r--r-- /usr/share/dbus-1/interfaces/com.uid2.Manager1.xml
-rw-r--r-- /usr/share/dbus-1/interfaces/com.uid2.Broker1.xml
-rw-r--r-- /usr/share/dbus-1/interfaces/com.uid2.Diagnostics1.xml
-rw-r--r-- /usr/share/dbus-1/interfaces/com.uid2.Privacy1.xml
-rw-r--r-- /usr/share/dbus-1/interfaces/com.uid2.Profiles1.xml
-rw-r--r-- /usr/lib/uid2d/uid2d.toml
-rw-r--r-- /usr/share/doc/uid2d/copyright
-rw-r--r-- /usr/lib/systemd/system/uid2-gateway.service
-rw-r--r-- /usr/lib/sysusers.d/uid2-gateway.conf
-rw-r--r-- /usr/share/dbus-1/system.d/com.uid2.Gateway.conf
-rw-r--r-- /usr/share/dbus-1/interfaces/com.uid2.Gateway1.xml
-rw-r--r-- /usr/share/uid2d/rdk/ripple/uid2.rules.json.in
-rw-r--r-- /usr/share/uid2d/rdk/ripple/uid2.extn-sdk.json
-rw-r--r-- /usr/share/uid2d/rdk/ripple/uid2.openrpc.json
-rw-r--r-- /usr/share/uid2d/rdk/ripple/uid2-gateway.service.d/ripple.conf
-rw-r--r-- /usr/share/uid2d/rdk/ripple/ripple.service.d/uid2-gateway.conf
EOF
)
if [ "$actual" != "$expected" ]; then
  diff <(echo "$expected") <(echo "$actual") >&2 || true
  fail "files or modes in the .deb differ from the expected list (< expected, > packaged)"
fi
echo "$(echo "$actual" | wc -l) files, modes and owners ok"

# The OS files are shipped as they are in the repository (prefix /usr, so
# `make install` would not rewrite ExecStart= either).
dpkg-deb -x "$deb" "$tmp/root"
for pair in \
  systemd/uid2d.service:usr/lib/systemd/system/uid2d.service \
  systemd/uid2d.sysusers:usr/lib/sysusers.d/uid2d.conf \
  dbus/com.uid2.Manager.conf:usr/share/dbus-1/system.d/com.uid2.Manager.conf \
  dbus/com.uid2.Manager.service:usr/share/dbus-1/system-services/com.uid2.Manager.service \
  dbus/com.uid2.Manager1.xml:usr/share/dbus-1/interfaces/com.uid2.Manager1.xml \
  dbus/com.uid2.Broker1.xml:usr/share/dbus-1/interfaces/com.uid2.Broker1.xml \
  dbus/com.uid2.Diagnostics1.xml:usr/share/dbus-1/interfaces/com.uid2.Diagnostics1.xml \
  dbus/com.uid2.Privacy1.xml:usr/share/dbus-1/interfaces/com.uid2.Privacy1.xml \
  dbus/com.uid2.Profiles1.xml:usr/share/dbus-1/interfaces/com.uid2.Profiles1.xml \
  systemd/uid2-gateway.service:usr/lib/systemd/system/uid2-gateway.service \
  systemd/uid2-gateway.sysusers:usr/lib/sysusers.d/uid2-gateway.conf \
  dbus/com.uid2.Gateway.conf:usr/share/dbus-1/system.d/com.uid2.Gateway.conf \
  dbus/com.uid2.Gateway1.xml:usr/share/dbus-1/interfaces/com.uid2.Gateway1.xml \
  packaging/rdk/ripple/uid2.rules.json.in:usr/share/uid2d/rdk/ripple/uid2.rules.json.in \
  packaging/rdk/ripple/uid2.extn-sdk.json:usr/share/uid2d/rdk/ripple/uid2.extn-sdk.json \
  packaging/rdk/ripple/uid2.openrpc.json:usr/share/uid2d/rdk/ripple/uid2.openrpc.json \
  packaging/rdk/ripple/uid2-gateway.service.d/ripple.conf:usr/share/uid2d/rdk/ripple/uid2-gateway.service.d/ripple.conf \
  packaging/rdk/ripple/ripple.service.d/uid2-gateway.conf:usr/share/uid2d/rdk/ripple/ripple.service.d/uid2-gateway.conf \
  dist/uid2d.toml:usr/lib/uid2d/uid2d.toml; do
  cmp -s "${pair%%:*}" "$tmp/root/${pair#*:}" || fail "/${pair#*:} in the .deb differs from ${pair%%:*}"
done
for b in uid2d; do
  [ "$(head -c4 "$tmp/root/usr/bin/$b" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] \
    || fail "/usr/bin/$b is not an ELF binary"
done
echo "unit, sysusers, bus files and config equal the repository's"

# ---- control -------------------------------------------------------------------
echo "== dpkg-deb -I"
dpkg-deb -I "$deb" | sed -n '/^ Package:/,$p'
depends=$(dpkg-deb -f "$deb" Depends)
grep -Eq '(^|[ ,|])dbus([ ,|(]|$)' <<<"$depends" || fail "Depends: does not name dbus: $depends"
grep -q 'systemd' <<<"$depends" || fail "Depends: does not name systemd (for systemd-sysusers): $depends"

dpkg-deb -e "$deb" "$tmp/control"
# /etc/uid2d/ is the admin's: the package ships its defaults in /usr/lib/uid2d/.
[ ! -s "$tmp/control/conffiles" ] || fail "the package has conffiles: $(cat "$tmp/control/conffiles")"
for s in preinst postinst prerm postrm; do
  [ -f "$tmp/control/$s" ] || continue
  sh -n "$tmp/control/$s" || fail "$s does not parse"
  ! grep -q '#DEBHELPER#' "$tmp/control/$s" || fail "$s still contains #DEBHELPER#"
done
postinst=$tmp/control/postinst
[ -f "$postinst" ] || fail "no postinst"
sysusers_line=$(grep -n 'systemd-sysusers.* uid2d\.conf' "$postinst" | head -n1 | cut -d: -f1)
enable_line=$(grep -n 'deb-systemd-helper.* enable .*uid2d\.service' "$postinst" | head -n1 | cut -d: -f1)
start_line=$(grep -n 'deb-systemd-invoke .*uid2d\.service' "$postinst" | head -n1 | cut -d: -f1)
[ -n "$sysusers_line" ] || fail "postinst does not run systemd-sysusers uid2d.conf"
[ -n "$enable_line" ] || fail "postinst does not enable uid2d.service"
[ -n "$start_line" ] || fail "postinst does not start uid2d.service"
[ "$sysusers_line" -lt "$enable_line" ] && [ "$sysusers_line" -lt "$start_line" ] \
  || fail "postinst starts or enables uid2d.service before it creates the user"
# cargo-deb's fragment creates the gateway's user and groups too (every sysusers.d asset).
grep -q 'systemd-sysusers.* uid2-gateway\.conf' "$postinst" \
  || fail "postinst does not run systemd-sysusers uid2-gateway.conf"
echo "no conffiles; postinst: systemd-sysusers (line $sysusers_line), enable ($enable_line), start ($start_line)"

# ---- install, reinstall, purge into a scratch root -------------------------------
# dpkg --root with --force-script-chrootless runs the maintainer scripts on this
# host with DPKG_ROOT set; systemd-sysusers, deb-systemd-helper and our own
# scripts then act inside the scratch root. A policy-rc.d there (exit 101) stops
# deb-systemd-invoke from starting or stopping anything; on a host booted with
# systemd the generated fragments still run `systemctl daemon-reload` (harmless).
echo "== dpkg --root (scratch) -i, -i again (upgrade path), --purge"
if [ "$(id -u)" -ne 0 ] || ! command -v systemd-sysusers >/dev/null || ! command -v deb-systemd-helper >/dev/null; then
  echo "skipped: needs root, systemd-sysusers (systemd) and deb-systemd-helper (init-system-helpers)"
else
  R=$tmp/dpkgroot
  mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers" "$R/etc" "$R/usr/sbin"
  : >"$R/var/lib/dpkg/status"
  : >"$R/var/lib/dpkg/available"
  printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
  chmod 0755 "$R/usr/sbin/policy-rc.d"
  dpkg_r() {
    DPKG_ROOT=$R dpkg --root="$R" --force-script-chrootless --force-depends --force-architecture --log=/dev/null "$@" \
      >>"$tmp/dpkg.out" 2>&1 || { cat "$tmp/dpkg.out" >&2; fail "dpkg $* failed"; }
  }
  dpkg_r -i "$deb"
  entry=$(grep '^uid2d:' "$R/etc/passwd" || true)
  case "$entry" in
    *:/usr/sbin/nologin | *:/sbin/nologin) ;;
    *) fail "postinst did not create a locked uid2d user (passwd: '${entry}')" ;;
  esac
  grep -q '^uid2d:' "$R/etc/group" || fail "postinst did not create the uid2d group"
  wants=$R/etc/systemd/system/multi-user.target.wants/uid2d.service
  alias=$R/etc/systemd/system/dbus-com.uid2.Manager.service
  [ "$(readlink "$wants")" = /usr/lib/systemd/system/uid2d.service ] || fail "uid2d.service not enabled (no $wants)"
  [ "$(readlink "$alias")" = /usr/lib/systemd/system/uid2d.service ] || fail "no dbus-com.uid2.Manager.service alias"
  # The admin's config (a file the package does not own) survives a reinstall and
  # a purge; state is removed on purge.
  [ -f "$R/usr/lib/uid2d/uid2d.toml" ] || fail "no vendor config /usr/lib/uid2d/uid2d.toml"
  mkdir -p "$R/etc/uid2d/uid2d.toml.d"
  echo 'log_level = "debug"' >"$R/etc/uid2d/uid2d.toml.d/90-local.toml"
  dpkg_r -i "$deb"
  grep -qx 'log_level = "debug"' "$R/etc/uid2d/uid2d.toml.d/90-local.toml" || fail "reinstall changed the admin's drop-in"
  mkdir -p "$R/var/lib/uid2d"
  : >"$R/var/lib/uid2d/uid2d.key"
  dpkg_r --purge uid2d
  for gone in "$wants" "$alias" "$R/var/lib/uid2d" "$R/usr/lib/uid2d/uid2d.toml" "$R/usr/bin/uid2d"; do
    { [ -e "$gone" ] || [ -L "$gone" ]; } && fail "still there after purge: ${gone#"$R"}"
  done
  [ -f "$R/etc/uid2d/uid2d.toml.d/90-local.toml" ] || fail "purge removed the admin's drop-in"
  echo "user $(cut -d: -f1,3,4,7 <<<"$entry"), enabled with its alias, admin's drop-in kept, purge removes links and state"
fi

size=$(stat -c %s "$deb")
echo "check-deb: OK: $deb, $size bytes ($((size / 1024)) KiB), installed size $(dpkg-deb -f "$deb" Installed-Size) KiB, $((SECONDS - START)) s"
