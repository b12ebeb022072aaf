#!/bin/bash
# `test && pass || fail` is if-then-else here: pass only prints.
# shellcheck disable=SC2015
# SPDX-License-Identifier: Apache-2.0
#
# Runs inside the test guest of scripts/test-vm.sh, as root, from the image's
# uid2d-vm-test.service, with the product disk mounted read-only at /mnt/product (this
# file, uid2d.deb, ca.pem, env). Boot 1 (dbus-daemon as the system bus) installs the .deb
# and checks it as a device integrator would, then reboots; boot 2 checks what survived,
# reset-all, the app scope by systemd unit and the broker, then switches the system bus to
# dbus-broker and reboots with the clock before the release date and no NTP; boot 3 checks
# that an identity is kept until the clock is trusted, runs the bus checks again on
# dbus-broker ("dbus-broker: " names), scans the journal of all boots for secrets, turns
# profiles on with the logind source and switches two seat0 sessions, purges the package
# and powers off. One line per check on $RESULT_TTY: "PASS name" or
# "FAIL name: why"; "INFO …" lines are context; "GUEST-DONE" ends.
set -uo pipefail
P=/mnt/product
# shellcheck source=/dev/null
. "$P/env" # OPERATOR (https://10.0.2.2:PORT), RESULT_TTY, CSTG_SUBSCRIPTION_ID, CSTG_PUBLIC_KEY
STATE=/var/lib/uid2d-vm
mkdir -p "$STATE"
phase=$(cat "$STATE/phase" 2>/dev/null || echo 1)

out() {
  echo "$*" >"$RESULT_TTY"
  echo "$*"
}
# PFX names the bus for checks run again on dbus-broker.
PFX=""
pass() { out "PASS $PFX$1"; }
fail() { out "FAIL $PFX$1: ${*:2}"; }
info() { out "INFO $*"; }
# check NAME CMD…: PASS when CMD succeeds; else FAIL with its output.
check() {
  local name=$1 o
  shift
  if o=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(echo "$o" | tail -n 3 | tr '\n' ' ')"; fi
}
# as USER CMD…: a command as a non-root user, with no session of its own.
as() {
  local u=$1
  shift
  runuser -u "$u" -- "$@"
}
# wait_for SECS CMD…: retries CMD each half second until it succeeds or SECS pass.
wait_for() {
  local end=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.5
  done
}
prop() { systemctl show -p "$1" --value uid2d.service; }
# A fresh identity for EMAIL from the test operator on the host.
fetch_identity() {
  curl -fsS --cacert "$P/ca.pem" "$OPERATOR/sim/identity?email=${1/@/%40}"
}
sim_fault() {
  curl -fsS -X POST --cacert "$P/ca.pem" "$OPERATOR/sim/fault?endpoint=$1&fault=$2&count=${3:-1}" >/dev/null
}
# json_str KEY FILE…: the string values of KEY in JSON files (flat enough for grep).
json_str() {
  local k=$1
  shift
  grep -oh "\"$k\" *: *\"[^\"]*\"" "$@" | sed 's/.*: *"\(.*\)"$/\1/'
}
serving() { [ "$(as app1 uid2ctl status)" != "" ]; }
is_status() { # USER STATUS…: the user's status is one of STATUS…
  local s u=$1
  shift
  s=$(as "$u" uid2ctl status 2>/dev/null) || return 1
  local w
  for w in "$@"; do [ "$s" = "$w" ] && return 0; done
  return 1
}
main_pid() { prop MainPID; }
# The system bus in use: dbus-daemon (dbus.service) or dbus-broker (its alias).
bus_impl() {
  case $(systemctl show -p Id --value dbus.service) in
    dbus-broker.service) echo "dbus-broker $(dpkg-query -W -f='${Version}' dbus-broker)" ;;
    *) echo "dbus-daemon $(dpkg-query -W -f='${Version}' dbus)" ;;
  esac
}
stat_of() { uid2ctl stats 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'; }
# Every advertising and refresh token in the JSON files FILE… joins the list of secrets
# that must never reach the journal.
record_secrets() {
  { json_str advertising_token "$@"; json_str refresh_token "$@"; } >>"$STATE/secrets" 2>/dev/null
}

systemctl is-system-running --wait >/dev/null 2>&1
info "boot $phase: $(systemctl is-system-running 2>&1), up $(cut -d' ' -f1 /proc/uptime) s," \
  "kernel $(uname -r), $(systemctl --version | head -n1), system bus $(bus_impl)," \
  "clock $(date -u '+%F %T') UTC"

# ---- only uid2d speaks as uid2d ----------------------------------------------------
# app1 listens as loosely as a client can (dbus-monitor, which falls back to plain match
# rules: every signal of uid2d's and the gateway's interfaces, from any sender); app2
# sends each of them broadcast and to app1's connection, then a harmless signal to it.
# Each dbus-send has flushed before the next one connects, so that last one arrives after
# the bus has judged the others. uid2d's own signal still reaching app1 through the same
# policy is automatic_refresh.
spoof_checks() {
  local mon=/tmp/spoof-monitor.log me m dest o
  local app1_uid
  app1_uid=$(id -u app1)
  setpriv --reuid="$app1_uid" --regid="$(id -g app1)" --init-groups stdbuf -oL dbus-monitor --system \
    "type='signal',interface='com.uid2.Manager1'" "type='signal',interface='com.uid2.Broker1'" \
    "type='signal',interface='com.uid2.Diagnostics1'" "type='signal',interface='com.uid2.Gateway1'" \
    "type='signal',interface='com.uid2.Privacy1'" \
    "type='signal',interface='com.example.Probe'" >"$mon" 2>&1 &
  m=$!
  # Its first message is the bus's NameAcquired with its unique name.
  if ! wait_for 10 grep -q '^ *string ":' "$mon"; then
    fail "policy_denies_spoofed_broadcast_signals" "dbus-monitor as app1: $(tail -n 2 "$mon" | tr '\n' ' ')"
    fail "policy_denies_spoofed_signals_to_an_app" "no monitor"
    kill "$m" 2>/dev/null
    return
  fi
  me=$(sed -n 's/^ *string "\(:[0-9.]*\)"$/\1/p' "$mon" | head -n 1)
  spoof() { as app2 dbus-send --system --type=signal "$@"; }
  for dest in "" "--dest=$me"; do
    set -- ${dest:+"$dest"}
    spoof "$@" /com/uid2/Manager com.uid2.Manager1.IdentityStatusChanged string:opt_out
    spoof "$@" /com/uid2/Manager com.uid2.Manager1.LimitAdTrackingChanged boolean:true
    spoof "$@" /com/uid2/Manager com.uid2.Broker1.IdentityStatusChanged string:com.example.news string:opt_out
    spoof "$@" /com/uid2/Manager com.uid2.Diagnostics1.Spoofed
    spoof "$@" /com/uid2/Manager com.uid2.Privacy1.TrackingAuthorizationRequested string:com.example.news
    spoof "$@" /com/uid2/Gateway com.uid2.Gateway1.Spoofed
  done
  spoof --dest="$me" /com/example/Probe com.example.Probe.Done
  if wait_for 10 grep -q 'member=Done' "$mon"; then
    o=$(grep 'interface=com\.uid2\.' "$mon" | grep 'destination=(null' | sed 's/.*interface=//')
    [ -z "$o" ] && pass "policy_denies_spoofed_broadcast_signals" ||
      fail "policy_denies_spoofed_broadcast_signals" "app1 got $(echo "$o" | tr '\n' ' ')"
    o=$(grep 'interface=com\.uid2\.' "$mon" | grep -v 'destination=(null' | sed 's/.*interface=//')
    [ -z "$o" ] && pass "policy_denies_spoofed_signals_to_an_app" ||
      fail "policy_denies_spoofed_signals_to_an_app" "app1 got $(echo "$o" | tr '\n' ' ')"
  else
    fail "policy_denies_spoofed_broadcast_signals" "app2's last signal never came"
    fail "policy_denies_spoofed_signals_to_an_app" "app2's last signal never came"
  fi
  kill "$m" 2>/dev/null
  wait "$m" 2>/dev/null
}

# ---- the bus checks: run on dbus-daemon (boot 1) and again on dbus-broker (boot 3) ---
bus_checks() {
  local s t2 o a tok tok2
  # ---- an app over the system bus, with the shipped policy -----------------------
  if fetch_identity app1@example.com >/tmp/app1.json; then
    chmod 0644 /tmp/app1.json
    pass "operator_reachable_at_10.0.2.2"
  else
    fail "operator_reachable_at_10.0.2.2" "curl $OPERATOR failed"
  fi
  s=$(as app1 uid2ctl set /tmp/app1.json 2>&1)
  [ "$s" = established ] && pass "app_set_identity" || fail "app_set_identity" "$s"
  tok=$(as app1 uid2ctl token 2>&1)
  [ -n "$tok" ] && [ "$tok" = "$(json_str advertising_token /tmp/app1.json)" ] &&
    pass "app_gets_token" || fail "app_gets_token" "token '${tok:0:12}…'"
  # refresh_from is seconds after minting (the simulator runs with short lifetimes).
  if o=$(as app1 timeout 120 uid2ctl watch --until refreshed 2>&1); then
    tok2=$(as app1 uid2ctl token)
    [ -n "$tok2" ] && [ "$tok2" != "$tok" ] && pass "automatic_refresh" ||
      fail "automatic_refresh" "status refreshed but the token did not change"
  else
    fail "automatic_refresh" "no 'refreshed' within 120 s: $(echo "$o" | tail -n 2 | tr '\n' ' ')"
  fi
  as app1 uid2ctl identity >/tmp/app1.now 2>/dev/null
  record_secrets /tmp/app1.json /tmp/app1.now
  s=$(as app2 uid2ctl status 2>&1) t2=$(as app2 uid2ctl token 2>&1)
  [ "$s" = no_identity ] && [ -z "$t2" ] && pass "other_user_cannot_read_it" ||
    fail "other_user_cannot_read_it" "app2 sees status '$s'"
  ! as app2 test -r /var/lib/uid2d && ! as app2 ls /var/lib/uid2d >/dev/null 2>&1 &&
    pass "other_user_cannot_read_state_dir" || fail "other_user_cannot_read_state_dir" "readable"
  # Denied by the bus policy (not by uid2d): org.freedesktop.DBus.Error.AccessDenied.
  bus_denied() {
    local o
    o=$(as app1 dbus-send --system --print-reply --dest=com.uid2.Manager /com/uid2/Manager "$@" 2>&1)
    [[ $o == *org.freedesktop.DBus.Error.AccessDenied* ]] || { echo "$o"; return 1; }
  }
  check "policy_denies_property_set" bus_denied org.freedesktop.DBus.Properties.Set \
    string:com.uid2.Manager1 string:LimitAdTracking variant:boolean:true
  check "policy_denies_unlisted_member" bus_denied com.uid2.Manager1.Nope
  check "policy_denies_other_interface" bus_denied org.freedesktop.DBus.Debug.Stats.GetStats
  o=$(as app1 dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.RequestName string:com.uid2.Manager uint32:0 2>&1)
  [[ $o == *AccessDenied* ]] && pass "policy_denies_owning_the_name" ||
    fail "policy_denies_owning_the_name" "$o"
  check "policy_allows_peer_ping" as app1 dbus-send --system --print-reply --dest=com.uid2.Manager \
    /com/uid2/Manager org.freedesktop.DBus.Peer.Ping
  spoof_checks
  # Allowed by the bus, refused by uid2d: device-wide calls from an app.
  o=$(as app1 uid2ctl reset-all 2>&1) && fail "app_cannot_reset_all" "succeeded" ||
    { [[ $o == *AccessDenied* ]] && pass "app_cannot_reset_all" || fail "app_cannot_reset_all" "$o"; }
  o=$(as app1 uid2ctl limit-ad-tracking on 2>&1) && fail "app_cannot_set_limit_ad_tracking" "succeeded" ||
    { [[ $o == *AccessDenied* ]] && pass "app_cannot_set_limit_ad_tracking" ||
      fail "app_cannot_set_limit_ad_tracking" "$o"; }

  # ---- D-Bus activation --------------------------------------------------------------
  systemctl stop uid2d.service
  a=$(systemctl is-active uid2d.service)
  s=$(as app1 uid2ctl status 2>&1)
  if [ "$a" != active ] && [[ $s == established || $s == refreshed ]] &&
    [ "$(systemctl is-active uid2d.service)" = active ]; then
    pass "dbus_activation_starts_it"
  else
    fail "dbus_activation_starts_it" "was '$a', call gave '$s', now $(systemctl is-active uid2d.service)"
  fi

  # ---- bus death: uid2d exits with a failure and is restarted ------------------------
  local pid n since r
  pid=$(main_pid) n=$(prop NRestarts)
  since=$(date '+%Y-%m-%d %H:%M:%S')
  systemctl restart dbus.service
  if wait_for 60 sh -c "[ \"\$(systemctl show -p NRestarts --value uid2d)\" -gt $n ] && systemctl is-active -q uid2d" &&
    wait_for 30 serving; then
    r=$(journalctl -u uid2d --since "$since" --no-pager -q -o cat | grep -m1 -E 'status=1|exited' || true)
    info "bus restart: ${r:-no exit line}"
    [ "$(main_pid)" != "$pid" ] && pass "bus_restart_uid2d_restarts_and_serves" ||
      fail "bus_restart_uid2d_restarts_and_serves" "the same process $pid"
  else
    fail "bus_restart_uid2d_restarts_and_serves" "NRestarts $(prop NRestarts), $(systemctl is-active uid2d)"
  fi
}

# journal_has_no_secret NAME: no recorded token anywhere in the journal (every unit, every boot).
journal_has_no_secret() {
  local leaks=0 secret
  journalctl -o json --no-pager >/tmp/journal-all.json
  while read -r secret; do
    [ ${#secret} -ge 16 ] || continue
    grep -qF "$secret" /tmp/journal-all.json && leaks=$((leaks + 1))
  done <"$STATE/secrets"
  info "journal: $(journalctl --list-boots --no-pager | grep -c .) boots kept, $(sort -u "$STATE/secrets" | grep -c .) tokens looked for"
  [ "$leaks" = 0 ] && [ -s "$STATE/secrets" ] && pass "$1" ||
    fail "$1" "$leaks token(s) found (or no secrets recorded)"
}

if [ "$phase" = 1 ]; then
  # ---- install, as an integrator: config drop-ins first, then the package ----------
  mkdir -p /etc/uid2d/uid2d.toml.d /etc/systemd/system/uid2d.service.d
  install -m 0644 "$P/ca.pem" /etc/uid2d/ca.pem
  # rtc = true: this guest's clock comes from qemu's RTC and no NTP runs, so the clock
  # is trusted at boot and identities expire by it (the clock checks need that).
  printf 'rtc = true\n' >/etc/uid2d/uid2d.toml.d/40-vm-rtc.toml
  printf '%s\n' "base_url = \"$OPERATOR\"" 'ca_file = "/etc/uid2d/ca.pem"' '[generate]' \
    "subscription_id = \"$CSTG_SUBSCRIPTION_ID\"" "public_key = \"$CSTG_PUBLIC_KEY\"" \
    'app_name = "com.example.tv"' >/etc/uid2d/uid2d.toml.d/50-vm-test.toml
  # A watchdog the test can wait for (the unit ships 3 min) and a quick restart.
  printf '[Service]\nWatchdogSec=15s\nTimeoutAbortSec=10s\nRestartSec=1s\n' >/etc/systemd/system/uid2d.service.d/50-vm-test.conf
  # A persistent journal, so boot 2 can scan both boots for secrets.
  mkdir -p /var/log/journal && systemd-tmpfiles --create --prefix /var/log/journal && journalctl --flush
  useradd -m app1
  useradd -m app2
  useradd -m app3
  if o=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$P/uid2d.deb" 2>&1); then
    pass "deb_installs_offline"
  else
    fail "deb_installs_offline" "$(echo "$o" | tail -n 5 | tr '\n' ' ')"
  fi

  # ---- the service as systemd runs it ------------------------------------------
  wait_for 60 systemctl is-active uid2d.service
  check "service_active" systemctl is-active uid2d.service
  # Started by the postinst: the bus had the policy (with its uid2d user) loaded by then,
  # so the first start got the name, with no failed start and restart.
  n=$(prop NRestarts) d=$(journalctl -u uid2d --no-pager -q -o cat | grep -c 'not allowed to own')
  [ "$n" = 0 ] && [ "$d" = 0 ] && pass "first_start_after_install_owns_the_name" ||
    fail "first_start_after_install_owns_the_name" "NRestarts=$n, $d refusals of the name in the journal"
  t=$(prop Type) s=$(prop SubState)
  [ "$t" = notify ] && [ "$s" = running ] && pass "notify_ready_reached" ||
    fail "notify_ready_reached" "Type=$t SubState=$s"
  st=$(prop StatusText)
  # (grep -c, not grep -q, after a pipe: with pipefail, grep -q's early exit can fail the writer.)
  if [ -n "$st" ] && systemctl status uid2d.service --no-pager 2>&1 | grep -cF "Status: \"$st\"" >/dev/null; then
    pass "status_text_shown"
    info "StatusText: $st"
  else
    fail "status_text_shown" "StatusText='$st'"
  fi
  sec=$(systemd-analyze security uid2d.service --no-pager 2>&1 | tail -n1)
  score=$(echo "$sec" | grep -o '[0-9]\+\.[0-9]' | head -n1)
  info "systemd-analyze security (live): $sec"
  if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 1.2) }'; then
    pass "security_score_live_le_1.2"
  else
    fail "security_score_live_le_1.2" "$sec"
  fi
  pw=$(getent passwd uid2d || true)
  [[ $pw == uid2d:x:*:*:*:*:/usr/sbin/nologin ]] && pass "sysusers_user_exists" ||
    fail "sysusers_user_exists" "passwd: '$pw'"
  m=$(stat -c '%a %U' /var/lib/uid2d 2>&1)
  [ "$m" = "700 uid2d" ] && pass "state_dir_0700_uid2d" || fail "state_dir_0700_uid2d" "$m"
  [ "$(prop User)" = uid2d ] && [ "$(ps -o user= -p "$(main_pid)")" = uid2d ] &&
    pass "runs_as_uid2d" || fail "runs_as_uid2d" "$(ps -o user=,pid= -p "$(main_pid)")"

  bus_checks

  # ---- watchdog: a stopped daemon is killed and restarted ----------------------------
  pid=$(main_pid) n=$(prop NRestarts)
  kill -STOP "$pid"
  t0=$SECONDS
  if wait_for 60 sh -c "[ \"\$(systemctl show -p NRestarts --value uid2d)\" -gt $n ] && systemctl is-active -q uid2d"; then
    info "watchdog: restarted after $((SECONDS - t0)) s (WatchdogSec=15s)"
    journalctl -u uid2d --no-pager -q | grep -ci 'watchdog timeout' >/dev/null &&
      [ "$(main_pid)" != "$pid" ] && serving && pass "watchdog_restarts_stopped_daemon" ||
      fail "watchdog_restarts_stopped_daemon" "restarted, but no watchdog timeout logged or not serving"
  else
    fail "watchdog_restarts_stopped_daemon" "no restart within 60 s"
    kill -CONT "$pid" 2>/dev/null
  fi

  # ---- clock: a day ahead and back ----------------------------------------------------
  # The simulator's identity lives 1 h and its refresh token 2 days: a day ahead the
  # identity has expired and uid2d refreshes; the simulator mints from the host's clock,
  # a day behind, so the new identity is expired too — that must not become a storm.
  saved=$(date +%s)
  since=$(date '+%Y-%m-%d %H:%M:%S')
  timedatectl set-time "@$((saved + 86400))" 2>/dev/null || date -s "@$((saved + 86400))" >/dev/null
  sleep 30
  s=$(as app1 uid2ctl status 2>&1) tok=$(as app1 uid2ctl token 2>&1)
  n=$(journalctl -u uid2d -o json --no-pager | awk -v t="$((saved + 86400))000000" \
    -F'"__REALTIME_TIMESTAMP":"' '{ split($2, a, "\""); if (a[1] + 0 >= t && $0 ~ /refreshing identity/) c++ } END { print c + 0 }')
  info "a day ahead: status '$s', $n refresh attempts in 30 s"
  [ "$s" = expired ] && [ -z "$tok" ] && pass "clock_day_ahead_expired_no_token" ||
    fail "clock_day_ahead_expired_no_token" "status '$s', token ${tok:+served}"
  # Retries back off with full jitter in windows of 10, 20, 40 s…: four retries fit in
  # 30 s about 2 % of the time (5 attempts, seen once in CI on 2026-12-07), six only when
  # every draw lands in the first fifth of its window (~0.01 %); a storm is one a second.
  [ "$n" -le 6 ] && pass "clock_day_ahead_no_refresh_storm" ||
    fail "clock_day_ahead_no_refresh_storm" "$n refresh attempts in 30 s"
  now=$(date +%s)
  timedatectl set-time "@$((now - 86400))" 2>/dev/null || date -s "@$((now - 86400))" >/dev/null
  if wait_for 30 is_status app1 established refreshed && [ -n "$(as app1 uid2ctl token)" ]; then
    pass "clock_back_valid_again"
  else
    fail "clock_back_valid_again" "status '$(as app1 uid2ctl status 2>&1)'"
  fi
  info "clock now $(date -u '+%F %T') UTC (set from $since)"

  # ---- what must survive a reboot: an identity, an opt-out, the device policy -------
  fetch_identity app2@example.com >/tmp/app2.json && chmod 0644 /tmp/app2.json
  as app2 uid2ctl set /tmp/app2.json >/dev/null
  # Only app2's next refresh may meet the fault: app1 stops refreshing first.
  as app1 uid2ctl auto off >/dev/null
  sim_fault refresh optout 1
  as app2 uid2ctl refresh >/dev/null 2>&1 # (or its automatic refresh met the fault first)
  s=$(as app2 uid2ctl status 2>&1)
  [ "$s" = opt_out ] && pass "optout_from_operator" || fail "optout_from_operator" "$s"
  as app1 uid2ctl auto on >/dev/null
  o=$(uid2ctl limit-ad-tracking on 2>&1) && [ "$(as app1 uid2ctl limit-ad-tracking)" = on ] &&
    pass "root_sets_limit_ad_tracking" || fail "root_sets_limit_ad_tracking" "$o"
  as app1 uid2ctl identity >"$STATE/app1.before" 2>/dev/null
  # The secrets that must never reach the journal.
  record_secrets /tmp/app1.json /tmp/app2.json "$STATE/app1.before"
  echo 2 >"$STATE/phase"
  info "rebooting"
  sync
  systemctl reboot
  exit 0
fi

# ---- boot 2 -------------------------------------------------------------------------
if [ "$phase" = 2 ]; then
  wait_for 60 systemctl is-active uid2d.service
  check "starts_at_boot" systemctl is-active uid2d.service
  s=$(as app1 uid2ctl status 2>&1) id=$(as app1 uid2ctl identity 2>/dev/null)
  [ -n "$id" ] && [[ $s =~ ^(established|refreshed|expired)$ ]] && pass "identity_survives_reboot" ||
    fail "identity_survives_reboot" "status '$s'"
  s=$(as app2 uid2ctl status 2>&1)
  [ "$s" = opt_out ] && pass "optout_survives_reboot" || fail "optout_survives_reboot" "status '$s'"
  s=$(as app1 uid2ctl limit-ad-tracking 2>&1)
  [ "$s" = on ] && pass "limit_ad_tracking_survives_reboot" || fail "limit_ad_tracking_survives_reboot" "'$s'"
  uid2ctl limit-ad-tracking off >/dev/null

  # ---- the journal: structured fields, no secret ----------------------------------------
  journalctl -u uid2d -o json --no-pager >/tmp/journal.json
  # uid2d's own entries carry their level and identifier; those about an identity name its
  # scope; status changes carry STATUS.
  if grep -q '"SCOPE":"uid-' /tmp/journal.json && grep -q '"STATUS":"' /tmp/journal.json &&
    awk '/"SYSLOG_IDENTIFIER":"uid2d"/ && /"PRIORITY":"/ { n++ } END { exit !n }' /tmp/journal.json; then
    pass "journal_structured_fields"
    info "journal: $(grep -c . /tmp/journal.json) entries, fields $(grep -o '"[A-Z_]*":' /tmp/journal.json |
      grep -v '"_\|"__' | sort -u | tr -d '":' | tr '\n' ' ')"
  else
    fail "journal_structured_fields" "no SCOPE/STATUS/PRIORITY field in journalctl -u uid2d -o json"
  fi
  journal_has_no_secret "journal_has_no_secret"

  # ---- ResetAllIdentities as root -----------------------------------------------------------
  o=$(uid2ctl reset-all 2>&1)
  if [ -n "$o" ] && is_status app1 no_identity && is_status app2 no_identity; then
    pass "root_reset_all"
    info "reset-all: $o"
  else
    fail "root_reset_all" "'$o', app1 $(as app1 uid2ctl status 2>&1), app2 $(as app2 uid2ctl status 2>&1)"
  fi

  # ---- scope = "app": the caller's systemd app unit (GetUnitByPID) -------------------------
  # The broker (com.uid2.Broker1): the runtime's user rt1, in [apps] broker_group.
  groupadd -f tvruntime
  id rt1 >/dev/null 2>&1 || useradd -m -G tvruntime rt1
  printf '%s\n' 'scope = "app"' '[apps]' 'broker_group = "tvruntime"' >/etc/uid2d/uid2d.toml.d/60-vm-app.toml
  systemctl restart uid2d.service
  fetch_identity news@example.com >/tmp/news.json && chmod 0644 /tmp/news.json
  in_app() { # APP ID RANDOM CMD…: CMD as app1 in the transient scope app-tv-<ID>-<RANDOM>.scope
    local app=$1 r=$2
    shift 2
    systemd-run --quiet --uid=app1 --scope --unit="app-tv-$app-$r.scope" "$@"
  }
  s=$(in_app com.example.news 1 uid2ctl set /tmp/news.json 2>&1)
  s2=$(in_app com.example.news 2 uid2ctl status 2>&1)
  s3=$(in_app com.example.weather 3 uid2ctl status 2>&1)
  s4=$(as app1 uid2ctl status 2>&1)
  if [ "$s" = established ] && [ "$s2" = established ] && [ "$s3" = no_identity ] && [ "$s4" = no_identity ]; then
    pass "app_scope_by_systemd_unit"
  else
    fail "app_scope_by_systemd_unit" "news set '$s', news again '$s2', weather '$s3', no unit '$s4'"
  fi
  journalctl -u uid2d -o json --no-pager | grep -c '"SCOPE":"[^"]*com.example.news' >/dev/null &&
    pass "app_scope_named_in_journal" || fail "app_scope_named_in_journal" "no SCOPE naming com.example.news"
  # The broker acts for an app: the same identity as the app's own scope; for another app
  # it sets one that app then sees; an app user outside broker_group is refused.
  record_secrets /tmp/news.json
  s=$(as rt1 uid2ctl --app com.example.news status 2>&1) tok=$(as rt1 uid2ctl --app com.example.news token 2>&1)
  tok_app=$(in_app com.example.news 4 uid2ctl token 2>&1)
  [ "$s" = established ] && [ -n "$tok" ] && [ "$tok" = "$tok_app" ] && pass "broker_sees_the_apps_identity" ||
    fail "broker_sees_the_apps_identity" "broker status '$s', same token: $([ "$tok" = "$tok_app" ] && echo yes || echo no)"
  fetch_identity weather@example.com >/tmp/weather.json && chmod 0644 /tmp/weather.json
  record_secrets /tmp/weather.json
  s=$(as rt1 uid2ctl --app com.example.weather set /tmp/weather.json 2>&1)
  s2=$(in_app com.example.weather 5 uid2ctl status 2>&1)
  [ "$s" = established ] && [ "$s2" = established ] && pass "broker_sets_for_an_app" ||
    fail "broker_sets_for_an_app" "broker set '$s', the app sees '$s2'"
  o=$(as app1 uid2ctl --app com.example.news status 2>&1) && fail "broker_denied_outside_group" "succeeded: $o" ||
    { [[ $o == *AccessDenied* ]] && pass "broker_denied_outside_group" || fail "broker_denied_outside_group" "$o"; }
  rm -f /etc/uid2d/uid2d.toml.d/60-vm-app.toml
  systemctl restart uid2d.service

  # ---- for boot 3: a good identity, the clock before the release date, dbus-broker -------
  # app3's identity, not refreshed automatically, so boot 3 can tell it was kept as it was.
  fetch_identity app3@example.com >/tmp/app3.json && chmod 0644 /tmp/app3.json
  as app3 uid2ctl auto off >/dev/null
  s=$(as app3 uid2ctl set /tmp/app3.json 2>&1)
  as app3 uid2ctl token >"$STATE/app3.token" 2>/dev/null
  record_secrets /tmp/app3.json
  [ "$s" = established ] && [ -s "$STATE/app3.token" ] && pass "boot3_prepared_identity" ||
    fail "boot3_prepared_identity" "app3 set: '$s'"
  # A TV without a battery RTC and no NTP: no rtc = true, no systemd-timesyncd in the
  # image, and the clock comes up at 2026-06-01 (before the release date, 2026-11-01),
  # set early in boot before uid2d starts, as a restored saved clock would be.
  rm -f /etc/uid2d/uid2d.toml.d/40-vm-rtc.toml
  systemctl mask -q systemd-timesyncd.service
  printf '%s\n' '[Unit]' 'Description=uid2d VM test: the clock comes up before the release date' \
    'DefaultDependencies=no' 'Before=sysinit.target time-set.target uid2d.service' \
    '[Service]' 'Type=oneshot' 'ExecStart=/bin/date -u -s "2026-06-01 00:00:00"' \
    '[Install]' 'WantedBy=sysinit.target' >/etc/systemd/system/uid2d-vm-early-clock.service
  systemctl enable -q uid2d-vm-early-clock.service
  # dbus-broker as the system bus, as Debian's README.Debian of dbus-broker has it: its
  # enabled unit is dbus.service (an alias); switching takes a reboot.
  o=$(systemctl enable dbus-broker.service 2>&1 && systemctl --global enable dbus-broker.service 2>&1)
  [ "$(readlink /etc/systemd/system/dbus.service)" = /lib/systemd/system/dbus-broker.service ] &&
    [ "$(systemctl is-enabled systemd-timesyncd.service 2>&1)" = masked ] &&
    pass "boot3_prepared_broker_and_clock" || fail "boot3_prepared_broker_and_clock" "$o"
  echo 3 >"$STATE/phase"
  info "rebooting"
  sync
  systemctl reboot
  exit 0
fi

# ---- boot 3: dbus-broker, the clock before the release date, no NTP -----------------------
wait_for 60 systemctl is-active uid2d.service
check "starts_at_boot_on_dbus_broker" systemctl is-active uid2d.service
b=$(systemctl show -p Id --value dbus.service) c=$(ps -o comm= -C dbus-broker | head -n1)
[ "$b" = dbus-broker.service ] && [ "$c" = dbus-broker ] && ! pgrep -x dbus-daemon >/dev/null &&
  pass "system_bus_is_dbus_broker" || fail "system_bus_is_dbus_broker" "dbus.service is '$b', process '$c'"
now=$(date +%s)
tr=$(stat_of clock_trusted)
info "untrusted clock: $(date -u '+%F %T') UTC, clock_trusted $tr, uid2d's status: $(prop StatusText)"
[ "$now" -lt 1793491200 ] && [ "$tr" = false ] && pass "clock_before_release_untrusted" ||
  fail "clock_before_release_untrusted" "clock $(date -u '+%F %T'), clock_trusted '$tr'"
s=$(as app3 uid2ctl status 2>&1) tok=$(as app3 uid2ctl token 2>&1)
[ "$s" = established ] && [ -n "$tok" ] && [ "$tok" = "$(cat "$STATE/app3.token")" ] &&
  pass "untrusted_clock_identity_kept_and_served" ||
  fail "untrusted_clock_identity_kept_and_served" "status '$s', token ${tok:+served but changed}"
o=$(as app3 uid2ctl generate --email app3.generated@example.com 2>&1) &&
  fail "untrusted_clock_generate_refused" "succeeded: $o" ||
  { [[ $o == *"not synchronised"* ]] && pass "untrusted_clock_generate_refused" ||
    fail "untrusted_clock_generate_refused" "$o"; }
# NTP, as systemd-timesyncd does it: the clock is stepped, then the flag file is made.
# The time comes from the host, in the operator's Date header (read unverified, as NTP
# is: at this clock the test CA's certificate is not valid yet).
real=$(curl -ksSI "$OPERATOR/sim/identity" | sed -n 's/^[Dd]ate: \(.*\)\r$/\1/p')
if [ -n "$real" ] && date -s "$real" >/dev/null; then
  mkdir -p /run/systemd/timesync && touch /run/systemd/timesync/synchronized
  trusted() { [ "$(stat_of clock_trusted)" = true ]; }
  if wait_for 10 trusted; then
    pass "ntp_sync_makes_clock_trusted"
  else
    fail "ntp_sync_makes_clock_trusted" "clock_trusted '$(stat_of clock_trusted)' after the step to $real"
  fi
else
  fail "ntp_sync_makes_clock_trusted" "no Date from the operator ('$real')"
fi
s=$(as app3 uid2ctl status 2>&1) tok=$(as app3 uid2ctl token 2>&1)
[ "$s" = established ] && [ "$tok" = "$(cat "$STATE/app3.token")" ] && pass "trusted_clock_identity_still_good" ||
  fail "trusted_clock_identity_still_good" "status '$s'"
s=$(as app3 uid2ctl refresh 2>&1) tok=$(as app3 uid2ctl token 2>&1)
[ "$s" = refreshed ] && [ -n "$tok" ] && [ "$tok" != "$(cat "$STATE/app3.token")" ] &&
  pass "trusted_clock_identity_refreshes" || fail "trusted_clock_identity_refreshes" "'$s'"
as app3 uid2ctl auto on >/dev/null
# A new identity where one is held: "refreshed" (as SetIdentity), with a new token.
s=$(as app3 uid2ctl generate --email app3.generated@example.com 2>&1) tok2=$(as app3 uid2ctl token 2>&1)
as app3 uid2ctl identity >/tmp/app3.now 2>/dev/null
record_secrets /tmp/app3.now
[ "$s" = refreshed ] && [ -n "$tok2" ] && [ "$tok2" != "$tok" ] && pass "trusted_clock_generate_works" ||
  fail "trusted_clock_generate_works" "'$s'"
systemctl disable -q uid2d-vm-early-clock.service

# ---- the bus checks again, on dbus-broker ------------------------------------------------
PFX="dbus-broker: "
bus_checks
PFX=""
journal_has_no_secret "journal_has_no_secret_three_boots"

# ---- profiles, the logind source: seat0's active session names the profile ---------------
# Last, so that no check before sees profiles on. Two logins on seat0, as a TV where each
# person is a Linux user has them: getty autologins of app1 on tty2 and app2 on tty3 (login's
# PAM stack with pam_systemd registers each with systemd-logind); chvt switches between them
# as a VT switch on the TV would, and logind moves seat0's ActiveSession.
for vt in tty2:app1 tty3:app2; do
  mkdir -p "/etc/systemd/system/getty@${vt%%:*}.service.d"
  printf '%s\n' '[Service]' 'ExecStart=' "ExecStart=-/sbin/agetty --autologin ${vt#*:} --noclear %I \$TERM" \
    >"/etc/systemd/system/getty@${vt%%:*}.service.d/50-vm-autologin.conf"
done
systemctl daemon-reload
systemctl start getty@tty2.service getty@tty3.service
# session_of USER TTY: USER's logind session on seat0 at TTY.
session_of() { loginctl list-sessions --no-legend | awk -v u="$1" -v t="$2" '$3 == u && $4 == "seat0" && $5 == t { print $1 }'; }
has_session() { [ -n "$(session_of "$1" "$2")" ]; }
active_profile_is() { [ "$(uid2ctl profile get 2>/dev/null)" = "$1" ]; }
seat_active_is() { [ "$(loginctl show-seat seat0 -p ActiveSession --value)" = "$1" ]; }
# to_vt N USER: the VT switch, then uid2d's active profile must be USER.
to_vt() {
  local s
  s=$(session_of "$2" "tty$1")
  chvt "$1"
  if ! wait_for 15 seat_active_is "$s"; then
    info "chvt $1 did not make $2's session $s seat0's active one: loginctl activate $s"
    loginctl activate "$s"
    wait_for 15 seat_active_is "$s" || { echo "seat0's active session: '$(loginctl show-seat seat0 -p ActiveSession --value)', not $2's $s"; return 1; }
  fi
  wait_for 30 active_profile_is "$2" || { echo "uid2ctl profile get: '$(uid2ctl profile get 2>&1)' after the switch to $2's session"; return 1; }
}
if wait_for 60 has_session app1 tty2 && wait_for 60 has_session app2 tty3; then
  info "logind sessions: $(loginctl list-sessions --no-legend | tr -s ' ' | tr '\n' ';')"
  printf '%s\n' '[profiles]' 'enabled = true' 'source = "logind"' >/etc/uid2d/uid2d.toml.d/70-vm-profiles.toml
  systemctl restart uid2d.service
  wait_for 60 systemctl is-active uid2d.service
  # logind_switches: app1's session, app2's, app1's again; the profile follows each.
  logind_switches() { to_vt 2 app1 && to_vt 3 app2 && to_vt 2 app1; }
  check "profile_follows_logind_active_session" logind_switches
  # An app (app3's scope) sets an identity while app1's session is active: not served while
  # app2's is, served again when app1's is back.
  fetch_identity profile@example.com >/tmp/profile.json && chmod 0644 /tmp/profile.json
  record_secrets /tmp/profile.json
  s1=$(as app3 uid2ctl set /tmp/profile.json 2>&1) tok1=$(as app3 uid2ctl token 2>&1)
  s2=x tok2=x s3=x tok3="" o=""
  if o=$(to_vt 3 app2 2>&1); then
    s2=$(as app3 uid2ctl status 2>&1) tok2=$(as app3 uid2ctl token 2>&1)
    if o=$(to_vt 2 app1 2>&1); then
      s3=$(as app3 uid2ctl status 2>&1) tok3=$(as app3 uid2ctl token 2>&1)
    fi
  fi
  [ "$s1" = established ] && [ -n "$tok1" ] && [ "$s2" = no_identity ] && [ -z "$tok2" ] &&
    [[ $s3 =~ ^(established|refreshed)$ ]] && [ -n "$tok3" ] && pass "identity_is_per_logind_profile" ||
    fail "identity_is_per_logind_profile" "under app1 set '$s1', under app2 '$s2' (token ${tok2:+served}), app1 again '$s3' (token ${tok3:+served}) $o"
  as app3 uid2ctl identity >/tmp/profile.now 2>/dev/null
  record_secrets /tmp/profile.now
else
  fail "profile_follows_logind_active_session" "no logind sessions of app1 on tty2 and app2 on tty3: $(loginctl list-sessions --no-legend 2>&1 | tr '\n' ';')"
  fail "identity_is_per_logind_profile" "no sessions"
fi
rm -f /etc/uid2d/uid2d.toml.d/70-vm-profiles.toml
systemctl stop getty@tty2.service getty@tty3.service
systemctl restart uid2d.service
wait_for 60 systemctl is-active uid2d.service

# ---- apt purge ---------------------------------------------------------------------------
# What the package installed (dpkg -L, less the directories other packages share), the
# enable links and its state.
dpkg -L uid2d | while read -r f; do [ -d "$f" ] && [ ! -L "$f" ] || echo "$f"; done >/tmp/uid2d.files
info "dpkg -L uid2d: $(grep -c . /tmp/uid2d.files) files"
if o=$(DEBIAN_FRONTEND=noninteractive apt-get purge -y -q uid2d 2>&1); then
  left=""
  mapfile -t pkg_files </tmp/uid2d.files
  for f in "${pkg_files[@]}" /usr/bin/uid2d /usr/bin/uid2ctl /usr/lib/systemd/system/uid2d.service \
    /usr/share/dbus-1/system.d/com.uid2.Manager.conf /usr/share/dbus-1/system-services/com.uid2.Manager.service \
    /usr/lib/uid2d /var/lib/uid2d /etc/systemd/system/multi-user.target.wants/uid2d.service \
    /etc/systemd/system/dbus-com.uid2.Manager.service; do
    { [ -e "$f" ] || [ -L "$f" ]; } && left="$left $f"
  done
  a=$(systemctl is-active uid2d.service 2>&1)
  [ -z "$left" ] && [ "$a" != active ] && pass "apt_purge_removes_it" ||
    fail "apt_purge_removes_it" "left:${left:- none}, unit $a"
else
  fail "apt_purge_removes_it" "$(echo "$o" | tail -n 3 | tr '\n' ' ')"
fi
o=$(as app1 dbus-send --system --print-reply --dest=com.uid2.Manager /com/uid2/Manager \
  org.freedesktop.DBus.Peer.Ping 2>&1)
[[ $o == *ServiceUnknown* ]] && pass "purged_name_not_activatable" || fail "purged_name_not_activatable" "$o"

out "GUEST-DONE"
systemctl poweroff
