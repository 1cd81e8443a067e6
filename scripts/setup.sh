#!/usr/bin/env bash
# One-time set-up for tests and the embedded stack on Debian/Ubuntu: installs what is missing,
# then runs every scripts/setup/*.sh (one per component). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export SUDO DEBIAN_FRONTEND=noninteractive

APT_UPDATED=""
apt_install() {
  # apt_install PKG... : install the Debian packages that are not installed yet.
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "setup: need ${missing[*]} but apt-get is not available; install them by hand" >&2
    return 1
  fi
  if [ -z "$APT_UPDATED" ]; then
    echo "setup: apt-get update"
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
export -f apt_install

for script in scripts/setup/*.sh; do
  echo "setup: $(basename "$script")"
  # shellcheck source=/dev/null
  source "$script"
done
echo "setup: done"
