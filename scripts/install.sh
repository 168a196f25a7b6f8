#!/usr/bin/env bash
# Installs webrepl-mount, then shows it working against a local test board
# (no hardware needed). Installs only what the tool and that demo need
# (the tests' packages are scripts/test.sh's business) and starts no
# service. `--print-packages` prints every package it may install.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

# fuse3: mounting. The page's terminal (xterm.js) comes from the npm
# registry when the binary is first built (npm only then). The demo's board
# is MicroPython's unix port, built from source (once, then cached).
board=(build-essential pkg-config libffi-dev python3)
if [ "${1:-}" = --print-packages ]; then
  printf '%s\n' fuse3 npm "${board[@]}"
  exit 0
fi
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi
pkgs=(fuse3) why="fuse3 to mount"
lock=src/web/page/package-lock.json
built=no
for d in "${CARGO_TARGET_DIR:-target}"/release/build/webrepl-mount-*/out/npm; do
  if [ -f "$d/node_modules/@xterm/xterm/lib/xterm.js" ] && cmp -s "$d/package-lock.json" "$lock"; then
    built=yes
  fi
done
if [ $built = no ]; then
  pkgs+=(npm) why+=", npm to fetch the page's terminal once"
fi
pkgs+=("${board[@]}") why+=", a C toolchain, libffi and python3 to build the demo's test board"
scripts/deps.sh --lean "$why" "${pkgs[@]}"
cargo install --quiet --path . --locked
export PATH=$HOME/.cargo/bin:$PATH
# Completions and the man page where the shells and man look for them; as
# root the binary also goes where mount(8) finds an fstab line's helper
# (its PATH has /usr/local/bin, not ~/.cargo/bin).
if [ "$(id -u)" -eq 0 ]; then
  share=/usr/local/share
  install -m 755 "$(command -v webrepl-mount)" /usr/local/bin/webrepl-mount
else
  share=${XDG_DATA_HOME:-$HOME/.local/share}
  echo "(for /etc/fstab lines: sudo install ~/.cargo/bin/webrepl-mount /usr/local/bin/)"
fi
mkdir -p "$share/bash-completion/completions" "$share/zsh/site-functions" \
  "$share/fish/vendor_completions.d" "$share/man/man1"
webrepl-mount completions bash >"$share/bash-completion/completions/webrepl-mount"
webrepl-mount completions zsh >"$share/zsh/site-functions/_webrepl-mount"
webrepl-mount completions fish >"$share/fish/vendor_completions.d/webrepl-mount.fish"
webrepl-mount man >"$share/man/man1/webrepl-mount.1"
scripts/build-board.sh >/dev/null

root=$(mktemp -d /tmp/webrepl-demo.XXXXXX)
# A port nothing answers on (the board itself says if it cannot bind).
port=8266
while (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((20000 + RANDOM % 40000)); done
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
if [ -w /dev/fuse ] || command -v fusermount3 >/dev/null; then
  mnt=$(mktemp -d /tmp/webrepl-mnt.XXXXXX)
  set -x
  webrepl-mount --daemon $b "$mnt"
  ls -l "$mnt" "$mnt/demo"
  echo 'print("edited through the mount")' > "$mnt/main.py"
  df -h "$mnt"
  webrepl-mount unmount "$mnt"
  webrepl-mount exec $b "exec(open('main.py').read())"
  { set +x; } 2>/dev/null
  rmdir "$mnt"
else
  echo "(FUSE is not available to this user here: the mount demo is skipped)"
fi
echo
echo "webrepl-mount works. Your own board: webrepl-mount 192.168.4.1 /mnt/board"
echo "A local test board to play with: scripts/board.sh (port 8266, password demo)"
