#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time and prints, per target, execs,
# exec/s, time, corpus size and whether a crash was found. Exits non-zero on a crash.
# Needs the nightly toolchain (libFuzzer and ASan need -Z flags); installs cargo-fuzz
# when missing. Not part of CI's test run: a crash found here becomes a regression test
# in the crate.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
#   FUZZ_TARGETS="dii config" scripts/fuzz.sh 10
#
# Corpora grow in fuzz/corpus/<target>/ (seeded from shared/fixtures/uid2 on each run),
# crashes land in fuzz/artifacts/<target>/, logs in fuzz/target/fuzz-logs/.
set -euo pipefail

secs=${1:-60}
[[ $secs =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fixtures=${UID2_FIXTURES:-$root/tests/fixtures/uid2}
targets=${FUZZ_TARGETS:-identity_json envelope state_file config dii server_key}

if ! command -v rustup >/dev/null || ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz.sh: no nightly toolchain: cargo-fuzz needs one (rustup toolchain install nightly)." >&2
  echo "fuzz.sh: fuzzing is not part of CI's test run; nothing was fuzzed." >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
# The fuzz crate is its own workspace: start it from the daemon's lock file so that it
# fuzzes the dependency versions the daemon ships.
[[ -f fuzz/Cargo.lock ]] || cp Cargo.lock fuzz/Cargo.lock

# --- seed corpora (libFuzzer keeps what it adds; re-copying a seed is harmless) ---
seed() { mkdir -p "fuzz/corpus/$1"; cat >"fuzz/corpus/$1/seed-$2"; }
# The string values of a key in a fixture (no JSON unescaping: seeds need not be exact).
json_str() { { grep -o "\"$1\": *\"[^\"]*\"" "$2" || true; } | sed 's/.*"\([^"]*\)"$/\1/'; }
if [[ -d $fixtures ]]; then
  for f in "$fixtures"/android/*.json "$fixtures"/ios/*.json; do
    seed identity_json "$(basename "$f")" <"$f"
    # envelope, raw mode, 7-byte (invalid) key: the body goes straight to parse_reply.
    { printf '\003AAAAAAA'; cat "$f"; } | seed envelope "reply-$(basename "$f")"
    # envelope, seal mode, 32-byte key, IV, bit to flip: the JSON is the plaintext.
    { printf '\006'; head -c 46 /dev/zero; cat "$f"; } | seed envelope "sealed-$(basename "$f")"
  done
  # envelope, raw mode, 32-byte key: real operator responses with the key that opens them.
  for pair in success:success optout:optout; do
    key=$(json_str refresh_response_key "$fixtures/ios/generate-token-200-${pair%%:*}.json")
    { printf '\002'; printf %s "$key" | base64 -d; cat "$fixtures/ios/refresh-token-200-${pair#*:}-encrypted.txt"; } |
      seed envelope "refresh-${pair#*:}"
  done
  n=0
  while IFS= read -r value; do
    n=$((n + 1)); printf %s "$value" | seed dii "$n"
  done < <(json_str input "$fixtures/derived/derived-normalization-hash-vectors.json")
  n=0
  while IFS= read -r value; do
    n=$((n + 1)); printf %s "$value" | seed server_key "$n"
  done < <(json_str public_key "$fixtures/operator/client_side_keypairs.json"
           json_str server_public_key_string "$fixtures/derived/derived-cstg-vector.json")
else
  echo "fuzz.sh: no fixtures at $fixtures; starting from empty corpora" >&2
fi
seed config dist <dist/uid2d.toml
# state_file: a sealed (mode 1) record and a raw torn header.
{ printf '\001'; head -c 14 /dev/zero; printf '{"version":1,"status":"no_identity","auto_refresh":true}'; } |
  seed state_file sealed
printf '\000UID2D\000\001' | seed state_file torn

# state_file reuses one temp dir per process; tmpfs keeps its fsyncs cheap.
tmp=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "fuzz.sh: building the targets (nightly, ASan; the first build takes minutes)"
cargo +nightly fuzz build

logs=fuzz/target/fuzz-logs
mkdir -p "$logs"
failed=0
printf '%-14s %12s %9s %7s %8s  %s\n' target execs exec/s time corpus result
for target in $targets; do
  log=$logs/$target.log
  start=$(date +%s)
  # -timeout / -rss_limit_mb: a slow input or a runaway allocation counts as a crash.
  status=0
  TMPDIR=$tmp cargo +nightly fuzz run "$target" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  wall=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
  if [[ $status -eq 0 ]]; then
    result="no crash"
  else
    failed=1
    artifact=$(grep -o 'fuzz/artifacts/[^ ]*' "$log" | tail -1 || true)
    result="CRASH (exit $status) ${artifact:-see $log}"
  fi
  printf '%-14s %12s %9s %6ss %8s  %s\n' "$target" "${execs:-?}" "${rate:-?}" "${took:-$wall}" "$corpus" "$result"
done
if [[ $failed -ne 0 ]]; then
  echo "fuzz.sh: crash found; reproduce with: cargo +nightly fuzz run <target> <artifact>" >&2
  exit 1
fi
