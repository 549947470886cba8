#!/usr/bin/env bash
# Runs the cargo-fuzz targets with the nightly toolchain installed beside stable.
# Seeds each corpus with the committed regression inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
secs=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wal_segment chunk_decode block_index remote_write influx_line prometheus_config promql relabel exposition template)
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  cp -n fuzz/regressions/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
  (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=65536)
done
