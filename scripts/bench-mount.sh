#!/usr/bin/env bash
# The mount through the link emulator at 10 ms RTT, whole commands timed:
# deploy 50 files of ~2.7 KB (mount + cp -r + unmount), rsync of the same
# tree unchanged, ls -lR of 200 entries, reading a cached 10 MB file, and the
# daemon's RSS after reading 50 MB of files with a 16 MB cache.
source "$(dirname "$0")/bench/lib.sh"
mkdir -p "$work/src"
start_board "$work/root" "$work/board.log"
coproc EMU { exec target/release/examples/linkemu --to "127.0.0.1:$port" --delay-ms 5; }
read -r _ eport <&"${EMU[0]}"
b=127.0.0.1:$eport

mount_it() {
  "$wm" "$@" "$b" "$mnt" 2>>"$work/mount.log" &
  MOUNT_PID=$!
  for _ in $(seq 200); do mountpoint -q "$mnt" && return; sleep 0.02; done
  echo "not mounted" >&2; exit 1
}

for i in $(seq 50); do head -c 2700 /dev/urandom | base64 > "$work/src/mod$i.py"; done
echo "RTT 10 ms (link emulator, 5 ms each way)"

t=$(now)
mount_it
cp -r "$work/src" "$mnt/app"
"$wm" unmount "$mnt"
printf "%-48s %s s   (target <= 2)\n" "deploy 50 files (mount + cp -r + unmount)" "$(since "$t")"
cmp -s <(cat "$work/src"/*) <(cat "$work/root/app"/*) || { echo "deploy corrupted files" >&2; exit 1; }

mount_it
rsync -a "$work/src/" "$mnt/sync/"
"$wm" unmount "$mnt"
t=$(now)
mount_it
stats=$(rsync -a --stats "$work/src/" "$mnt/sync/")
"$wm" unmount "$mnt"
sent=$(echo "$stats" | awk -F': ' '/Total transferred file size/ {print $2}')
printf "%-48s %s s   (target <= 1; %s)\n" "re-deploy unchanged (mount + rsync -a + unmount)" "$(since "$t")" "transferred: $sent"

mkdir -p "$work/root/tree"
for d in $(seq 10); do mkdir "$work/root/tree/d$d"; for f in $(seq 19); do echo $f > "$work/root/tree/d$d/f$f"; done; done
mount_it
t=$(now)
n=$(ls -lR "$mnt/tree" | grep -c '^[-d]')
printf "%-48s %s s   (%s entries)\n" "ls -lR" "$(since "$t")" "$n"
"$wm" unmount "$mnt"

for d in $(seq 25); do
  mkdir -p "$work/root/many/d$d"
  for f in $(seq 20); do head -c $((100 + (d * f) % 400)) /dev/urandom | base64 > "$work/root/many/d$d/m$f.py"; done
done
mount_it
t=$(now)
cat "$mnt"/many/*/*.py > /dev/null
printf "%-48s %s s   (target <= 2; 10.9 s before)\n" "read 500 small uncached files (cat many/*/*.py)" "$(since "$t")"
"$wm" unmount "$mnt"

head -c 10485760 /dev/urandom > "$work/root/ten.bin"
for i in $(seq 5); do head -c 10485760 /dev/urandom > "$work/root/r$i.bin"; done
mount_it --cache-size 16
cat "$mnt/ten.bin" > /dev/null
t=$(now)
for _ in 1 2 3 4 5; do cat "$mnt/ten.bin" > /dev/null; done
s=$(since "$t")
printf "%-48s %s MB/s (target >= 500)\n" "read a cached 10 MB file" "$(awk "BEGIN { printf \"%.0f\", 50 / $s }")"
for i in $(seq 5); do cat "$mnt/r$i.bin" > /dev/null; done
pid=$MOUNT_PID
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
printf "%-48s %s MB  (target <= 16 + 20)\n" "daemon RSS after reading 50 MB, 16 MB cache" "$((rss / 1024))"
"$wm" unmount "$mnt"
