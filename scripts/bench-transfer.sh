#!/usr/bin/env bash
# Whole-process transfer times through the link emulator, 0 and 10 ms RTT:
# GET and PUT of 100 KB with webrepl-mount cp, and a stop-and-wait GET (one
# ack in flight, as webrepl_cli.py) for comparison. Prints the median of runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
runs=${RUNS:-5}
cargo build --quiet --release --example linkemu
cargo build --quiet --release
wm=target/release/webrepl-mount
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/root"
head -c 100000 /dev/urandom > "$work/100k.bin"
cp "$work/100k.bin" "$work/root/100k.bin"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$(scripts/build-board.sh)" scripts/board/listener.py "$port" bench "$work/root" > "$work/board.log" 2>&1 &
for _ in $(seq 50); do grep -qs "board ready" "$work/board.log" && break; sleep 0.1; done
export WEBREPL_PASSWORD=bench

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# timeit N CMD...: runs CMD N times, prints the median seconds; $before (a
# command, untimed) runs before each.
before=:
timeit() {
  local n=$1; shift
  for _ in $(seq "$n"); do
    $before
    s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
    awk "BEGIN { print $e - $s }"
  done | median
}

printf "%-8s %-38s %s\n" RTT operation "median s ($runs runs; stop-and-wait 1 run)"
for delay in 0 5; do
  coproc EMU { exec target/release/examples/linkemu --to "127.0.0.1:$port" --delay-ms $delay; }
  read -r _ eport <&"${EMU[0]}"
  b=127.0.0.1:$eport
  rtt="$((delay * 2)) ms"
  printf "%-8s %-38s %.3f\n" "$rtt" "GET 100 KB (window 512)" "$(timeit "$runs" $wm cp $b:/100k.bin "$work/got.bin")"
  cmp -s "$work/got.bin" "$work/100k.bin" || { echo "GET corrupted the file" >&2; exit 1; }
  # Each run uploads: without the board's copy removed, cp skips the file
  # from the second run on (the board's sha256 matches).
  before="rm -f $work/root/up.bin"
  printf "%-8s %-38s %.3f\n" "$rtt" "PUT 100 KB (verified, atomic)" "$(timeit "$runs" $wm cp "$work/100k.bin" $b:/up.bin)"
  before=:
  cmp -s "$work/root/up.bin" "$work/100k.bin" || { echo "PUT corrupted the file" >&2; exit 1; }
  printf "%-8s %-38s %.3f\n" "$rtt" "GET 100 KB stop-and-wait (window 1)" "$(timeit 1 $wm cp --get-window 1 $b:/100k.bin "$work/got.bin")"
  kill "$EMU_PID"; wait "$EMU_PID" 2>/dev/null || true
done
