#!/usr/bin/env bash
# `webrepl-mount share` (the board's /remote) through the link emulator at a
# 10 ms round trip, unlimited and at an ESP32's 20 KB/s, on a board with an
# ESP32's 256-byte input ring. Prints, as the board times them: the import
# of a 10 KB module (three different ones) and a 50 KB read in 4 KB pieces.
source "$(dirname "$0")/bench/lib.sh"
mkdir -p "$work/root" "$work/share"
port=$(free_port)
"$board" -X "heapsize=${BOARD_HEAP:-128K}" scripts/board/listener.py "$port" bench "$work/root" 256 > "$work/board.log" 2>&1 &
for _ in $(seq 50); do grep -qs "board ready" "$work/board.log" && break; sleep 0.1; done
python3 - "$work/share" <<'PY'
import sys
d = sys.argv[1]
body = "".join("V%d = %d  # a line of a module of about ten kilobytes\n" % (i, i) for i in range(200))
for n in ("mod10k", "mod10k_b", "mod10k_c"):
    open("%s/%s.py" % (d, n), "w").write(body)
open(d + "/data50k.bin", "wb").write(bytes(i % 251 for i in range(51200)))
PY
echo "module: $(stat -c %s "$work/share/mod10k.py") B"
for rate in 0 20000; do
  extra=()
  label="10 ms RTT, unlimited"
  if [ "$rate" != 0 ]; then extra=(--rate "$rate"); label="10 ms RTT, $rate B/s"; fi
  coproc EMU { exec "$linkemu" --to "127.0.0.1:$port" --delay-ms 5 "${extra[@]}"; }
  read -r _ eport <&"${EMU[0]}"
  python3 scripts/bench/share.py "$wm" "$work/share" "127.0.0.1:$eport" "$label"
  kill "$EMU_PID"; wait "$EMU_PID" 2>/dev/null || true
  # The board notices its client gone.
  sleep 1
done
