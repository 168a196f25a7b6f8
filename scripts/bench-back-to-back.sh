#!/usr/bin/env bash
# Commands run back to back against the test board through the link
# emulator (10 ms round trip): ten `cp` of a 3-byte file in a shell loop,
# each against one run alone (after the board has been idle), and a second
# `cp -r` of an unchanged 50-file tree right after the first, against one a
# moment later. Counts the clients the board refused meanwhile.
source "$(dirname "$0")/bench/lib.sh"
start_board "$work/root" "$work/board.log"
mkfifo "$work/emu.in"
target/release/examples/linkemu --to "127.0.0.1:$port" --delay-ms 5 < "$work/emu.in" > "$work/emu.out" &
exec {keep}> "$work/emu.in"
for _ in $(seq 50); do grep -qs listening "$work/emu.out" && break; sleep 0.05; done
b=127.0.0.1:$(awk '/listening/ {print $2}' "$work/emu.out")

printf 'abc' > "$work/small.txt"
mkdir -p "$work/src/lib"
python3 - "$work/src" <<'PY'
import base64, os, sys
for i in range(50):
    sub = "lib/" if i % 5 == 0 else ""
    with open(f"{sys.argv[1]}/{sub}m{i}.py", "wb") as f:
        f.write(base64.encodebytes(os.urandom(2100))[:2700])
PY
median() { printf "%s\n" "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
cp_small() { t=$(now); "$wm" cp "$work/small.txt" "$b:/small.txt" 2>>"$work/cp.log"; since "$t"; }
cp_tree() { t=$(now); "$wm" cp -r "$work/src/." "$b:/" 2>>"$work/cp.log"; since "$t"; }
refused() { grep -c "rejected" "$work/board.log" || true; }

alone=()
for _ in 1 2 3 4 5; do sleep 0.5; alone+=("$(cp_small)"); done
one=$(median "${alone[@]}")
sleep 0.5
before=$(refused)
loop=()
for _ in $(seq 10); do loop+=("$(cp_small)"); done
worst=$(printf "%s\n" "${loop[@]}" | sort -n | tail -1)
echo "cp of a 3-byte file, link emulator at 10 ms RTT"
echo "  alone (median of 5):            $one s"
echo "  ten in a shell loop:            ${loop[*]} s"
echo "  slowest of the ten x alone:     $(awk "BEGIN { printf \"%.2f\", $worst / $one }")   (target <= 1.5)"
echo "  clients the board refused:      $(($(refused) - before))"

cp_tree >/dev/null
again=() later=()
for _ in 1 2 3; do
  sleep 0.5
  cp_tree >/dev/null
  again+=("$(cp_tree)")
  sleep 0.5
  later+=("$(cp_tree)")
done
echo "cp -r of an unchanged 50-file tree (median of 3)"
echo "  right after another cp -r:      $(median "${again[@]}") s   (target <= 0.3 s)"
echo "  a moment later:                 $(median "${later[@]}") s"
echo "  clients the board refused, all: $(refused)"
