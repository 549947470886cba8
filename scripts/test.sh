#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine, installing what it needs:
# Debian's prometheus (the reference server for differential tests),
# victoria-metrics (the reference for Consul discovery), the node and
# blackbox exporters (real scrape targets), openssl (TLS test certificates)
# and curl (HTTP/2 checks); then fuzzes every decoder and parser for 20 s
# each (cargo-fuzz with the nightly toolchain installed beside stable).
# Runs as root: some tests mount a small tmpfs (disk-full tests).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# One-shot builds gain nothing from incremental caches, which double the
# target directory (see the profile notes in Cargo.toml).
export CARGO_INCREMENTAL=0

need=()
[ -x /usr/bin/prometheus ] || need+=(prometheus)
[ -x /usr/bin/victoria-metrics ] || need+=(victoria-metrics)
[ -x /usr/bin/prometheus-node-exporter ] || need+=(prometheus-node-exporter)
[ -x /usr/bin/prometheus-blackbox-exporter ] || need+=(prometheus-blackbox-exporter)
[ -x /usr/bin/prometheus-alertmanager ] || need+=(prometheus-alertmanager)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing ${need[*]}: run as root, or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

cargo build --workspace --all-targets
cargo test --workspace
# The vendored PromQL parser is a workspace of its own (see its SONDE.md):
# its own tests run here, on their own cargo call.
cargo test --manifest-path vendor/promql-parser/Cargo.toml --target-dir target/vendor-parser
FUZZ_SECONDS=${FUZZ_SECONDS:-20} scripts/fuzz.sh
