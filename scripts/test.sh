#!/usr/bin/env bash
# The test suite: installs what it needs (scripts/deps.sh), builds the test
# board (cached under target/), checks formatting and lints, runs every test
# (or, given arguments, `cargo test` with them), then checks that it left
# nothing behind.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
scripts/deps.sh
# Installing the tool brings none of the packages only the tests use.
tool=$(scripts/install.sh --print-packages)
for p in $(scripts/deps.sh --test-only); do
  if grep -qx "$p" <<<"$tool"; then
    echo "scripts/install.sh would install $p, which only the tests use" >&2
    exit 1
  fi
done
scripts/build-board.sh >/dev/null
# fsx (crates.io), the file system exerciser the mount tests run; cached.
if [ ! -x target/tools/bin/fsx ]; then
  mkdir -p target/tools
  cargo install --quiet --locked --root "$PWD/target/tools" fsx
fi

# Every directory and mount of the suite is made under its own TMPDIR, and
# every process it starts carries its mark in the environment: whatever of
# either is left at the end leaked, whether the tests passed or not.
suite=$(mktemp -d /tmp/webrepl-tests.XXXXXX)
# As /tmp itself: the tests that act as another user (setpriv) reach their
# files through it.
chmod 1777 "$suite"
export TMPDIR=$suite WEBREPL_TEST_SUITE=$suite
leftovers() {
  local rc=$? leaked=() pid cmd mnt
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" != $$ ] || continue
    grep -qazxF "WEBREPL_TEST_SUITE=$suite" "$p/environ" 2>/dev/null || continue
    cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null | cut -c1-120) || continue
    [ -n "$cmd" ] || continue
    leaked+=("process $pid: $cmd")
    kill -9 "$pid" 2>/dev/null || true
  done
  while read -r _ mnt _; do
    case "$mnt" in "$suite"/*)
      leaked+=("mount $mnt")
      umount -l "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true ;;
    esac
  done < <(sort -r -k2 /proc/mounts)
  for e in "$suite"/* "$suite"/.[!.]*; do
    [ -e "$e" ] && leaked+=("directory or file $e")
  done
  rm -rf "$suite" 2>/dev/null || true
  if [ ${#leaked[@]} -gt 0 ]; then
    echo "The test suite left these behind (now removed):" >&2
    printf '  %s\n' "${leaked[@]}" >&2
    [ $rc -ne 0 ] || rc=1
  fi
  exit $rc
}
trap leftovers EXIT

if [ $# -gt 0 ]; then
  cargo test "$@"
  exit
fi
cargo fmt --check
cargo clippy --quiet --all-targets -- -D warnings
cargo test --all-targets
# The deploy and mount tests again on a board short of RAM (an ESP8266's
# heap, or an ESP32 whose program holds half of it).
TEST_BOARD_HEAP_KB=64 cargo test --test deploy --test mount
