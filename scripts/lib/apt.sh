# shellcheck shell=bash
# Debian packages for the shell scripts, installed without upgrading what is installed.
# Source this file, then:
#
#   apt_missing PKG…   prints (space-separated) those of PKG… that are not installed
#   apt_install PKG…   installs those of PKG… that are not installed; as root only, else
#                      names them and returns 1. Nothing is installed when all are there.
#
# How: `--no-install-recommends --no-upgrade`, and a temporary apt preferences file that
# pins every installed source package to its installed version (priority 990: preferred,
# never a downgrade). So a new -dev package comes in the version of the library already
# installed: libsystemd-dev at the installed libsystemd0's version instead of a newer
# one that would drag systemd, libsystemd0 and libudev1 up with it. When the archive no
# longer has that version, the pinned install cannot be solved: then the plain install
# runs, after a line that names every installed package it upgrades.
# The package lists are fetched (apt-get update) only when they are missing or the
# install cannot be planned with them.

apt_missing() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
  done
  echo "${missing[*]}"
}

apt_install() {
  local want
  read -r -a want <<<"$(apt_missing "$@")"
  [ ${#want[@]} -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing Debian packages: ${want[*]} (run as root on Debian, or install them)" >&2
    return 1
  fi
  (
    # One apt at a time, also across scripts running side by side.
    flock 9
    export DEBIAN_FRONTEND=noninteractive
    local opts=(-y -qq --no-install-recommends --no-upgrade -o DPkg::Lock::Timeout=300)
    local prefs
    prefs=$(mktemp)
    trap 'rm -f "$prefs"' EXIT
    { [ -f /etc/apt/preferences ] && cat /etc/apt/preferences && echo; } >"$prefs" || true
    dpkg-query -W -f='${db:Status-Abbrev}|${source:Package}|${Version}\n' |
      awk -F'|' '$1 ~ /^ii/ { print $2 "|" $3 }' | sort -u |
      awk -F'|' '{ printf "Package: src:%s\nPin: version %s\nPin-Priority: 990\n\n", $1, $2 }' >>"$prefs"
    local pinned=(-o "Dir::Etc::Preferences=$prefs")
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null ||
      ! apt-get -s "${opts[@]}" install "${want[@]}" >/dev/null 2>&1; then
      apt-get -qq -o DPkg::Lock::Timeout=300 update
    fi
    if apt-get -s "${opts[@]}" "${pinned[@]}" install "${want[@]}" >/dev/null 2>&1; then
      echo "== apt-get install ${want[*]} (no installed package upgraded)"
      apt-get "${opts[@]}" "${pinned[@]}" install "${want[@]}" >/dev/null
    else
      local upgrades
      upgrades=$(apt-get -s "${opts[@]}" install "${want[@]}" 2>/dev/null |
        sed -n 's/^Inst \([^ ]*\) \[\([^]]*\)\] (\([^ ]*\).*/\1 \2 -> \3/p' | paste -sd, -)
      echo "== apt-get install ${want[*]}: the archive has no version matching the installed" \
        "libraries, so this also upgrades: ${upgrades:-nothing}"
      apt-get "${opts[@]}" install "${want[@]}" >/dev/null
    fi
  ) 9>"${TMPDIR:-/tmp}/uid2d-apt.lock"
}
