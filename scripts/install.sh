#!/usr/bin/env bash
# Installs webrepl-mount, then shows it working against a local test board
# (no hardware needed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
scripts/deps.sh
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
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
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
