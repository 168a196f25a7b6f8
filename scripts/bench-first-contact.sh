#!/usr/bin/env bash
# First contact (issue 21): `cp` of a 3-byte file to a board process
# started just before, through the link emulator at 10 ms round trip:
# on fresh flash (the helpers' file is sent), on flash that has it (a
# board that rebooted), and a second `cp` right after. Median of 5 each.
source "$(dirname "$0")/bench/lib.sh"
printf 'abc' > "$work/small.txt"
median() { printf "%s\n" "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# board_via_link ROOT: a fresh board process on ROOT behind the emulator, in $b.
board_via_link() {
  [ -z "${emu:-}" ] || kill "$emu" "$bpid" 2>/dev/null || true
  start_board "$1" "$work/board.log"
  bpid=$!
  rm -f "$work/emu.in" "$work/emu.out"; mkfifo "$work/emu.in"
  "$linkemu" --to "127.0.0.1:$port" --delay-ms 5 < "$work/emu.in" > "$work/emu.out" &
  emu=$!
  exec {keep}> "$work/emu.in"
  for _ in $(seq 50); do grep -qs listening "$work/emu.out" && break; sleep 0.05; done
  b=127.0.0.1:$(awk '/listening/ {print $2}' "$work/emu.out")
}
cp_small() { t=$(now); "$wm" cp "$work/small.txt" "$b:/small.txt" 2>>"$work/cp.log"; since "$t"; }
fresh=() rebooted=() second=()
for i in 1 2 3 4 5; do
  board_via_link "$work/root$i"
  fresh+=("$(cp_small)")
  second+=("$(cp_small)")
  board_via_link "$work/root$i"
  rebooted+=("$(cp_small)")
done
echo "first cp of a 3-byte file, 10 ms RTT, board process started just before (median of 5)"
echo "  fresh flash (helpers sent):     $(median "${fresh[@]}") s   (target <= 0.2 s)"
echo "  helpers' file on flash:         $(median "${rebooted[@]}") s"
echo "  second cp:                      $(median "${second[@]}") s"
