#!/usr/bin/env bash
# Runs the README's session as printed: starts scripts/run.sh in the background, waits
# for it to say that uid2d serves, then runs every `$ ` command of the block between
# `<!-- session:begin -->` and `<!-- session:end -->` in README.md, one after the other in
# one bash from the repository's root (so `source target/run/env` carries over).
#
#   scripts/test-readme.sh [--refresh-after SECS]   (default 20, passed to scripts/run.sh)
#
# Each command is one test. It passes when
#   - its exit status is 0, or non-zero when its printed output is an error line
#     (`uid2ctl: …`), and
#   - its output (stdout and stderr) equals the lines printed under it, where a line
#     holding `…` (a token, cut) only has to be there, non-empty.
# A shorter refresh than run.sh's 60 s keeps the `watch` step short; it is still far
# longer than the two commands between setting the identity and starting to watch.
# Uses target/run like scripts/run.sh (which refuses to start while another serves there).
# Then `uid2ctl doctor` in the same setup must print no FAIL line (one more test).
# The last line printed is "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

refresh_after=20
case "${1:-}" in
  "") ;;
  --refresh-after) refresh_after=${2:?--refresh-after needs a number of seconds} ;;
  *) echo "usage: $0 [--refresh-after SECS]" >&2; exit 2 ;;
esac

passed=0
failed=0
finish() {
  echo "$passed passed, $failed failed"
  exit $((failed > 0 ? 1 : 0))
}
fail_setup() {
  echo "not ok - $*"
  failed=$((failed + 1))
  finish
}

tmp=$(mktemp -d)
run_pid=
stop_run() {
  [ -n "$run_pid" ] || return 0
  # run.sh leads its own process group (setsid): stop it with everything it started.
  kill -TERM -- "-$run_pid" 2>/dev/null || kill -TERM "$run_pid" 2>/dev/null || true
  wait "$run_pid" 2>/dev/null || true
  run_pid=
}
cleanup() {
  stop_run
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# ---- the block -------------------------------------------------------------------
# Commands and expected output as files: cmd.N holds command N, want.N its output.
awk -v dir="$tmp" '
  /^<!-- session:begin -->$/ { inside = 1; next }
  /^<!-- session:end -->$/ { inside = 0; next }
  !inside || /^```/ { next }
  /^\$ / { n++; printf "%s\n", substr($0, 3) > (dir "/cmd." n); printf "" > (dir "/want." n); next }
  n { print > (dir "/want." n) }
  END { print n + 0 > (dir "/count") }
' README.md
count=$(cat "$tmp/count")
[ "$count" -gt 0 ] || fail_setup "README.md has no session block (<!-- session:begin --> … <!-- session:end -->)"
echo "== README.md: $count session commands"

# ---- scripts/run.sh --------------------------------------------------------------
# Its output comes through a FIFO: read up to the line that says uid2d serves (the build
# comes first, so no fixed bound fits: cargo's lines keep coming while it works), then
# keep draining it into run.log.
mkfifo "$tmp/run.out"
setsid scripts/run.sh --refresh-after "$refresh_after" >"$tmp/run.out" 2>&1 &
run_pid=$!
exec 3<"$tmp/run.out"
ready=0
while IFS= read -r -t 900 line <&3; do
  printf '%s\n' "$line" >>"$tmp/run.log"
  case "$line" in
    *"source target/run/env"*) ready=1; break ;;
  esac
done
if [ "$ready" = 0 ]; then
  cat "$tmp/run.log" >&2
  fail_setup "scripts/run.sh did not say that uid2d serves"
fi
cat <&3 >>"$tmp/run.log" &
drain=$!
exec 3<&-
echo "== scripts/run.sh --refresh-after $refresh_after: uid2d serves"

# ---- the session -----------------------------------------------------------------
# One bash runs every command in order and records its output and status. The whole
# session is bounded (the watch step waits for the refresh, ~refresh_after s).
{
  echo 'cd "$1"'
  for i in $(seq "$count"); do
    printf '{\n%s\n} >%q 2>&1 </dev/null\necho $? >%q\n' "$(cat "$tmp/cmd.$i")" "$tmp/got.$i" "$tmp/rc.$i"
  done
} >"$tmp/session.sh"
timeout $((refresh_after * 3 + 120)) bash "$tmp/session.sh" "$PWD" || true

for i in $(seq "$count"); do
  cmd=$(cat "$tmp/cmd.$i")
  if [ ! -f "$tmp/rc.$i" ]; then
    echo "not ok $i - $cmd: did not finish (the session is bounded to $((refresh_after * 3 + 120)) s)"
    failed=$((failed + 1))
    continue
  fi
  rc=$(cat "$tmp/rc.$i")
  problem=
  if head -n1 "$tmp/want.$i" | grep -q '^uid2ctl: '; then
    [ "$rc" -ne 0 ] || problem="exit status 0, but the README prints an error"
  else
    [ "$rc" -eq 0 ] || problem="exit status $rc"
  fi
  if [ -z "$problem" ]; then
    # Equal line by line; a README line with "…" matches any non-empty line.
    if ! awk '
      NR == FNR { want[++n] = $0; next }
      { got[++m] = $0 }
      END {
        if (n != m) exit 1
        for (i = 1; i <= n; i++) {
          if (index(want[i], "…")) { if (got[i] == "") exit 1 }
          else if (want[i] != got[i]) exit 1
        }
      }' "$tmp/want.$i" "$tmp/got.$i"; then
      problem="output differs from the README's"
    fi
  fi
  if [ -z "$problem" ]; then
    echo "ok $i - $cmd"
    passed=$((passed + 1))
  else
    echo "not ok $i - $cmd: $problem"
    echo "  README:"; sed 's/^/    /' "$tmp/want.$i"
    echo "  printed:"; sed 's/^/    /' "$tmp/got.$i"
    failed=$((failed + 1))
  fi
done

# ---- uid2ctl doctor in the same setup -----------------------------------------------
# The README's own setup must not cry wolf: no FAIL line (WARNs are expected here: no
# systemd, a device key generated at this start; and without root the daemon's facts are
# not readable, which is a WARN too).
n=$((count + 1))
if doctor=$(bash -c 'source target/run/env && uid2ctl --bus "$BUS" doctor' 2>&1) &&
  ! grep -q '^FAIL ' <<<"$doctor"; then
  echo "ok $n - uid2ctl doctor in scripts/run.sh's setup: no FAIL"
  passed=$((passed + 1))
else
  echo "not ok $n - uid2ctl doctor in scripts/run.sh's setup: a FAIL"
  sed 's/^/    /' <<<"$doctor"
  failed=$((failed + 1))
fi

stop_run
wait "$drain" 2>/dev/null || true
if [ "$failed" -gt 0 ]; then
  echo "== scripts/run.sh's output (uid2d's log):"
  sed 's/^/  /' "$tmp/run.log"
fi
finish
