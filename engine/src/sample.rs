//! Sample values the store gives a meaning to: Prometheus' staleness marker,
//! a NaN with one exact bit pattern that ends a series (scrapes and rules
//! write it; PromQL treats a series as gone from it on).

/// Bit pattern of Prometheus' staleness marker (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a float.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True for the staleness marker (and only for it: other NaNs are values).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}
