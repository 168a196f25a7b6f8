#!/usr/bin/env bash
# Deploying a project of 50 files of 2.7 KB (10 in lib/) to the test board
# through the link emulator (10 ms round trip; then also 20 KB/s each way,
# an ESP32's speed): `cp -r`, mount + `cp -r` + unmount, a second `cp -r`
# of the unchanged tree, and three boards at once, side by side with
# webrepl_cli.py (one process per file) when it is found: $WEBREPL_CLI, or
# the mirror of micropython/webrepl. Whole commands timed, median of 3.
source "$(dirname "$0")/bench/lib.sh"
mkdir -p "$work/src/lib"

cli=${WEBREPL_CLI:-}
mirror=/work/.mirror/micropython+webrepl/repo
if [ -z "$cli" ] && git -C "$mirror" cat-file -e HEAD:webrepl_cli.py 2>/dev/null; then
  cli=$work/webrepl_cli.py
  git -C "$mirror" show HEAD:webrepl_cli.py > "$cli"
fi

# Three boards, each behind a fast and a slow link: ports in FAST[i], SLOW[i].
FAST=() SLOW=()
for i in 0 1 2; do
  start_board "$work/root$i" "$work/board$i.log"
  for kind in fast slow; do
    extra=()
    [ "$kind" = slow ] && extra=(--rate 20000)
    fifo=$work/emu-$kind-$i
    mkfifo "$fifo.in"
    target/release/examples/linkemu --to "127.0.0.1:$port" --delay-ms 5 "${extra[@]}" \
      < "$fifo.in" > "$fifo.out" &
    exec {keep}> "$fifo.in"
    for _ in $(seq 50); do grep -qs listening "$fifo.out" && break; sleep 0.05; done
    p=$(awk '/listening/ {print $2}' "$fifo.out")
    if [ "$kind" = fast ]; then FAST+=("$p"); else SLOW+=("$p"); fi
  done
done

python3 - "$work/src" <<'EOF'
import base64, os, sys
for i in range(50):
    sub = "lib/" if i % 5 == 0 else ""
    with open(f"{sys.argv[1]}/{sub}m{i}.py", "wb") as f:
        f.write(base64.encodebytes(os.urandom(2100))[:2700])
EOF
bytes=$(cat "$work/src"/*.py "$work/src"/lib/*.py | wc -c)

median() { printf "%s\n" "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
wipe() { for i in "$@"; do find "$work/root$i" -mindepth 1 -delete; done; }
# The mount's own hidden files on the board (.webrepl-mount-id, -probe,
# -helpers) are not part of the tree.
check() { diff -r -x '.webrepl-mount-*' "$work/src" "$work/root$1" > /dev/null || { echo "board $1 differs from the tree" >&2; exit 1; }; }
mount_it() {
  "$wm" "$1" "$mnt" 2>>"$work/mount.log" &
  for _ in $(seq 250); do mountpoint -q "$mnt" && return; sleep 0.02; done
  echo "not mounted" >&2; exit 1
}

cp_fresh() { wipe 0; t=$(now); "$wm" cp -r "$work/src/." "127.0.0.1:$1:/" 2>/dev/null; since "$t"; check 0; }
mount_fresh() {
  wipe 0; t=$(now)
  mount_it "127.0.0.1:$1"; cp -r "$work/src/." "$mnt/"; "$wm" unmount "$mnt"
  since "$t"; check 0
}
cp_again() { t=$(now); "$wm" cp -r "$work/src/." "127.0.0.1:$1:/" 2>"$work/again.log"; since "$t"; }
cp_three() {
  wipe 0 1 2; t=$(now)
  "$wm" cp -r "$work/src/." "127.0.0.1:$1:/" "127.0.0.1:$2:/" "127.0.0.1:$3:/" 2>/dev/null
  since "$t"; check 0; check 1; check 2
}
webrepl_cli() {
  wipe 0; mkdir "$work/root0/lib"; t=$(now)
  (cd "$work/src" && for f in *.py lib/*.py; do
    python3 "$cli" -p bench "$f" "127.0.0.1:$1:/$f" > /dev/null
  done)
  since "$t"; check 0
}
runs() { local r=(); for _ in 1 2 3; do r+=("$("$@")"); done; median "${r[@]}"; }

echo "50 files, $bytes B (10 in lib/); link emulator at 10 ms RTT; median of 3"
printf "%-44s %10s %10s\n" "" "10 ms" "+ 20 KB/s"
row() { printf "%-44s %10s %10s   %s\n" "$1" "$2" "$3" "${4:-}"; }
if [ -n "$cli" ]; then
  row "webrepl_cli.py, one process per file" "$(runs webrepl_cli "${FAST[0]}") s" "$(webrepl_cli "${SLOW[0]}") s" "(slow: one run)"
fi
ideal=$(awk "BEGIN { printf \"%.2f\", $bytes / 20000 }")
row "webrepl-mount cp -r" "$(runs cp_fresh "${FAST[0]}") s" "$(runs cp_fresh "${SLOW[0]}") s" \
  "(targets: <= 0.4 s; bytes / bandwidth = $ideal s, +15% = $(awk "BEGIN { printf \"%.2f\", $ideal * 1.15 }") s)"
row "mount + cp -r + unmount" "$(runs mount_fresh "${FAST[0]}") s" "$(runs mount_fresh "${SLOW[0]}") s" "(target <= 0.6 s)"
row "second cp -r, tree unchanged" "$(runs cp_again "${FAST[0]}") s" "$(runs cp_again "${SLOW[0]}") s" \
  "(target <= 0.3 s; $(tail -1 "$work/again.log"))"
one_fast=$(runs cp_fresh "${FAST[0]}"); one_slow=$(runs cp_fresh "${SLOW[0]}")
three_fast=$(runs cp_three "${FAST[@]}"); three_slow=$(runs cp_three "${SLOW[@]}")
row "three boards at once (cp -r to all)" "$three_fast s" "$three_slow s" \
  "(x one board: $(awk "BEGIN { printf \"%.2f / %.2f\", $three_fast / $one_fast, $three_slow / $one_slow }"); target <= 1.3)"
