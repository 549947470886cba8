#!/usr/bin/env bash
# Scrape benchmark: CPU per scraped sample of sonde vs Prometheus 2.42 vs
# VictoriaMetrics (Debian packages), all scraping the same fake exporters
# (500 targets x a recorded node_exporter payload by default) in the same run.
#
# Usage: scripts/bench-scrape.sh [scrape_bench flags...]
#   e.g. scripts/bench-scrape.sh --targets 500 --interval 5s --warmup 30 --duration 120
#        scripts/bench-scrape.sh --targets 20 --interval 1s --warmup 3 --duration 10   # smoke
# Flags: cargo run --release --example scrape_bench -- --help
# CARGO_TARGET_DIR is honoured (the binaries are taken from it).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
[ -x /usr/bin/victoria-metrics ] || missing+=(victoria-metrics)
# Its recorded scrape is the payload (else a built-in synthetic one is served).
[ -x /usr/bin/prometheus-node-exporter ] || missing+=(prometheus-node-exporter)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    else
        echo "missing: ${missing[*]} -- install with: sudo apt-get install -y ${missing[*]}" >&2
        echo "(continuing; servers whose binary is missing are skipped)" >&2
    fi
fi
# The packages' systemd units would compete for CPU (and node_exporter's would
# not matter: the benchmark records its own instance once at startup).
for svc in prometheus victoria-metrics; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        echo "note: the $svc service is running and will use CPU during the benchmark" >&2
    fi
done
# One listening socket per target plus a connection per target and server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

JOBS=${CARGO_BUILD_JOBS:-1}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -j "$JOBS" --bin sonde
cargo build --release -j "$JOBS" --example scrape_bench
for p in prometheus victoria-metrics prometheus-node-exporter; do
    dpkg-query -W -f='${Package} ${Version}\n' "$p" 2>/dev/null || true
done
args=("$@")
case " $* " in
    *" --sonde-bin"*) ;;
    *) args=(--sonde-bin "$TARGET/release/sonde" "${args[@]}") ;;
esac
echo "+ $TARGET/release/examples/scrape_bench ${args[*]}"
exec "$TARGET/release/examples/scrape_bench" "${args[@]}"
