#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the tool, its test board and its tests
# need, if missing. Rust itself (cargo) must already be installed.
set -euo pipefail
pkgs=(build-essential pkg-config libffi-dev python3 fuse3 rsync vim-tiny nginx)
need=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
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
