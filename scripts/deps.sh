#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the tool, its test board and its tests
# need, if missing. Rust itself (cargo) must already be installed.
set -euo pipefail
# npm: the build installs the page's xterm.js from the npm registry.
# chromium, chromium-driver: the page's tests drive a real browser.
pkgs=(build-essential pkg-config libffi-dev python3 fuse3 rsync vim-tiny nginx chromium chromium-driver)
need=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
# A Node.js from elsewhere (nodesource) brings its own npm.
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi
