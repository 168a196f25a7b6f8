#!/usr/bin/env bash
# Builds the test board: MicroPython's unix port from Debian's source package,
# with WebREPL, dupterm and the boards' REPL (scripts/board/variant). Cached:
# prints the binary's path, and rebuilds only when the variant changes.
# `build-board.sh esp8266` (or BOARD_VARIANT=esp8266) builds the same board
# with the ESP8266 port's 20 ms sleep after every binary transfer chunk
# (MICROPY_PY_WEBREPL_DELAY in ports/esp8266/mpconfigport.h); the default
# is the ESP32-like board, without it. `build-board.sh nodeflate` builds it
# without the `deflate` module, as older or trimmed firmware is.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
cache=${BOARD_CACHE:-$top/target/board-cache}
variant=$here/board/variant
case ${1:-${BOARD_VARIANT:-esp32}} in
  esp32) tag="" extra="" ;;
  esp8266) tag="esp8266-" extra="-DMICROPY_PY_WEBREPL_DELAY=20" ;;
  nodeflate) tag="nodeflate-" extra="-DMICROPY_PY_DEFLATE=0" ;;
  *) echo "unknown board variant ${1:-$BOARD_VARIANT} (esp32, esp8266, nodeflate)" >&2; exit 2 ;;
esac
stamp=$( (cat "$variant"/* "$0"; echo "$extra") | sha256sum | cut -c1-16)
bin=$cache/board-$tag$stamp
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

mkdir -p "$cache"
need=()
for p in build-essential pkg-config libffi-dev python3; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

src=$(ls -d "$cache"/micropython-[0-9]*/ 2>/dev/null | head -n1 || true)
if [ -z "$src" ]; then
  # Trixie's source, without touching the system's apt configuration; the
  # version is not pinned because trixie keeps only its current one.
  d=$cache/apt; mkdir -p "$d/lists/partial"
  echo "deb-src http://deb.debian.org/debian trixie main" > "$d/sources.list"
  o=(-o "Dir::Etc::sourcelist=$d/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$d/lists")
  apt-get "${o[@]}" update -qq >&2 2>/dev/null
  (cd "$cache" && apt-get "${o[@]}" source --download-only micropython >&2 2>/dev/null)
  tar -C "$cache" -xf "$(ls "$cache"/micropython_*.orig.tar.xz | head -n1)"
  src=$(ls -d "$cache"/micropython-[0-9]*/ | head -n1)
fi
src=${src%/}

# mpy-cross first: otherwise CFLAGS_EXTRA reaches it and it fails.
# MicroPython names its version after the git repo it finds: not ours.
export GIT_CEILING_DIRECTORIES=$cache
make -C "$src/mpy-cross" -j"$(nproc)" >&2
make -C "$src/ports/unix" -j"$(nproc)" VARIANT_DIR="$variant" BUILD="$cache/build-$tag$stamp" \
  MICROPY_PY_BTREE=0 MICROPY_PY_SSL=0 MICROPY_SSL_MBEDTLS=0 FROZEN_MANIFEST= \
  CFLAGS_EXTRA="-Wno-sign-compare $extra" PROG=micropython >&2
cp "$cache/build-$tag$stamp/micropython" "$bin.tmp" && mv "$bin.tmp" "$bin"
# Older builds of this board are dead weight in the CI cache (the other
# board's stay: their names differ in more than the stamp).
old="$tag????????????????"
find "$cache" -mindepth 1 -maxdepth 1 \( -name "build-$old" -o -name "board-$old" \) ! -name "*$stamp" -exec rm -rf {} +
echo "$bin"
