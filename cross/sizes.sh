#!/usr/bin/env bash
# Size benchmark (not a test): builds uid2d (the one executable; uid2ctl is a link) with the `dist` profile for every
# shipped target through cross/build.sh and prints a table of stripped sizes, the glibc
# floor (or "static") and the build time. Goal: uid2d for aarch64 <= 2.5 MB.
#
#   cross/sizes.sh [--profile dist|release] [TARGET...]
#
# Without TARGETs: the host, aarch64 gnu, armv7 gnueabihf, aarch64 musl (static) and
# armv7 gnueabihf with a glibc 2.17 floor (cargo-zigbuild). Build logs go to
# target/sizes/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=dist
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:?}"; shift ;;
    --profile=*) profile="${1#--profile=}" ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
host=$(rustc -vV | sed -n 's/^host: //p')
if [ ${#targets[@]} -eq 0 ]; then
  targets=(
    "$host"
    aarch64-unknown-linux-gnu
    armv7-unknown-linux-gnueabihf
    aarch64-unknown-linux-musl
    armv7-unknown-linux-gnueabihf.2.17
  )
fi

logs="${CARGO_TARGET_DIR:-target}/sizes"
mkdir -p "$logs"
rows=()
for target in "${targets[@]}"; do
  log="$logs/$target.log"
  echo "== $target (log: $log)"
  start=$(date +%s)
  if ! cross/build.sh "$target" --profile "$profile" >"$log" 2>&1; then
    echo "   FAILED, last lines of $log:" >&2
    tail -n 20 "$log" >&2
    rows+=("$(printf '%-36s %s' "$target" "build failed")")
    continue
  fi
  secs=$(($(date +%s) - start))
  # build.sh prints, per binary: the path, then "size N bytes, stripped M bytes (X MB)",
  # then the glibc floor or `file` output.
  read -r d_bytes d_mb < <(awk '/\/uid2d$/ { f = 1; next } f && /stripped/ {
      gsub(/[(),]/, ""); print $5, $7; exit }' "$log")
  if grep -q 'statically linked' "$log"; then
    floor="static"
  else
    floor=$(awk '/\/uid2d$/ { f = 1; next } f && /glibc floor:/ { print $3; exit }' "$log")
  fi
  rows+=("$(printf '%-36s %10s %6s  %-12s %5s' "$target" "$d_bytes" "$d_mb" "$floor" "$secs")")
  echo "   uid2d $d_bytes bytes ($d_mb MB), $floor, $secs s"
done

echo
echo "profile: $profile (stripped sizes; MB = 10^6 bytes; build time includes installs)"
printf '%-36s %10s %6s  %-12s %5s\n' target "uid2d B" MB "glibc floor" "s"
printf '%s\n' "${rows[@]}"
