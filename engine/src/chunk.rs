//! TEMPORARY stand-in (raw encoding) until the real codec lands.
#![allow(missing_docs, clippy::unwrap_used)]
use crate::error::{Error, Result};
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding { Xor = 1, Cold = 2 }
impl Encoding { pub fn from_u8(b: u8) -> Option<Encoding> { match b { 1 => Some(Encoding::Xor), 2 => Some(Encoding::Cold), _ => None } } }
#[derive(Default, Clone)]
pub struct XorAppender { buf: Vec<u8>, n: usize, min: i64, max: i64 }
impl XorAppender {
    pub fn new() -> Self { XorAppender { buf: vec![0, 0], n: 0, min: 0, max: 0 } }
    pub fn append(&mut self, t: i64, v: f64) -> Result<()> {
        if self.n == 0 { self.min = t; }
        self.max = t; self.n += 1;
        self.buf.extend_from_slice(&t.to_le_bytes()); self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
        let n = self.n as u16; self.buf[0..2].copy_from_slice(&n.to_be_bytes()); Ok(())
    }
    pub fn len(&self) -> usize { self.n }
    pub fn is_empty(&self) -> bool { self.n == 0 }
    pub fn bytes(&self) -> &[u8] { &self.buf }
    pub fn min_t(&self) -> i64 { self.min }
    pub fn max_t(&self) -> i64 { self.max }
}
pub fn encode_xor(ts: &[i64], vs: &[f64]) -> Result<Vec<u8>> { let mut a = XorAppender::new(); for (t, v) in ts.iter().zip(vs) { a.append(*t, *v)?; } Ok(a.buf) }
pub fn encode_cold(ts: &[i64], vs: &[f64]) -> Result<Vec<u8>> { encode_xor(ts, vs) }
pub fn decode(_enc: Encoding, data: &[u8], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> Result<()> {
    let n = num_samples(Encoding::Xor, data)?;
    if data.len() != 2 + 16 * n { return Err(Error::corruption("chunk", 0, "bad length")); }
    for c in data[2..].chunks_exact(16) { ts.push(i64::from_le_bytes(c[0..8].try_into().unwrap())); vs.push(f64::from_bits(u64::from_le_bytes(c[8..16].try_into().unwrap()))); }
    Ok(())
}
pub fn num_samples(_enc: Encoding, data: &[u8]) -> Result<usize> { if data.len() < 2 { return Err(Error::corruption("chunk", 0, "short")); } Ok(u16::from_be_bytes([data[0], data[1]]) as usize) }
