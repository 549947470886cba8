#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine, installing what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# Debug builds with optimised dependencies keep proptest and crash tests fast.
cargo build --workspace --all-targets
cargo test --workspace
