#!/usr/bin/env bash
# Makes docs/page.png, the README's picture of the page, in a real headless
# Chromium against the test board.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build-board.sh >/dev/null
cargo test --quiet --test page_bench screenshot -- --ignored --nocapture 2>&1 | grep '^wrote'
