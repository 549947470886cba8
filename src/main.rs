//! sonde: a Prometheus-compatible time-series database.
fn main() {}
