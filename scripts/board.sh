#!/usr/bin/env bash
# Runs a local test board: MicroPython's unix port with WebREPL, behaving like
# an ESP board. Usage: scripts/board.sh [PORT] [PASSWORD] [ROOT_DIR]
# (defaults: 8266, "demo", a fresh directory under /tmp). Ctrl-C stops it.
# BOARD_HEAP sets its Python heap (default 128K, an ESP32's; 64K: small).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-8266}
password=${2:-demo}
root=${3:-$(mktemp -d /tmp/webrepl-board.XXXXXX)}
mkdir -p "$root"
bin=$("$here/build-board.sh")
echo "board root: $root" >&2
exec "$bin" -X "heapsize=${BOARD_HEAP:-128K}" "$here/board/listener.py" "$port" "$password" "$root"
