#!/usr/bin/env bash
# Issue 25's figures: downloads on the ESP8266-like test board (binary
# chunks throttled to 20 ms each, scripts/build-board.sh esp8266) through
# the link emulator at 10 ms RTT, where they take the text channel, beside
# the binary GET they would otherwise take and webrepl_cli.py; the ESP32-like
# board at 20 KB/s, where the binary GET is kept; PUT 100 KB on the
# throttled board. Whole commands timed, median of $RUNS (default 5).
source "$(dirname "$0")/bench/lib.sh"
runs=${RUNS:-5}
throttled=$(scripts/build-board.sh esp8266)

cli=${WEBREPL_CLI:-}
mirror=/work/.mirror/micropython+webrepl/repo
if [ -z "$cli" ] && git -C "$mirror" cat-file -e HEAD:webrepl_cli.py 2>/dev/null; then
  cli=$work/webrepl_cli.py
  git -C "$mirror" show HEAD:webrepl_cli.py > "$cli"
fi

head -c 100000 /dev/urandom > "$work/100k.bin"
# What an ESP board's flash holds from its first boot; its GET measures
# the binary channel before the first large download.
boot='import gc
#import webrepl
#webrepl.start()
gc.collect()
'

# board BIN ROOT [--rate N]: a board behind the link emulator (5 ms each
# way); its port in $b.
board() {
  local bin=$1 root=$2; shift 2
  mkdir -p "$root"; printf "%s" "$boot" > "$root/boot.py"; cp "$work/100k.bin" "$root/"
  local p; p=$(free_port)
  "$bin" -X heapsize=128K scripts/board/listener.py "$p" bench "$root" > "$root.log" 2>&1 &
  for _ in $(seq 50); do grep -qs "board ready" "$root.log" && break; sleep 0.1; done
  local fifo=$root.emu
  mkfifo "$fifo.in"
  "$linkemu" --to "127.0.0.1:$p" --delay-ms 5 "$@" < "$fifo.in" > "$fifo.out" &
  exec {keep}> "$fifo.in"
  for _ in $(seq 50); do grep -qs listening "$fifo.out" && break; sleep 0.05; done
  b=127.0.0.1:$(awk '/listening/ {print $2}' "$fifo.out")
}
board "$throttled" "$work/esp8266"; slow8266=$b
board "$board" "$work/esp32" --rate 20000; slow32=$b
board "$throttled" "$work/esp8266-20k" --rate 20000; slow8266_20k=$b

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
timeit() { # timeit N CMD...: median seconds of N runs
  local n=$1; shift
  for _ in $(seq "$n"); do t=$(now); "$@" > /dev/null 2>&1; since "$t"; echo; done | median
}
same() { cmp -s "$1" "$work/100k.bin" || { echo "$2 corrupted the file" >&2; exit 1; }; }
row() { printf "%-58s %8s s   %s\n" "$1" "$2" "${3:-}"; }
# Without boot.py another small file at the root measures the binary
# channel (here the renamed boot.py itself).
no_boot() { mv "$1/boot.py" "$1/boot.py.off"; "${@:2}"; mv "$1/boot.py.off" "$1/boot.py"; }

echo "ESP8266-like board (20 ms per binary chunk), link emulator at 10 ms RTT; median of $runs"
get() { "$wm" cp "$1:/100k.bin" "$work/got.bin"; }
row "GET 100 KB: webrepl-mount cp (text channel)" "$(timeit "$runs" get "$slow8266")" "(target <= 1.5)"
same "$work/got.bin" "text GET"
row "GET 100 KB: webrepl-mount cp, no boot.py (another file probes)" "$(no_boot "$work/esp8266" timeit 1 get "$slow8266")" "(one run)"
same "$work/got.bin" "GET without boot.py"
if [ -n "$cli" ]; then
  cli_get() { (cd "$work" && python3 "$cli" -p bench "$1:/100k.bin" cli.bin); }
  row "GET 100 KB: webrepl_cli.py" "$(timeit 1 cli_get "$slow8266")" "(one run)"
  same "$work/cli.bin" "webrepl_cli.py"
fi

mount_cat() {
  "$wm" "$1" "$mnt" 2>>"$work/mount.log" &
  for _ in $(seq 250); do mountpoint -q "$mnt" && break; sleep 0.02; done
  t=$(now); cat "$mnt/100k.bin" > "$work/cat.bin"; since "$t"
  "$wm" unmount "$mnt" > /dev/null
  same "$work/cat.bin" "cat through the mount"
}
r=(); for _ in $(seq "$runs"); do r+=("$(mount_cat "$slow8266")"); done
row "cat of an uncached 100 KB file through the mount" "$(printf "%s\n" "${r[@]}" | median)" "(target <= 1.5)"

# The target goes first: an unchanged file is not sent again.
put() { rm -f "$work/esp8266/up.bin"; "$wm" cp "$work/100k.bin" "$1:/up.bin"; }
row "PUT 100 KB: webrepl-mount cp (binary PUT, verified)" "$(timeit "$runs" put "$slow8266")"
cmp -s "$work/esp8266/up.bin" "$work/100k.bin" || { echo "PUT corrupted the file" >&2; exit 1; }
paste_put() { rm -f "$work/esp8266/paste.bin"; "$wm" cp --transfer paste "$work/100k.bin" "$1:/paste.bin"; }
row "PUT 100 KB: webrepl-mount cp --transfer paste (text)" "$(timeit "$runs" paste_put "$slow8266")"
cmp -s "$work/esp8266/paste.bin" "$work/100k.bin" || { echo "paste PUT corrupted the file" >&2; exit 1; }
if [ -n "$cli" ]; then
  cli_put() { (cd "$work" && python3 "$cli" -p bench 100k.bin "$1:/cli-up.bin"); }
  row "PUT 100 KB: webrepl_cli.py" "$(timeit 1 cli_put "$slow8266")" "(one run)"
fi

# channels BOARD: GET 100 KB as chosen (and which channel), then by each
# channel forced: the chosen one should be the fastest.
channels() {
  local chose
  chose=$("$wm" -v cp "$1:/100k.bin" "$work/got.bin" 2>&1 | grep -o "downloads: [a-zA-Z ]*" | tail -1 || true)
  same "$work/got.bin" "the chosen channel"
  get_by() { "$wm" cp --transfer "$2" "$1:/100k.bin" "$work/got.bin"; }
  row "GET 100 KB: chosen (${chose#downloads: })" "$(timeit "$runs" get "$1")"
  same "$work/got.bin" "the chosen channel"
  for t in get text paste; do
    row "GET 100 KB: --transfer $t" "$(timeit "$runs" get_by "$1" "$t")"
    same "$work/got.bin" "--transfer $t"
  done
}
echo
echo "The three channels, ESP8266-like board, 10 ms RTT, link unthrottled"
channels "$slow8266"
echo
echo "The three channels, ESP8266-like board, 10 ms RTT and 20 KB/s each way"
channels "$slow8266_20k"

echo
echo "ESP32-like board (no delay), 10 ms RTT and 20 KB/s each way"
row "GET 100 KB: webrepl-mount cp (binary GET chosen)" "$(timeit "$runs" get "$slow32")" "(no slower than the next line)"
same "$work/got.bin" "GET"
row "GET 100 KB: webrepl-mount cp, no boot.py (another file probes)" "$(no_boot "$work/esp32" timeit "$runs" get "$slow32")"
