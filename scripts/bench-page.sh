#!/usr/bin/env bash
# The page's figures (issue: page ready <= 1 s, then <= 0.5 s; echo within 20 ms of term's;
# a 100 KB upload no slower than webrepl-mount cp + 10%), in a real headless
# Chromium against the test board behind an ESP32-like link.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build-board.sh >/dev/null
cargo build --quiet --release --example linkemu
cargo test --release --quiet --test page_bench page_figures -- --ignored --nocapture 2>&1 |
  grep -E '^(page ready|echo|upload|editor)'
