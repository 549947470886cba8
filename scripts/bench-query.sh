#!/usr/bin/env bash
# PromQL query benchmark: sonde vs Prometheus 2.42 vs VictoriaMetrics (Debian
# packages), same generated data (10k series x 24 h by default), same run.
#
# Usage: scripts/bench-query.sh [query_bench flags...]
#   e.g. scripts/bench-query.sh --series 10000 --hours 24 --runs 3
# Flags: cargo run --release --example query_bench -- --help
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
[ -x /usr/bin/victoria-metrics ] || missing+=(victoria-metrics)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    else
        echo "missing: ${missing[*]} -- install with: sudo apt-get install -y ${missing[*]}" >&2
        echo "(continuing; servers whose binary is missing are skipped)" >&2
    fi
fi
# The packages' systemd units would compete for CPU; the benchmark starts its own instances.
for svc in prometheus victoria-metrics; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        echo "note: the $svc service is running and will use CPU during the benchmark" >&2
    fi
done

JOBS=${CARGO_BUILD_JOBS:-1}
cargo build --release -j "$JOBS" --bin sonde
cargo build --release -j "$JOBS" --example query_bench
for p in prometheus victoria-metrics; do
    dpkg-query -W -f='${Package} ${Version}\n' "$p" 2>/dev/null || true
done
echo "+ target/release/examples/query_bench $*"
exec target/release/examples/query_bench "$@"
