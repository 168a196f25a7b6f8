#!/usr/bin/env bash
# The test suite: installs what it needs, builds the test board (cached under
# target/), checks formatting and lints, runs every test.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
scripts/deps.sh
scripts/build-board.sh >/dev/null
# fsx (crates.io), the file system exerciser the mount tests run; cached.
if [ ! -x target/tools/bin/fsx ]; then
  mkdir -p target/tools
  cargo install --quiet --locked --root "$PWD/target/tools" fsx
fi
cargo fmt --check
cargo clippy --quiet --all-targets -- -D warnings
cargo test --all-targets
