#!/usr/bin/env bash
# Installs missing Debian/Ubuntu packages, saying which and why, and starts
# no service (Debian's nginx would otherwise serve port 80 at once).
#   scripts/deps.sh                 what the tests need: the tool's packages
#                                   (scripts/install.sh --print-packages) and
#                                   the tests' own
#   scripts/deps.sh WHY PKG...      these, for WHY
#   scripts/deps.sh --lean WHY PKG...  the same, without recommended packages
#   scripts/deps.sh --test-only     prints the packages only the tests use
# Without root (and without sudo that asks no password) it prints the
# command to run and exits 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# nginx: the TLS proxy tests; chromium, chromium-driver: the page's tests
# drive a real browser; rsync and vim-tiny: tools the mount tests run;
# zsh and fish: their completions are tested in the real shells.
test_only=(nginx chromium chromium-driver rsync vim-tiny zsh fish)
if [ "${1:-}" = --test-only ]; then
  printf '%s\n' "${test_only[@]}"
  exit 0
fi
if [ $# -eq 0 ]; then
  mapfile -t tool < <("$here/install.sh" --print-packages)
  exec "$here/deps.sh" "for the tests" "${tool[@]}" "${test_only[@]}"
fi
extra=()
if [ "$1" = --lean ]; then
  extra=(--no-install-recommends)
  shift
fi
why=$1
shift
need=()
for p in "$@"; do
  case "$p" in
    # A Node.js from elsewhere (nodesource) brings its own npm.
    npm) command -v npm >/dev/null && continue ;;
    *) dpkg -s "$p" >/dev/null 2>&1 && continue ;;
  esac
  need+=("$p")
done
[ ${#need[@]} -gt 0 ] || exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! sudo -n true 2>/dev/null; then
    echo "Missing ${need[*]} ($why). Install them, then run this again:" >&2
    echo "  sudo apt-get install -y ${extra[*]}${extra[*]:+ }${need[*]}" >&2
    exit 1
  fi
  sudo="sudo -n"
fi
echo "Installing ${need[*]} ($why)" >&2
# policy-rc.d saying 101 keeps the packages' scripts from starting services.
policy=/usr/sbin/policy-rc.d
if [ ! -e $policy ]; then
  $sudo sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy"
  trap '$sudo rm -f $policy' EXIT
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${extra[@]}" "${need[@]}" >&2
for p in "${need[@]}"; do
  if [ "$p" = nginx ]; then
    # Nor at the next boot: the tests start their own nginx on their own ports.
    if [ -d /run/systemd/system ]; then
      $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
    else
      $sudo update-rc.d nginx disable >/dev/null 2>&1 || true
      $sudo service nginx stop >/dev/null 2>&1 || true
    fi
  fi
done
