//! Deterministic node_exporter-like workload shared by benchmarks and tests.
//!
//! Series are laid out host by host ([`SERIES_PER_HOST`] per `instance`,
//! `host-NN:9100`, `job="node"`); within a host, series `j` uses slot `j % 20`
//! of the table below and the per-slot index `q = j / 20` as its
//! device/cpu/sensor label, so every label set is unique. The mix is:
//!
//! | share | class | metrics | values |
//! |---|---|---|---|
//! | 10% | noisy gauges | `node_hwmon_temp_celsius`, `node_schedstat_running_ratio` | slow sine + random noise: all 52 mantissa bits vary |
//! | 40% | integer counters | network bytes/packets, disk bytes/ops, interrupts, errors, drops | 3/8 high-rate (bytes, log-uniform 10^3..10^6 per scrape), 2/8 medium (1..200), 1/8 bursty disk (512-byte sectors, 40% idle scrapes), 2/8 mostly idle (errors/drops: +1..5 in 1% of scrapes) |
//! | 15% | float counters | `node_cpu_seconds_total{mode=idle,user,system}` | USER_HZ ticks / 100 (e.g. 12345.67), per-cpu busy level drifting slowly |
//! | 20% | integer gauges | memory/filesystem bytes (4096 multiples), thread and socket counts | change in 5–30% of scrapes |
//! | 15% | constants | `node_network_info` (=1), filesystem sizes, link speeds | never change |
//!
//! Timestamps are exactly `interval_ms` apart (Prometheus aligns scrape
//! timestamps within 2 ms). Randomness comes from a self-contained splitmix64,
//! so the same [`WorkloadConfig`] always produces the same data.

/// Series per `instance` label.
pub const SERIES_PER_HOST: usize = 400;

/// Parameters of a [`Workload`].
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Number of series.
    pub series: usize,
    /// Scrape interval in milliseconds.
    pub interval_ms: i64,
    /// Timestamp of the first scrape.
    pub start_ms: i64,
    /// Seed of the generator.
    pub seed: u64,
}

/// The five workload classes (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Full-precision noisy gauge.
    NoisyGauge,
    /// Counter with integer increments.
    IntCounter,
    /// Counter with 2-decimal increments (cpu seconds).
    FloatCounter,
    /// Integer gauge that changes occasionally.
    IntGauge,
    /// Constant.
    Constant,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Noisy {
        base: f64,
        amp: f64,
        noise: f64,
        period: f64,
        phase: f64,
    },
    Counter {
        rate: f64,
        p_change: f64,
        unit: i64,
        min: i64,
    },
    Cpu {
        mode: u8,
        busy: f64,
    },
    Gauge {
        p_change: f64,
        unit: i64,
        max_step: i64,
    },
    Constant,
}

struct Slot {
    name: &'static str,
    label: &'static str,
    prefix: &'static str,
    class: Class,
}

const SLOTS: [Slot; 20] = [
    Slot {
        name: "node_hwmon_temp_celsius",
        label: "sensor",
        prefix: "temp",
        class: Class::NoisyGauge,
    },
    Slot {
        name: "node_schedstat_running_ratio",
        label: "cpu",
        prefix: "",
        class: Class::NoisyGauge,
    },
    Slot {
        name: "node_network_receive_bytes_total",
        label: "device",
        prefix: "eth",
        class: Class::IntCounter,
    },
    Slot {
        name: "node_network_transmit_bytes_total",
        label: "device",
        prefix: "eth",
        class: Class::IntCounter,
    },
    Slot {
        name: "node_network_receive_packets_total",
        label: "device",
        prefix: "eth",
        class: Class::IntCounter,
    },
    Slot {
        name: "node_disk_read_bytes_total",
        label: "device",
        prefix: "nvme",
        class: Class::IntCounter,
    },
    Slot {
        name: "node_interrupts_total",
        label: "cpu",
        prefix: "",
        class: Class::IntCounter,
    },
    Slot {
        name: "node_network_receive_errs_total",
        label: "device",
        prefix: "eth",
        class: Class::IntCounter,
    },
    Slot {
        name: "node_network_receive_drop_total",
        label: "device",
        prefix: "eth",
        class: Class::IntCounter,
    },
    Slot {
        name: "node_disk_writes_completed_total",
        label: "device",
        prefix: "nvme",
        class: Class::IntCounter,
    },
    Slot {
        name: "node_cpu_seconds_total",
        label: "cpu",
        prefix: "",
        class: Class::FloatCounter,
    },
    Slot {
        name: "node_cpu_seconds_total",
        label: "cpu",
        prefix: "",
        class: Class::FloatCounter,
    },
    Slot {
        name: "node_cpu_seconds_total",
        label: "cpu",
        prefix: "",
        class: Class::FloatCounter,
    },
    Slot {
        name: "node_memory_numa_MemFree",
        label: "node",
        prefix: "",
        class: Class::IntGauge,
    },
    Slot {
        name: "node_filesystem_avail_bytes",
        label: "device",
        prefix: "sd",
        class: Class::IntGauge,
    },
    Slot {
        name: "node_processes_threads_state",
        label: "state",
        prefix: "s",
        class: Class::IntGauge,
    },
    Slot {
        name: "node_memory_numa_FilePages",
        label: "node",
        prefix: "",
        class: Class::IntGauge,
    },
    Slot {
        name: "node_network_info",
        label: "device",
        prefix: "eth",
        class: Class::Constant,
    },
    Slot {
        name: "node_filesystem_size_bytes",
        label: "device",
        prefix: "sd",
        class: Class::Constant,
    },
    Slot {
        name: "node_network_speed_bytes",
        label: "device",
        prefix: "eth",
        class: Class::Constant,
    },
];

const CPU_MODES: [&str; 3] = ["idle", "user", "system"];
const TICKS_PER_SCRAPE_PER_S: f64 = 100.0; // USER_HZ

/// splitmix64.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo).max(1) as u64) as i64
    }
}

/// A deterministic node_exporter-like scrape generator.
pub struct Workload {
    cfg: WorkloadConfig,
    rng: Rng,
    kinds: Vec<Kind>,
    /// Integer state (counter ticks, gauge value, or constant).
    state: Vec<i64>,
    values: Vec<f64>,
    t: i64,
    scrapes: u64,
}

impl Workload {
    /// A workload at its first scrape.
    pub fn new(cfg: WorkloadConfig) -> Self {
        let mut kinds = Vec::with_capacity(cfg.series);
        let mut state = Vec::with_capacity(cfg.series);
        for i in 0..cfg.series {
            let mut r = Rng(cfg.seed ^ (i as u64).wrapping_mul(0xd6e8_feb8_6659_fd93));
            let j = i % SERIES_PER_HOST;
            let slot = j % SLOTS.len();
            let (kind, init) = match slot {
                0 => (
                    Kind::Noisy {
                        base: 35.0 + 30.0 * r.f64(),
                        amp: 2.0 + 6.0 * r.f64(),
                        noise: 0.5,
                        period: 3_600_000.0 * (1.0 + 5.0 * r.f64()),
                        phase: std::f64::consts::TAU * r.f64(),
                    },
                    0,
                ),
                1 => (
                    Kind::Noisy {
                        base: 0.2 + 0.5 * r.f64(),
                        amp: 0.1 * r.f64(),
                        noise: 0.05,
                        period: 86_400_000.0 * r.f64().max(0.1),
                        phase: std::f64::consts::TAU * r.f64(),
                    },
                    0,
                ),
                // High-rate byte counters: log-uniform 1e3..1e6 bytes per scrape.
                2 | 3 => (
                    Kind::Counter {
                        rate: 10f64.powf(3.0 + 3.0 * r.f64()),
                        p_change: 1.0,
                        unit: 1,
                        min: 0,
                    },
                    r.range(0, 1 << 40),
                ),
                4 | 9 => (
                    Kind::Counter {
                        rate: 1.0 + 200.0 * r.f64(),
                        p_change: 1.0,
                        unit: 1,
                        min: 0,
                    },
                    r.range(0, 1 << 30),
                ),
                5 => (
                    Kind::Counter {
                        rate: 10f64.powf(1.0 + 3.0 * r.f64()),
                        p_change: 0.6,
                        unit: 512,
                        min: 8,
                    },
                    r.range(0, 1 << 30) * 512,
                ),
                6 => (
                    Kind::Counter {
                        rate: 10f64.powf(2.0 + 2.0 * r.f64()),
                        p_change: 1.0,
                        unit: 1,
                        min: 0,
                    },
                    r.range(0, 1 << 34),
                ),
                7 | 8 => (
                    Kind::Counter {
                        rate: 3.0,
                        p_change: 0.01,
                        unit: 1,
                        min: 1,
                    },
                    r.range(0, 1000),
                ),
                10..=12 => (
                    Kind::Cpu {
                        mode: (slot - 10) as u8,
                        busy: 0.02 + 0.3 * r.f64(),
                    },
                    r.range(0, 1 << 32),
                ),
                13 | 16 => (
                    Kind::Gauge {
                        p_change: 0.3,
                        unit: 4096,
                        max_step: 2000,
                    },
                    r.range(1 << 18, 1 << 22) * 4096,
                ),
                14 => (
                    Kind::Gauge {
                        p_change: 0.05,
                        unit: 4096,
                        max_step: 50_000,
                    },
                    r.range(1 << 20, 1 << 26) * 4096,
                ),
                15 => (
                    Kind::Gauge {
                        p_change: 0.2,
                        unit: 1,
                        max_step: 5,
                    },
                    r.range(10, 2000),
                ),
                17 => (Kind::Constant, 1),
                18 => (Kind::Constant, r.range(1 << 20, 1 << 28) * 4096),
                _ => (
                    Kind::Constant,
                    [125_000_000i64, 1_250_000_000, 3_125_000_000]
                        .get(r.range(0, 3) as usize)
                        .copied()
                        .unwrap_or(125_000_000),
                ),
            };
            kinds.push(kind);
            state.push(init);
        }
        let mut w = Workload {
            rng: Rng(cfg.seed.wrapping_add(0x5eed)),
            values: vec![0.0; cfg.series],
            t: cfg.start_ms,
            scrapes: 0,
            kinds,
            state,
            cfg,
        };
        w.render();
        w
    }

    /// The class of series `i`.
    pub fn class(&self, i: usize) -> Class {
        SLOTS
            .get(i % SERIES_PER_HOST % SLOTS.len())
            .map_or(Class::Constant, |s| s.class)
    }

    /// Label pairs of series `i`, sorted by name, including `__name__`,
    /// `instance` (`host-NN:9100`), `job="node"` and metric-specific labels.
    pub fn labels(&self, i: usize) -> Vec<(String, String)> {
        let host = i / SERIES_PER_HOST;
        let j = i % SERIES_PER_HOST;
        let slot_idx = j % SLOTS.len();
        let q = j / SLOTS.len();
        let Some(slot) = SLOTS.get(slot_idx) else {
            return Vec::new();
        };
        let mut l = vec![
            ("__name__".to_string(), slot.name.to_string()),
            ("instance".to_string(), format!("host-{host:02}:9100")),
            ("job".to_string(), "node".to_string()),
            (slot.label.to_string(), format!("{}{}", slot.prefix, q)),
        ];
        match slot.class {
            Class::FloatCounter => {
                let mode = CPU_MODES.get(slot_idx - 10).copied().unwrap_or("idle");
                l.push(("mode".to_string(), mode.to_string()));
            }
            Class::NoisyGauge if slot_idx == 0 => {
                l.push(("chip".to_string(), "platform_coretemp_0".to_string()))
            }
            _ if slot.label == "device" && slot.prefix == "sd" => {
                l.push(("fstype".to_string(), "ext4".to_string()));
                l.push(("mountpoint".to_string(), format!("/data{q}")));
            }
            _ => {}
        }
        l.sort();
        l
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.cfg.series
    }

    /// Advances one scrape: returns the timestamp and one value per series
    /// (same order as [`Workload::labels`]). The first call returns the
    /// initial values at `start_ms`.
    pub fn next_scrape(&mut self) -> (i64, &[f64]) {
        if self.scrapes > 0 {
            self.t += self.cfg.interval_ms;
            self.step();
            self.render();
        }
        self.scrapes += 1;
        (self.t, &self.values)
    }

    fn step(&mut self) {
        let secs = self.cfg.interval_ms as f64 / 1000.0;
        let r = &mut self.rng;
        for (kind, st) in self.kinds.iter_mut().zip(self.state.iter_mut()) {
            match kind {
                Kind::Counter {
                    rate,
                    p_change,
                    unit,
                    min,
                } => {
                    if r.f64() < *p_change {
                        let inc = (*rate * (0.6 + 0.8 * r.f64())).round() as i64;
                        *st += inc.max(*min) * *unit;
                    }
                }
                Kind::Cpu { mode, busy } => {
                    // Busy fraction drifts slowly.
                    *busy = (*busy + 0.01 * (r.f64() - 0.5)).clamp(0.005, 0.95);
                    let total = TICKS_PER_SCRAPE_PER_S * secs;
                    let share = match mode {
                        0 => 1.0 - *busy,
                        1 => *busy * 0.7,
                        _ => *busy * 0.3,
                    };
                    let jitter = 0.9 + 0.2 * r.f64();
                    *st += (total * share * jitter).round() as i64;
                }
                Kind::Gauge {
                    p_change,
                    unit,
                    max_step,
                } => {
                    if r.f64() < *p_change {
                        let step = r.range(-*max_step, *max_step + 1) * *unit;
                        *st = (*st + step).max(*unit);
                    }
                }
                Kind::Noisy { .. } | Kind::Constant => {}
            }
        }
    }

    fn render(&mut self) {
        let t = self.t as f64;
        let r = &mut self.rng;
        for ((v, kind), &st) in self.values.iter_mut().zip(&self.kinds).zip(&self.state) {
            *v = match *kind {
                Kind::Noisy {
                    base,
                    amp,
                    noise,
                    period,
                    phase,
                } => {
                    base + amp * (t / period * std::f64::consts::TAU + phase).sin()
                        + noise * (r.f64() - 0.5)
                }
                Kind::Cpu { .. } => st as f64 / 100.0,
                _ => st as f64,
            };
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::chunk::{decode, encode_cold, encode_xor, Encoding};

    fn cfg(series: usize) -> WorkloadConfig {
        WorkloadConfig {
            series,
            interval_ms: 15_000,
            start_ms: 1_700_000_000_000,
            seed: 42,
        }
    }

    #[test]
    fn deterministic_and_labelled() {
        let mut a = Workload::new(cfg(SERIES_PER_HOST + 5));
        let mut b = Workload::new(cfg(SERIES_PER_HOST + 5));
        for k in 0..3 {
            let (ta, va) = a.next_scrape();
            let va = va.to_vec();
            let (tb, vb) = b.next_scrape();
            assert_eq!(ta, 1_700_000_000_000 + k * 15_000);
            assert_eq!(
                (ta, va.iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
                (tb, vb.iter().map(|v| v.to_bits()).collect())
            );
        }
        let mut seen = std::collections::HashSet::new();
        for i in 0..a.series_count() {
            let l = a.labels(i);
            assert!(l.windows(2).all(|w| w[0].0 < w[1].0), "{l:?}");
            assert!(l.iter().any(|(k, v)| k == "job" && v == "node"));
            assert!(l.iter().any(|(k, _)| k == "__name__"));
            assert!(seen.insert(l), "duplicate labels for series {i}");
        }
        assert!(a
            .labels(SERIES_PER_HOST)
            .contains(&("instance".to_string(), "host-01:9100".to_string())));
    }

    /// 1000 series x 24 h at 15 s is too slow in debug mode; 200 series (every
    /// slot 10 times) x 5760 samples gives the same per-class figures.
    #[test]
    fn cold_bytes_per_sample() {
        let series = 200;
        let n = 5760;
        let mut w = Workload::new(cfg(series));
        let mut ts = Vec::with_capacity(n);
        let mut cols: Vec<Vec<f64>> = (0..series).map(|_| Vec::with_capacity(n)).collect();
        for _ in 0..n {
            let (t, vs) = w.next_scrape();
            ts.push(t);
            for (c, &v) in cols.iter_mut().zip(vs) {
                c.push(v);
            }
        }
        let classes = [
            Class::NoisyGauge,
            Class::IntCounter,
            Class::FloatCounter,
            Class::IntGauge,
            Class::Constant,
        ];
        let mut per_class = [(0usize, 0usize, 0usize); 5];
        for (i, c) in cols.iter().enumerate() {
            let cold = encode_cold(&ts, c).expect("cold");
            let xor = encode_xor(&ts, c).expect("xor");
            let (mut dt, mut dv) = (Vec::new(), Vec::new());
            decode(Encoding::Cold, &cold, &mut dt, &mut dv).expect("decode");
            assert_eq!(dt, ts);
            assert!(dv.iter().zip(c).all(|(a, b)| a.to_bits() == b.to_bits()));
            let k = classes.iter().position(|&x| x == w.class(i)).unwrap_or(0);
            per_class[k].0 += cold.len();
            per_class[k].1 += xor.len();
            per_class[k].2 += n;
        }
        let (mut cold, mut xor, mut samples) = (0, 0, 0);
        for (cl, &(c, x, s)) in classes.iter().zip(&per_class) {
            println!(
                "{cl:?}: cold {:.3} B/sample, xor {:.3} B/sample",
                c as f64 / s as f64,
                x as f64 / s as f64
            );
            cold += c;
            xor += x;
            samples += s;
        }
        let bps = cold as f64 / samples as f64;
        println!(
            "total: cold {bps:.3} B/sample, xor {:.3} B/sample",
            xor as f64 / samples as f64
        );
        assert!(bps < 1.30, "cold bytes/sample {bps}");
    }
}
