#!/usr/bin/env bash
# Runs the cargo-fuzz targets with the nightly toolchain installed beside
# stable: one build of every target, then each for FUZZ_SECONDS (default 60;
# CI uses 20), seeded with the committed regression inputs. Targets run on a
# 64 MiB stack, the size of the server's runtime threads
# (server::THREAD_STACK_BYTES), so a recursion the server survives is not
# reported as a crash and one it does not survive is.
# A crash fails the script; its input is in fuzz/artifacts/<target>/:
# minimise it (cargo +nightly fuzz tmin), commit it under
# fuzz/regressions/<target>/ with a name saying what it caught, and fix it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
secs=${FUZZ_SECONDS:-60}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^sonde-fuzz$')
fi
ulimit -s $((64 * 1024))
(cd fuzz && cargo +nightly fuzz build)
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  cp -n fuzz/regressions/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
  rm -rf "fuzz/artifacts/$t"
  echo "fuzzing $t for ${secs}s"
  log=$(mktemp)
  if ! (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" -- \
    -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048) >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $t found a failing input: fuzz/artifacts/$t/" >&2
    rm -f "$log"
    exit 1
  fi
  grep -E "^#[0-9]+ +DONE" "$log" || true
  rm -f "$log"
done
echo "fuzzed ${#targets[@]} targets for ${secs}s each"
