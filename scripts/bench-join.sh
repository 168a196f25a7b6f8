#!/usr/bin/env bash
# A big save through a mount of a board whose flash writes as slowly as an
# ESP32's (FLASH, default 50000 B/s; the link emulator at 20 KB/s each way,
# 10 ms RTT), nobody typing: seconds from close() until the file is on the
# board and the mount idle, and how long the REPL was held at most by one
# program meanwhile (from the mount's debug log). The slices of a big
# upload are joined in steps, each a program of its own (issue 20): this
# prints what the steps cost. SIZE (default 300000) bytes of noise.
size=${SIZE:-300000}
export WEBREPL_BOARD_FLASH_WRITE=${FLASH:-50000}
source "$(dirname "$0")/bench/lib.sh"
start_board "$work/root" "$work/board.log"
coproc EMU { exec "$linkemu" --to "127.0.0.1:$port" --delay-ms 5 --rate 20000 --segment 1460; }
read -r _ eport <&"${EMU[0]}"
RUST_LOG=webrepl_mount=debug "$wm" "127.0.0.1:$eport" "$mnt" 2> "$work/mount.log" &
for _ in $(seq 300); do mountpoint -q "$mnt" && break; sleep 0.05; done
head -c "$size" /dev/urandom > "$work/up.bin"
t=$(now)
cp "$work/up.bin" "$mnt/up.bin"
close=$(since "$t" 2)
while "$wm" status "$mnt" | grep -qE '^(moving|queued|dirty|programs):'; do sleep 0.1; done
total=$(since "$t" 2)
cmp -s "$work/up.bin" "$work/root/up.bin" || echo "the upload differs on the board" >&2
longest=$(grep -a -o 'program of [0-9]* bytes ran in [0-9.]*m\?s' "$work/mount.log" |
  awk '{v=$NF; ms = v ~ /ms$/ ? v+0 : v*1000; if (ms > m) m = ms} END {print m+0}')
echo "flash $WEBREPL_BOARD_FLASH_WRITE B/s, link 20000 B/s: $size B saved: close() ${close} s, on the board and idle after ${total} s; longest program ${longest} ms"
"$wm" unmount "$mnt"
