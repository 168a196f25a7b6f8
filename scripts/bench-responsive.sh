#!/usr/bin/env bash
# A person at a mount of an ESP32-like board (the link emulator at 20 KB/s
# each way, 10 ms RTT) while a 1 MB file goes up through it: the echo of
# keys typed in `term`, reads of small uncached and cached files
# (scripts/bench/responsive.py). Targets (issue 20): echo p99 and a small
# read <= 0.5 s.
# Then a save through the mount while `exec` / `run` of a program printing
# every 100 ms runs (scripts/bench/save_running.py). Targets: close() <=
# 2.5 s, the file on the board within 1 s of the program's end.
# SIZE=300000 for a shorter upload (SIZE=0: none); PROFILE=debug for the
# debug binaries; SEGMENT=1460 for the link's TCP segments (see
# examples/linkemu.rs: its default 5 ms pieces make the board lose upload
# bytes, and slices go again, far more often than on a real link).
rate=${RATE:-20000}
size=${SIZE:-1000000}
source "$(dirname "$0")/bench/lib.sh"
# SMALL_IN=/ puts the small files beside the upload (in the root);
# ALONE=1 each in a directory of its own (no neighbours come with a read).
small=${SMALL_IN:-/small}
mkdir -p "$work/root$small"
for i in $(seq -w 60); do
  d=$work/root$small${ALONE:+/d$i}
  mkdir -p "$d"
  head -c 300 /dev/urandom | base64 > "$d/s$i.txt"
done
echo "cached" > "$work/root/cached.txt"
start_board "$work/root" "$work/board.log"
coproc EMU { exec "$linkemu" --to "127.0.0.1:$port" --delay-ms 5 --rate "$rate" ${SEGMENT:+--segment "$SEGMENT"}; }
read -r _ eport <&"${EMU[0]}"
echo "link: $rate B/s each way, 10 ms RTT (link emulator); $profile build"
"$wm" "127.0.0.1:$eport" "$mnt" 2> "$work/mount.log" &
for _ in $(seq 300); do mountpoint -q "$mnt" && break; sleep 0.05; done
if [ "$size" != 0 ]; then
  python3 scripts/bench/responsive.py "$wm" "$mnt" "$size" "$mnt$small" "$mnt/cached.txt"
  cmp -s "$work/root/up.bin" <(cat "$mnt/up.bin") || echo "the upload through the mount differs on the board" >&2
fi
python3 scripts/bench/save_running.py "$wm" "$mnt" "$work/root" "${SAVE_SECS:-4}"
"$wm" unmount "$mnt"
[ -z "${MOUNT_LOG:-}" ] || cp "$work/mount.log" "$MOUNT_LOG"
