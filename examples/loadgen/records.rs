//! Record batches for loadgen: build batches of synthetic values (compressible like text, so
//! lz4/zstd have something realistic to do) and walk fetched record sets without copying.

use anyhow::{bail, Result};
use gregor::records::testutil::build_batch;
use gregor::records::Compression;

/// Magic-2 batch header length; records start here.
const HEADER_LEN: usize = 61;

/// Parses a codec name as the bench scripts spell it.
pub fn codec(name: &str) -> Result<Compression> {
    Ok(match name {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => bail!("unknown codec {other}"),
    })
}

/// A tiny deterministic PRNG (xorshift64*): values must differ between records, or the
/// compressors would see one record repeated and report absurd ratios.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Words for synthetic values: log-line-like text that lz4 shrinks about 2x and zstd more,
/// closer to real payloads than either random bytes (incompressible) or zeros (trivial).
const WORDS: [&str; 32] = [
    "user",
    "order",
    "id",
    "status",
    "ok",
    "error",
    "timestamp",
    "region",
    "eu-west",
    "us-east",
    "amount",
    "currency",
    "EUR",
    "USD",
    "item",
    "quantity",
    "price",
    "session",
    "click",
    "view",
    "page",
    "/checkout",
    "/cart",
    "/home",
    "true",
    "false",
    "null",
    "level",
    "info",
    "warn",
    "latency_ms",
    "request",
];

/// Fills `out` (already sized) with word-salad text plus random numbers ("status=4711 ").
/// Allocation-free: it runs for every record of every batch loadgen builds.
pub fn fill_value(rng: &mut Rng, out: &mut [u8]) {
    let mut i = 0;
    while i < out.len() {
        let r = rng.next();
        let mut push = |b: u8| {
            if i < out.len() {
                out[i] = b;
                i += 1;
            }
        };
        for &b in WORDS[(r % 32) as usize].as_bytes() {
            push(b);
        }
        push(b'=');
        let mut n = (r >> 8) % 10_000;
        for d in [1000, 100, 10, 1] {
            push(b'0' + (n / d) as u8);
            n %= d;
        }
        push(b' ');
    }
}

/// Builds one batch of `count` records with `value_size`-byte values (no key, no headers).
/// `stamp` writes the first 8 bytes of each value when given (end-to-end latency probes).
pub fn batch(
    rng: &mut Rng,
    count: usize,
    value_size: usize,
    codec: Compression,
    stamp: Option<u64>,
) -> Vec<u8> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut values = vec![vec![0u8; value_size]; count];
    for v in &mut values {
        fill_value(rng, v);
        if let Some(t) = stamp {
            if v.len() >= 8 {
                v[..8].copy_from_slice(&t.to_be_bytes());
            }
        }
    }
    let recs: Vec<_> = values
        .iter()
        .map(|v| (None, Some(v.as_slice()), Vec::new(), now_ms))
        .collect();
    build_batch(&recs, codec, -1, -1, -1)
}

/// One complete batch found in a fetched record set.
pub struct BatchView<'a> {
    pub base_offset: i64,
    pub last_offset: i64,
    pub attributes: i16,
    pub bytes: &'a [u8],
}

/// Splits a record set into its complete batches; a trailing partial batch (allowed in Fetch
/// responses) is ignored, and the caller re-fetches from after the last complete one.
pub fn batches(set: &[u8]) -> Vec<BatchView<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while set.len() - pos >= HEADER_LEN {
        let b = &set[pos..];
        let base = i64::from_be_bytes(b[0..8].try_into().unwrap_or_default());
        let len = i32::from_be_bytes(b[8..12].try_into().unwrap_or_default());
        let total = 12 + len.max(0) as usize;
        if len < (HEADER_LEN - 12) as i32 || total > b.len() {
            break;
        }
        let attributes = i16::from_be_bytes([b[21], b[22]]);
        let delta = i32::from_be_bytes(b[23..27].try_into().unwrap_or_default());
        out.push(BatchView {
            base_offset: base,
            last_offset: base + i64::from(delta),
            attributes,
            bytes: &b[..total],
        });
        pos += total;
    }
    out
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut z: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// Calls `f` with each record value of an uncompressed batch (latency probes are sent
/// uncompressed precisely so the consumer can read them this cheaply).
pub fn for_each_value(batch: &BatchView<'_>, mut f: impl FnMut(&[u8])) -> Result<()> {
    if batch.attributes & 0x7 != 0 {
        bail!("latency probe batches must be uncompressed");
    }
    let b = batch.bytes;
    let count = i32::from_be_bytes(b[57..61].try_into()?);
    let mut pos = HEADER_LEN;
    for _ in 0..count {
        let at = pos;
        let bad = || anyhow::anyhow!("malformed record at byte {at}");
        let len = varint(b, &mut pos).ok_or_else(bad)? as usize;
        let end = pos + len;
        let mut p = pos + 1; // attributes
        varint(b, &mut p).ok_or_else(bad)?; // timestamp delta
        varint(b, &mut p).ok_or_else(bad)?; // offset delta
        let klen = varint(b, &mut p).ok_or_else(bad)?;
        if klen > 0 {
            p += klen as usize;
        }
        let vlen = varint(b, &mut p).ok_or_else(bad)?;
        if vlen > 0 {
            let v = b.get(p..p + vlen as usize).ok_or_else(bad)?;
            f(v);
        }
        pos = end;
    }
    Ok(())
}
