#!/usr/bin/env bash
# Installs webrepl-mount, then shows it working against a local test board
# (no hardware needed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
scripts/deps.sh
cargo install --quiet --path . --locked
export PATH=$HOME/.cargo/bin:$PATH
scripts/build-board.sh >/dev/null

root=$(mktemp -d /tmp/webrepl-demo.XXXXXX)
port=18266
scripts/board.sh $port demo "$root" >"$root.log" 2>&1 &
board=$!
trap 'kill $board 2>/dev/null; rm -rf "$root" "$root.log"' EXIT
for _ in $(seq 50); do grep -q "board ready" "$root.log" 2>/dev/null && break; sleep 0.1; done
export WEBREPL_PASSWORD=demo
b=127.0.0.1:$port
set -x
webrepl-mount exec $b "import sys; print(sys.implementation)"
printf 'print("hello from main.py")\n' > "$root.main.py"
webrepl-mount cp "$root.main.py" $b:/main.py
webrepl-mount cp -r src $b:/demo
webrepl-mount ls -l $b:/
webrepl-mount exec $b "exec(open('main.py').read())"
{ set +x; } 2>/dev/null
rm -f "$root.main.py"
echo
echo "webrepl-mount works. Your own board: webrepl-mount repl 192.168.4.1"
echo "A local test board to play with: scripts/board.sh (port 8266, password demo)"
