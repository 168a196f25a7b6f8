#!/usr/bin/env bash
# A board as slow as an ESP32: the link emulator at 20 KB/s each way and a
# 10 ms round trip. Prints: uploads of 300 KB, 1 MB and 5 MB with the default
# time-out (time and share of the link's bandwidth); what a person feels on
# the mount while a 200 KB uncached file is read, and while one is written
# (scripts/bench/latency.py);
# the first 100 bytes of an uncached 300 KB file with nothing else running,
# and the bytes that moved for them;
# the CPU of uploads (cp, and the mount's while it uploads) and the CPU an
# idle mount uses in 10 s.
# SIZES="300000 1000000" leaves out the 5 MB upload (4 minutes at 20 KB/s).
rate=${RATE:-20000}
sizes=${SIZES:-300000 1000000 5000000}
source "$(dirname "$0")/bench/lib.sh"
start_board "$work/root" "$work/board.log"
coproc EMU { exec "$linkemu" --to "127.0.0.1:$port" --delay-ms 5 --rate "$rate"; }
read -r _ eport <&"${EMU[0]}"
b=127.0.0.1:$eport
echo "link: $rate B/s each way, 10 ms RTT (link emulator)"

for n in $sizes; do
  head -c "$n" /dev/urandom > "$work/up.bin"
  t=$(now)
  if /usr/bin/time -o "$work/cpu" -f "%U %S" "$wm" cp "$work/up.bin" "$b:/up.bin" 2> "$work/cp.err"; then
    s=$(since "$t" 2)
    cmp -s "$work/up.bin" "$work/root/up.bin" || { echo "upload of $n B corrupted" >&2; exit 1; }
    cpu=$(awk '{ print $1 + $2 }' "$work/cpu")
    printf "upload %8d B: %7.2f s  %5.1f%% of the link, CPU %.2f s (%.1f%% of its time; target <= 10%%)\n" "$n" "$s" \
      "$(awk "BEGIN { print 100 * $n / $s / $rate }")" "$cpu" "$(awk "BEGIN { print 100 * $cpu / $s }")"
  else
    printf "upload %8d B: FAILED after %s s: %s\n" "$n" "$(since "$t" 2)" "$(tail -n1 "$work/cp.err")"
  fi
  rm -f "$work/root/up.bin"
  left=$(ls -A "$work/root" | grep -c '^\.wrm' || true)
  [ "$left" = 0 ] || echo "  ($left part file(s) left on the board)"
  find "$work/root" -maxdepth 1 -name '.wrm*' -delete
done

head -c 200000 /dev/urandom > "$work/root/big.bin"
head -c 200000 /dev/urandom > "$work/root/big2.bin"
head -c 300000 /dev/urandom > "$work/root/big3.bin"
head -c 3000 /dev/urandom > "$work/root/small.bin"
mkdir "$work/root/lib"
for i in $(seq 20); do echo "x = $i" > "$work/root/lib/m$i.py"; done
"$wm" "$b" "$mnt" 2> "$work/mount.log" &
mount_pid=$!
for _ in $(seq 300); do mountpoint -q "$mnt" && break; sleep 0.05; done
python3 scripts/bench/latency.py "$wm" "$mnt" "$mnt/big.bin" "$mnt/big2.bin" "$mnt/small.bin" "$mnt/lib"
# utime + stime in clock ticks (the name, field 2, has no spaces here).
ticks() { awk '{ print $14 + $15 }' "/proc/$mount_pid/stat"; }
c=$(ticks); t=$(now)
python3 scripts/bench/latency.py "$wm" "$mnt" "$mnt/up.bin" "$mnt/big2.bin" "$mnt/small.bin" "$mnt/lib" up
# The upload goes on past close() (the close wait), and the probe's own
# reads finish too: "idle" means no transfer in flight. (Not grep -q: its
# early exit fails the pipe under pipefail, which ended the loop at once.)
while "$wm" status "$mnt" | grep -E '^(moving|queued|dirty):' > /dev/null; do sleep 0.2; done
s=$(since "$t" 2)
printf "the mount's CPU while the upload ran: %.2f s in %s s (%.1f%%; target <= 10%%)\n" \
  "$(awk "BEGIN { print ($(ticks) - $c) / $(getconf CLK_TCK) }")" "$s" \
  "$(awk "BEGIN { print 100 * ($(ticks) - $c) / $(getconf CLK_TCK) / $s }")"
cmp -s "$work/root/up.bin" <(cat "$mnt/up.bin") || echo "the upload through the mount differs on the board" >&2
from_board() { "$wm" status "$mnt" | sed -n 's/^traffic: .* B to the board, \([0-9]*\) B from it.*/\1/p'; }
b0=$(from_board)
t=$(now)
head -c 100 "$mnt/big3.bin" > /dev/null
s=$(since "$t" 2)
printf "first 100 bytes of an uncached 300 KB file, link idle: %s s, %s B from the board\n" "$s" "$(( $(from_board) - b0 ))"
c=$(ticks)
sleep 10
printf "idle mount: %s s of CPU in 10 s\n" "$(awk "BEGIN { print ($(ticks) - $c) / $(getconf CLK_TCK) }")"
"$wm" unmount "$mnt"
