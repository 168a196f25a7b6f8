# Shared by the bench scripts (sourced): a release build, a work directory
# removed on exit (and a mountpoint in it, unmounted), the test board's
# password and a private state directory, and clocks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# PROFILE=debug: the debug binaries (no release build on a full machine).
profile=${PROFILE:-release}
if [ "$profile" = release ]; then
  cargo build --quiet --release --example linkemu
  cargo build --quiet --release
else
  cargo build --quiet --example linkemu
  cargo build --quiet
fi
wm=$PWD/target/$profile/webrepl-mount
emu=$PWD/target/$profile/examples/linkemu
board=$(scripts/build-board.sh)
work=$(mktemp -d)
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
  mountpoint -q "$mnt" && umount -l "$mnt"
  kill $(jobs -p) 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export WEBREPL_PASSWORD=bench XDG_STATE_HOME=$work/state XDG_RUNTIME_DIR=$work/run

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_board ROOT LOG: a test board on a free port, in $port once ready;
# its Python heap is $BOARD_HEAP (default 128K, an ESP32's).
start_board() {
  mkdir -p "$1"
  port=$(free_port)
  "$board" -X "heapsize=${BOARD_HEAP:-128K}" scripts/board/listener.py "$port" bench "$1" > "$2" 2>&1 &
  for _ in $(seq 50); do grep -qs "board ready" "$2" && return; sleep 0.1; done
  echo "the test board did not start" >&2; exit 1
}

now() { date +%s.%N; }
# since T [DIGITS]: seconds since T.
since() { awk "BEGIN { printf \"%.${2:-3}f\", $(now) - $1 }"; }
