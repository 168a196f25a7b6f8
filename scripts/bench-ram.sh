#!/usr/bin/env bash
# The board's RAM under the tool. On a test board with an ESP32's heap
# (128K): 1,000 saves through the mount, with the free heap after
# gc.collect() and the qstr count (interned names, never freed) after the
# first save and after the last (goal: within 512 B; qstrs unchanged), and
# what our helpers keep (status). On a board with about 50 KB free (64K
# heap): `cp` of a 30 KB file and `cp -r` of the 50-file tree of
# bench-deploy.sh, 10 runs each, successes printed, and the qstr count
# after the first run and the last (each run is new connections).
source "$(dirname "$0")/bench/lib.sh"
saves=${SAVES:-1000}
runs=${RUNS:-10}

measure='import gc,micropython
gc.collect()
print("heap",gc.mem_free())
micropython.qstr_info()
del gc,micropython'
# heap_qstr TARGET: "FREE QSTRS" of the board.
heap_qstr() {
  "$wm" exec "$1" "$measure" | awk '/^heap/ { h = $2 } /n_qstr=/ { match($0, /n_qstr=[0-9]+/); q = substr($0, RSTART + 7, RLENGTH - 7) } END { print h, q }'
}

BOARD_HEAP=128K start_board "$work/root" "$work/board.log"
"$wm" "127.0.0.1:$port" "$mnt" 2>>"$work/mount.log" &
for _ in $(seq 250); do mountpoint -q "$mnt" && break; sleep 0.02; done
mountpoint -q "$mnt" || { echo "not mounted" >&2; exit 1; }
mkdir -p "$mnt/app"
save() { head -c $((100 + ($1 * 37) % 3000)) /dev/urandom > "$mnt/app/m$(($1 % 20)).py"; }
save 0
heap_qstr "$mnt" > /dev/null # the measuring program's own names
read -r heap0 qstr0 < <(heap_qstr "$mnt")
t=$(now)
for i in $(seq 1 "$saves"); do save "$i"; done
took=$(since "$t" 1)
read -r heap1 qstr1 < <(heap_qstr "$mnt")
helpers=$("$wm" status "$mnt" | grep '^board RAM' || echo "board RAM: (not shown)")
"$wm" unmount "$mnt"

echo "test board, 128K heap (an ESP32's)"
printf "%-34s %10s %10s %10s\n" "" "heap free" "qstrs" ""
printf "%-34s %8s B %10s\n" "after the first save" "$heap0" "$qstr0"
printf "%-34s %8s B %10s   (%s s)\n" "after $saves more saves" "$heap1" "$qstr1" "$took"
echo "  heap kept: $((heap0 - heap1)) B (goal <= 512); qstrs added: $((qstr1 - qstr0)) (goal 0)"
echo "  $helpers"

# A board with about 50 KB free.
BOARD_HEAP=64K start_board "$work/small" "$work/small.log"
small=$port
read -r free _ < <(heap_qstr "127.0.0.1:$small")
mkdir -p "$work/src/lib"
python3 - "$work/src" <<'EOF'
import base64, os, sys
for i in range(50):
    sub = "lib/" if i % 5 == 0 else ""
    with open(f"{sys.argv[1]}/{sub}m{i}.py", "wb") as f:
        f.write(base64.encodebytes(os.urandom(2100))[:2700])
EOF
head -c 30000 /dev/urandom > "$work/big.bin"
one=0 tree=0 q1=
for r in $(seq "$runs"); do
  find "$work/small" -mindepth 1 -delete
  "$wm" cp "$work/big.bin" "127.0.0.1:$small:/big.bin" 2>>"$work/cp.log" \
    && cmp -s "$work/big.bin" "$work/small/big.bin" && one=$((one + 1))
  "$wm" cp -r "$work/src/." "127.0.0.1:$small:/" 2>>"$work/cp.log" \
    && diff -r -x .webrepl-mount-helpers -x big.bin "$work/src" "$work/small" > /dev/null && tree=$((tree + 1))
  # Every run is new connections: the names they intern stay.
  [ "$r" = 1 ] && read -r _ q1 < <(heap_qstr "127.0.0.1:$small")
done
read -r _ q2 < <(heap_qstr "127.0.0.1:$small")
echo "test board, 64K heap ($free B free at start)"
echo "  cp of a 30 KB file:       $one of $runs succeeded"
echo "  cp -r of the 50-file tree: $tree of $runs succeeded"
echo "  qstrs after the first run: $q1, after the last: $q2 (goal: the same)"
[ "$one" = "$runs" ] && [ "$tree" = "$runs" ] || { echo "failures:"; sort "$work/cp.log" | uniq -c | sort -rn | head -5; }
