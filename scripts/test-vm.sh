#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# uid2d on a booted system: the .deb under real systemd and the real system bus, in a
# Debian 12 guest under qemu-system (TCG; KVM is used when /dev/kvm is usable).
#
#   scripts/test-vm.sh [x86_64|arm64|all]     (default x86_64)
#
# 1. Builds, once, a Debian 12 guest image with mmdebstrap (systemd, dbus, the cloud
#    kernel with a small virtio-only initramfs, curl) and caches it in $UID2D_VM_CACHE
#    (default /var/cache/uid2d-vm/<arch>/, keyed by a hash of the recipe below).
# 2. Builds the product: `cargo build --release` and `cargo deb --no-build`.
# 3. Starts the operator simulator on the host, bound to 127.0.0.1, with a test CA and
#    a certificate that names 10.0.2.2 (qemu's user-mode gateway to the host's loopback:
#    the only network the guest has), with short token lifetimes.
# 4. Boots the cached image through a copy-on-write overlay, with the product on a
#    second disk (the .deb, scripts/vm/guest.sh, the CA). A unit in the image runs
#    guest.sh, which installs the .deb as an integrator would and runs the checks on
#    dbus-daemon, reboots (persistence, the app scope, the broker), reboots again on
#    dbus-broker with the clock before the release date, follows two logind sessions with
#    profiles on, purges the package and powers off. Its output comes back on the second serial port (x86_64) or a virtio console
#    (arm64); the kernel console goes to a log file.
# 5. Prints every check as "PASS name" / "FAIL name: why" and ends with
#    "N passed, N failed" (exit status non-zero when anything failed or the guest never
#    finished).
#
# Installs (scripts/lib/apt.sh, as root): mmdebstrap, e2fsprogs, qemu-system-x86,
# qemu-utils, seabios, python3 (for arm64: qemu-system-arm, qemu-efi-aarch64, arch-test,
# qemu-user-static, registered with binfmt_misc for mmdebstrap's foreign chroot, and the
# cross toolchain through cross/build.sh); cargo-deb when missing. When qemu-utils from
# bookworm-backports is installed, Debian 12's qemu-system would remove it: then the
# same backports version of qemu-system is installed instead (adding bookworm-backports
# to the apt sources). Timings and versions: docs/testing.md, "Tested on a booted system".
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh

START=$SECONDS
CACHE=${UID2D_VM_CACHE:-/var/cache/uid2d-vm}
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
# Whole-run limit for one guest (all three boots), seconds.
GUEST_TIMEOUT=${UID2D_VM_TIMEOUT:-900}

die() {
  echo "test-vm: $*" >&2
  exit 1
}
log() { echo "== $* ($((SECONDS - START)) s)"; }

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap, apt, mkfs.ext4 -d with root-owned files)"

# ---- host packages ------------------------------------------------------------------
# qemu-system-<x> in the version of an installed qemu-utils from bookworm-backports.
install_qemu() {
  local pkgs=("$@") v
  v=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' qemu-utils 2>/dev/null || true)
  if [[ $v == ii*'|'*bpo12* ]]; then
    v=${v#*|}
    local missing
    missing=$(apt_missing "${pkgs[@]}")
    [ -n "$missing" ] || return 0
    local src=/etc/apt/sources.list.d/uid2d-vm-backports.sources
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "== qemu-utils $v is from bookworm-backports: adding $src for the matching qemu-system"
      printf '%s\n' "# Added by uid2d scripts/test-vm.sh: qemu-system in the version of the installed" \
        "# backports qemu-utils (Debian 12's own qemu-system would remove it)." \
        "Types: deb" "URIs: $MIRROR" "Suites: bookworm-backports" "Components: main" \
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" >"$src"
    fi
    apt-get -qq -o DPkg::Lock::Timeout=300 update
    local want=() p
    for p in $missing; do
      case $p in
        qemu-system-*) want+=("$p=$v") ;;
        seabios | ipxe-qemu) want+=("$p/bookworm-backports") ;; # qemu-efi-aarch64 (edk2): only bookworm has it
        *) want+=("$p") ;;
      esac
    done
    want+=("qemu-system-common=$v" "qemu-system-data=$v")
    echo "== apt-get install ${want[*]} (the version of the installed qemu-utils)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-upgrade \
      -o DPkg::Lock::Timeout=300 "${want[@]}" >/dev/null
  else
    apt_install "${pkgs[@]}"
  fi
}

# mmdebstrap builds the arm64 rootfs in a foreign chroot: qemu-aarch64-static through
# binfmt_misc. A host without systemd has no systemd-binfmt to register it: done here
# from qemu-user-static's binfmt.d file (F: the interpreter is opened now, so it works
# inside the chroot).
register_binfmt() {
  local conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -e /proc/sys/fs/binfmt_misc/register ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
    die "cannot mount binfmt_misc (needed to build the arm64 image)"
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    [ -f "$conf" ] || die "no $conf (package qemu-user-static)"
    echo "== registering qemu-aarch64 with binfmt_misc ($conf)"
    grep -v '^#' "$conf" | sed '/^$/d' | head -n1 >/proc/sys/fs/binfmt_misc/register
  fi
  arch-test arm64 >/dev/null || die "arch-test arm64: the binfmt registration does not run arm64 binaries"
}

# ---- the guest image ------------------------------------------------------------------
# Everything that goes into the cached image; its hash names the cache entry.
guest_packages() {
  local karch=$1
  # libpam-systemd: logins register logind sessions (the profiles' logind source); kbd: chvt.
  echo "systemd,systemd-sysv,libpam-systemd,dbus,dbus-broker,udev,kmod,kbd,initramfs-tools,linux-image-cloud-$karch,curl,ca-certificates,apt,procps"
}

# The runner unit: mounts the product disk and runs its guest.sh, once per boot.
RUNNER_UNIT='[Unit]
Description=uid2d VM test runner (scripts/test-vm.sh)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=/bin/sh -c "mkdir -p /mnt/product && mount -o ro /dev/vdb /mnt/product && exec /bin/bash /mnt/product/guest.sh"
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target'

NETWORK_FILE='[Match]
Name=en*

[Network]
DHCP=ipv4'

build_image() {
  local arch=$1 karch=$2 dir=$3
  local pkgs
  pkgs=$(guest_packages "$karch")
  local tmp
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" RETURN
  log "mmdebstrap $SUITE $karch (first run only; cached in $dir)"
  # shellcheck disable=SC2016 # $1 is the rootfs, expanded by mmdebstrap's hook shell
  local hooks=(
    # A small initramfs: only the modules to find an ext4 root on virtio-blk.
    --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && echo MODULES=list >"$1/etc/initramfs-tools/conf.d/uid2d-vm" && printf "%s\n" virtio_pci virtio_mmio virtio_blk ext4 >>"$1/etc/initramfs-tools/modules"'
    --customize-hook='echo uid2d-vm >"$1/etc/hostname" && echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" >"$1/etc/fstab"'
    --customize-hook="printf '%s\n' '$NETWORK_FILE' >\"\$1/etc/systemd/network/10-en.network\""
    --customize-hook="printf '%s\n' '$RUNNER_UNIT' >\"\$1/etc/systemd/system/uid2d-vm-test.service\""
    --customize-hook='chroot "$1" systemctl enable systemd-networkd.service uid2d-vm-test.service'
    # dbus-daemon is the system bus (Debian's default); dbus-broker's postinst made itself
    # dbus.service: undo that. guest.sh enables dbus-broker for the last boot.
    --customize-hook='chroot "$1" systemctl disable dbus-broker.service && chroot "$1" systemctl --global disable dbus-broker.service'
    # Nothing else competes for the CPU under TCG; the serial consoles are ours.
    --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer serial-getty@ttyS0.service serial-getty@ttyS1.service serial-getty@ttyAMA0.service getty@tty1.service'
    --customize-hook='mkdir -p "$1/var/lib/uid2d-vm" && cp -L "$1"/boot/vmlinuz-* "$1/var/lib/uid2d-vm/vmlinuz" && cp -L "$1"/boot/initrd.img-* "$1/var/lib/uid2d-vm/initrd.img"'
  )
  mmdebstrap --variant=minbase --architectures="$karch" --include="$pkgs" \
    --components=main "${hooks[@]}" "$SUITE" "$tmp/rootfs.tar" "$MIRROR" >"$tmp/mmdebstrap.log" 2>&1 ||
    { tail -n 30 "$tmp/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
  log "rootfs.tar $(du -m "$tmp/rootfs.tar" | cut -f1) MiB → ext4"
  mkdir "$tmp/root"
  tar -C "$tmp/root" -xf "$tmp/rootfs.tar"
  mkdir -p "$dir.new"
  cp "$tmp/root/var/lib/uid2d-vm/vmlinuz" "$tmp/root/var/lib/uid2d-vm/initrd.img" "$dir.new/"
  mkfs.ext4 -q -F -L uid2d-root -d "$tmp/root" "$dir.new/root.img" 3G
  rm -rf "$dir"
  mv "$dir.new" "$dir"
  # Images of an older recipe for this architecture are never used again.
  local old
  for old in "$CACHE/$arch"-*; do
    [ "$old" = "$dir" ] || { echo "== removing the outdated image $old"; rm -rf "$old"; }
  done
  log "image ready: $dir"
}

image_for() {
  local arch=$1 karch=$2
  local key
  key=$(printf '%s\n' "$SUITE" "$karch" "$(guest_packages "$karch")" "$RUNNER_UNIT" "$NETWORK_FILE" \
    "$(declare -f build_image)" | sha256sum | cut -c1-12)
  local dir=$CACHE/$arch-$key
  if [ -f "$dir/root.img" ]; then
    echo "== cached image $dir" >&2
  else
    build_image "$arch" "$karch" "$dir" >&2
  fi
  echo "$dir"
}

# ---- the product ----------------------------------------------------------------------
# cargo-deb >= 3.8 as scripts/check-deb.sh installs it (that runs first in scripts/test.sh).
need_cargo_deb() {
  local have
  have=$(cargo deb --version 2>/dev/null | sed -n 's/^cargo-deb \([0-9][0-9.]*\).*/\1/p' || true)
  if [ -z "$have" ] || [ "$(printf '%s\n' "$have" 3.8.0 | sort -V | head -n1)" != 3.8.0 ]; then
    log "cargo install --locked cargo-deb --version '^3.8' (found: ${have:-none})" >&2
    cargo install --locked cargo-deb --version '^3.8' >&2
  fi
}
# The .deb for the guest's architecture.
build_deb() {
  local arch=$1 target_args=() bin_dir=target/release
  if [ "$arch" = arm64 ]; then
    target_args=(--target aarch64-unknown-linux-gnu)
    bin_dir=target/aarch64-unknown-linux-gnu/release
  fi
  need_cargo_deb
  if [ "$arch" = arm64 ]; then
    # The cross build (cross toolchain, rustup target, the linker settings of
    # cross/targets.toml), in the release profile cargo-deb packages.
    log "cross/build.sh aarch64-unknown-linux-gnu --profile release" >&2
    cross/build.sh aarch64-unknown-linux-gnu --profile release >&2
  else
    log "cargo build --release" >&2
    # The build `cargo deb` itself would make (and scripts/check-deb.sh reuses).
    cargo build --locked --release >&2
  fi
  local out
  out=$(cargo deb --locked --no-build "${target_args[@]}" 2>/dev/null | tail -n1)
  [ -f "$out" ] || die "cargo deb --no-build did not name a .deb ($out)"
  [ -x "$bin_dir/uid2d" ] || die "no $bin_dir/uid2d"
  echo "$out"
}

# ---- one guest run ------------------------------------------------------------------
run_guest() {
  local arch=$1 karch qemu machine console result_tty accel=tcg
  case $arch in
    x86_64)
      karch=amd64 qemu=qemu-system-x86_64 machine=(-machine q35) console=ttyS0 result_tty=/dev/ttyS1
      install_qemu qemu-system-x86 qemu-utils seabios mmdebstrap e2fsprogs python3
      ;;
    arm64)
      karch=arm64 qemu=qemu-system-aarch64 console=ttyAMA0 result_tty=/dev/hvc0
      machine=(-machine virt -cpu max -bios /usr/share/qemu-efi-aarch64/QEMU_EFI.fd)
      install_qemu qemu-system-arm qemu-utils qemu-efi-aarch64 mmdebstrap e2fsprogs arch-test qemu-user-static python3
      register_binfmt
      ;;
    *) die "unknown architecture $arch (x86_64, arm64 or all)" ;;
  esac
  # TCG unless UID2D_VM_ACCEL=kvm: on the 2-core CI machines /dev/kvm exists and opens,
  # but the nested KVM stops the guest kernel with "KVM internal error ... emulation failure".
  accel=${UID2D_VM_ACCEL:-tcg}
  local img deb
  img=$(image_for "$arch" "$karch")
  deb=$(build_deb "$arch")
  [ -x target/release/uid2-operator-sim ] || cargo build --locked --release -p uid2-operator-sim >&2

  local run
  run=$(mktemp -d "${TMPDIR:-/tmp}/uid2d-vm.XXXXXX")
  # The simulator: loopback only; the guest reaches it as 10.0.2.2. Short lifetimes: a
  # refresh is due 15 s after minting, the identity lives 1 h, its refresh token 2 days.
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  target/release/uid2-operator-sim --listen "127.0.0.1:$port" --san 10.0.2.2 --ca-out "$run/ca.pem" \
    --refresh-after 15 --identity-lifetime 3600 --refresh-lifetime 172800 >"$run/sim.log" 2>&1 &
  local sim_pid=$!
  # shellcheck disable=SC2064
  trap "kill $sim_pid 2>/dev/null; [ -n \"\${UID2D_VM_KEEP:-}\" ] || rm -rf '$run'" EXIT
  for _ in $(seq 100); do [ -s "$run/ca.pem" ] && break; sleep 0.1; done
  [ -s "$run/ca.pem" ] || die "the operator simulator did not start: $(cat "$run/sim.log")"

  # The product disk: the .deb, the checks, the CA, where to find the operator.
  mkdir "$run/product"
  cp "$deb" "$run/product/uid2d.deb"
  cp scripts/vm/guest.sh "$run/ca.pem" "$run/product/"
  # The simulator prints its settings once it listens (the last line is api_secret=).
  for _ in $(seq 100); do grep -q '^api_secret=' "$run/sim.log" && break; sleep 0.1; done
  local sub key
  sub=$(sed -n 's/^cstg_subscription_id=//p' "$run/sim.log")
  key=$(sed -n 's/^cstg_public_key=//p' "$run/sim.log")
  if [ -z "$sub" ] || [ -z "$key" ]; then die "no CSTG settings in the simulator's output"; fi
  printf 'OPERATOR=https://10.0.2.2:%s\nRESULT_TTY=%s\nCSTG_SUBSCRIPTION_ID=%s\nCSTG_PUBLIC_KEY=%s\n' \
    "$port" "$result_tty" "$sub" "$key" >"$run/product/env"
  mkfs.ext4 -q -F -d "$run/product" "$run/product.img" 64M >/dev/null
  # Boot the cached image through a throw-away overlay: every run starts from the same image.
  qemu-img create -q -f qcow2 -F raw -b "$img/root.img" "$run/overlay.qcow2"

  local serial=()
  if [ "$arch" = x86_64 ]; then
    serial=(-serial "file:$run/console.log" -serial "file:$run/results.log")
  else
    # shellcheck disable=SC2054 # qemu's option values, not array elements
    serial=(-serial "file:$run/console.log" -device virtio-serial-device
      -chardev "file,id=results,path=$run/results.log" -device virtconsole,chardev=results)
  fi
  log "booting $arch ($accel) with $(basename "$deb"); console: $run/console.log"
  local boot_start=$SECONDS rc=0
  # qemu's user-mode network: the guest reaches the host's loopback as 10.0.2.2 (the
  # simulator), and nothing in the guest is pointed anywhere else (the .deb's
  # dependencies are all in the image, so apt downloads nothing). restrict=on cannot be
  # used: its guestfwd may not take 10.0.2.2.
  timeout --foreground "$GUEST_TIMEOUT" "$qemu" "${machine[@]}" -accel "$accel" -smp 2 -m 1024 -nographic \
    -monitor none -nodefaults -no-user-config \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
    -append "root=/dev/vda rw console=$console quiet systemd.show_status=0 systemd.getty_auto=0 fsck.mode=skip" \
    -drive "file=$run/overlay.qcow2,if=virtio,format=qcow2" \
    -drive "file=$run/product.img,if=virtio,format=raw,readonly=on" \
    -netdev user,id=n0 \
    -device virtio-net-pci,netdev=n0 -device virtio-rng-pci \
    "${serial[@]}" </dev/null >"$run/qemu.log" 2>&1 || rc=$?
  local guest_s=$((SECONDS - boot_start))
  touch "$run/results.log" "$run/console.log"
  sed 's/\r$//' "$run/results.log" | grep -E '^(PASS|FAIL|INFO|GUEST-DONE)' | sed "s/^/[$arch] /" || true
  local passed failed
  passed=$(grep -c '^PASS ' "$run/results.log" || true)
  failed=$(grep -c '^FAIL ' "$run/results.log" || true)
  if ! grep -q '^GUEST-DONE' "$run/results.log"; then
    echo "[$arch] FAIL guest_finished: qemu exit $rc after $guest_s s; last console lines:"
    tail -n 40 "$run/console.log" | sed "s/^/[$arch] console: /"
    cat "$run/qemu.log"
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
    echo "[$arch] PASS guest_finished ($guest_s s for the three boots)"
  fi
  kill "$sim_pid" 2>/dev/null || true
  wait "$sim_pid" 2>/dev/null || true
  if [ "$failed" -gt 0 ] && [ -n "${UID2D_VM_KEEP:-}" ]; then
    echo "[$arch] kept $run (UID2D_VM_KEEP)"
  else
    rm -rf "$run"
  fi
  trap - EXIT
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
}

TOTAL_PASSED=0
TOTAL_FAILED=0
case ${1:-x86_64} in
  all) arches=(x86_64 arm64) ;;
  *) arches=("${1:-x86_64}") ;;
esac
for a in "${arches[@]}"; do
  run_guest "$a"
done
log "done"
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ]
