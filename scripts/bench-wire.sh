#!/usr/bin/env bash
# Issue 21's figures on an ESP32's link (link emulator: 20 KB/s each way,
# 10 ms round trip), each beside bytes ÷ bandwidth: PUT of 100 KB of Python
# source (compressed, --no-compress, and webrepl_cli.py when found: see
# bench-deploy.sh), PUT of 100 KB of noise, `cp -r` of a Python tree
# (micropython-lib's python-stdlib when $STDLIB names a checkout of it,
# else the host's own Python library: 127 files under 8 KB, 242 KB), and
# a one-line edit of a cached 100 KB .py saved through the mount, by
# sed -i (temp file + rename) and in place (until the board has it).
source "$(dirname "$0")/bench/lib.sh"
rate=${RATE:-20000}
# An ESP32's heap.
export BOARD_HEAP=${BOARD_HEAP:-128K}
start_board "$work/root" "$work/board.log"
coproc EMU { exec "$linkemu" --to "127.0.0.1:$port" --delay-ms 5 --rate "$rate"; }
read -r _ eport <&"${EMU[0]}"
b=127.0.0.1:$eport

cli=${WEBREPL_CLI:-}
mirror=/work/.mirror/micropython+webrepl/repo
if [ -z "$cli" ] && git -C "$mirror" cat-file -e HEAD:webrepl_cli.py 2>/dev/null; then
  cli=$work/webrepl_cli.py
  git -C "$mirror" show HEAD:webrepl_cli.py > "$cli"
fi

# 100 KB of Python source: the host's library, end to end.
py=$(python3 -c 'import os; print(os.path.dirname(os.__file__))')
python3 - "$py" "$work/src.py" <<'EOF'
import glob, sys
data = b"".join(open(f, "rb").read() for f in sorted(glob.glob(sys.argv[1] + "/*.py")))
open(sys.argv[2], "wb").write(data[:100000])
EOF
head -c 100000 /dev/urandom > "$work/noise.bin"
tree=$work/tree
mkdir -p "$tree"
python3 - "${STDLIB:-$py}" "$tree" <<'EOF'
import os, shutil, sys
top, out = sys.argv[1], sys.argv[2]
total = count = 0
for d, dirs, files in sorted(os.walk(top)):
    dirs[:] = sorted(x for x in dirs if "test" not in x and "example" not in x
                     and x not in ("site-packages", "dist-packages", "__pycache__", "idlelib", "lib2to3"))
    for f in sorted(files):
        p = os.path.join(d, f)
        if not f.endswith(".py") or f.startswith("test_") or f == "manifest.py":
            continue
        n = os.path.getsize(p)
        if not 0 < n <= 8192 or total + n > 242_000 or count == 127:
            continue
        count += 1
        dst = os.path.join(out, os.path.relpath(p, top))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(p, dst)
        total += n
EOF
tree_files=$(find "$tree" -type f | wc -l)
tree_bytes=$(find "$tree" -type f -print0 | du -cb --files0-from=- | tail -1 | cut -f1)

echo "link: $rate B/s each way, 10 ms RTT (link emulator)"
row() { printf "%-52s %8s s   bytes/bandwidth %6.2f s   %s\n" "$1" "$2" "$(awk "BEGIN { print $3 / $rate }")" "${4:-}"; }
put() { # put FILE [ARGS...]: seconds for cp FILE to the board, checked
  local f=$1; shift
  rm -f "$work/root/up"
  local t; t=$(now)
  "$wm" cp "$@" "$f" "$b:/up" > /dev/null 2> "$work/cp.err" || { echo "cp failed: $(tail -n1 "$work/cp.err")" >&2; exit 1; }
  since "$t" 2
  cmp -s "$f" "$work/root/up" || { echo "upload of $f corrupted" >&2; exit 1; }
}
row "PUT 100 KB of Python source" "$(put "$work/src.py" -vv)" 100000 \
  "$(grep -o '([0-9.]*×[^)]*)' "$work/cp.err" | head -n1)"
row "PUT 100 KB of Python source, --no-compress" "$(put "$work/src.py" --no-compress)" 100000
# cp onto the board's copy of a one-line-edited file: a delta of it.
sed '100s/$/  # edited/' "$work/src.py" > "$work/edited.py"
t=$(now)
"$wm" cp -vv "$work/edited.py" "$b:/up" > /dev/null 2> "$work/cp.err" || { echo "cp failed: $(tail -n1 "$work/cp.err")" >&2; exit 1; }
row "cp of it again, one line edited" "$(since "$t" 2)" 0 \
  "$(grep -o '[0-9]* B sent on the wire' "$work/cp.err" | head -n1)"
cmp -s "$work/edited.py" "$work/root/up" || { echo "upload of edited.py corrupted" >&2; exit 1; }
row "PUT 100 KB of noise" "$(put "$work/noise.bin" -vv)" 100000 \
  "$(grep -o 'sent raw.*' "$work/cp.err" | head -n1)"
if [ -n "$cli" ]; then
  for f in src.py noise.bin; do
    rm -f "$work/root/up"; t=$(now)
    python3 "$cli" -p bench "$work/$f" "$b:/up" > /dev/null
    row "PUT 100 KB of $f, webrepl_cli.py" "$(since "$t" 2)" 100000
  done
  # The board takes one client: it must notice that one has gone.
  sleep 2
fi
t=$(now)
"$wm" cp -vv -r "$tree/." "$b:/tree" > /dev/null 2> "$work/cp.err" || { echo "cp -r failed: $(grep -v INFO "$work/cp.err" | tail -n 3)" >&2; exit 1; }
row "cp -r of $tree_files Python files, $tree_bytes B" "$(since "$t" 2)" "$tree_bytes" \
  "$(grep -o '([0-9.]*×[^)]*)' "$work/cp.err" | head -n1)"
diff -r "$tree" "$work/root/tree" > /dev/null || { echo "the tree differs on the board" >&2; exit 1; }

# Saves through the mount of a cached 100 KB .py; the board holds 214
# files in all (the issue's tree), the rest small ones written straight to
# its flash.
cp "$work/src.py" "$work/root/edit.py"
have=$(find "$work/root" -type f | wc -l)
for i in $(seq $((214 - have))); do
  mkdir -p "$work/root/more/d$((i % 12))"
  echo "x = $i" > "$work/root/more/d$((i % 12))/f$i.py"
done
tree_all=$(find "$work/root" -type f ! -name '.*' | wc -l)
t=$(now)
"$wm" -v "$b" "$mnt" 2> "$work/mount.log" &
for _ in $(seq 300); do mountpoint -q "$mnt" && break; sleep 0.05; done
find "$mnt" > /dev/null
row "mount, then the tree listed ($tree_all files)" "$(since "$t" 2)" 0
cat "$mnt/edit.py" > /dev/null
on_board() { # waits until the board's edit.py is what the mount shows
  for _ in $(seq 600); do cmp -s "$mnt/edit.py" "$work/root/edit.py" && return; sleep 0.01; done
  echo "the save never reached the board" >&2; exit 1
}
t=$(now)
sed -i '100s/$/  # edited/' "$mnt/edit.py"
on_board
row "one-line edit of a cached 100 KB .py, sed -i" "$(since "$t" 2)" 0
t=$(now)
printf 'X' | dd of="$mnt/edit.py" bs=1 seek=5000 conv=notrunc status=none
on_board
row "one-line edit of a cached 100 KB .py, in place" "$(since "$t" 2)" 0
"$wm" unmount "$mnt"
grep -E 'compressed|delta|raw' "$work/mount.log" | sed 's/^/  mount: /' | tail -n 4 || true
