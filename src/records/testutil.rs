//! Batch builders for tests: this crate's unit tests (`cfg(test)`) and, through the `test-util`
//! feature, the integration tests, protocol-tests and the load generator. Not part of a broker
//! build: the module only exists under `cfg(test)` or that feature, which only the dev-dependency
//! in Cargo.toml turns on.

use super::batch::{compute_crc, Compression, HEADER_LEN};
use super::compression::compress;
use super::varint::{put_nullable_bytes, put_varlong};

/// A record for [`build_batch`]: (key, value, headers, absolute timestamp).
pub type TestRecord<'a> = (
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    Vec<(&'a str, &'a [u8])>,
    i64,
);

/// Encodes the uncompressed records section for `records`, with offset deltas 0.. and
/// timestamp deltas relative to the first record's timestamp.
pub fn encode_records(records: &[TestRecord<'_>]) -> Vec<u8> {
    let base_ts = records.first().map_or(0, |r| r.3);
    let mut out = Vec::new();
    for (i, (key, value, headers, ts)) in records.iter().enumerate() {
        let mut body = vec![0u8];
        put_varlong(&mut body, ts - base_ts);
        put_varlong(&mut body, i as i64);
        put_nullable_bytes(&mut body, *key);
        put_nullable_bytes(&mut body, *value);
        put_varlong(&mut body, headers.len() as i64);
        for (k, v) in headers {
            put_nullable_bytes(&mut body, Some(k.as_bytes()));
            put_nullable_bytes(&mut body, Some(v));
        }
        put_varlong(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    out
}

/// Builds a complete magic-2 batch (base offset 0, leader epoch -1) around an already encoded,
/// possibly compressed records section, with a correct CRC.
#[allow(
    clippy::too_many_arguments,
    reason = "one parameter per batch header field"
)]
pub fn build_batch_from_body(
    body: &[u8],
    record_count: i32,
    codec: Compression,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    let batch_len = (HEADER_LEN - 12 + body.len()) as i32;
    b.extend_from_slice(&batch_len.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&i16::from(codec.id()).to_be_bytes());
    b.extend_from_slice(&(record_count - 1).to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&max_timestamp.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&base_sequence.to_be_bytes());
    b.extend_from_slice(&record_count.to_be_bytes());
    b.extend_from_slice(body);
    fix_crc(&mut b);
    b
}

/// Recomputes and stores the CRC of a batch (after a test edits CRC-covered bytes).
pub fn fix_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Builds a magic-2 batch holding `records`, compressed with `codec`, with a correct CRC.
/// Panics only if compression itself fails (test helper).
pub fn build_batch(
    records: &[TestRecord<'_>],
    codec: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let raw = encode_records(records);
    let body = compress(codec, &raw).unwrap_or_default();
    let base_ts = records.first().map_or(-1, |r| r.3);
    let max_ts = records.iter().map(|r| r.3).max().unwrap_or(-1);
    build_batch_from_body(
        &body,
        records.len() as i32,
        codec,
        base_ts,
        max_ts,
        producer_id,
        producer_epoch,
        base_sequence,
    )
}

/// Convenience: a batch of `n` uncompressed records with `value_len`-byte values and timestamps
/// `ts, ts+1, ...`.
pub fn simple_batch(n: usize, value_len: usize, ts: i64) -> Vec<u8> {
    let value = vec![b'x'; value_len];
    let recs: Vec<TestRecord<'_>> = (0..n)
        .map(|i| (None, Some(&value[..]), Vec::new(), ts + i as i64))
        .collect();
    build_batch(&recs, Compression::None, -1, -1, -1)
}

/// Like [`simple_batch`] but idempotent: with producer id, epoch and base sequence.
pub fn idempotent_batch(n: usize, producer_id: i64, epoch: i16, base_seq: i32) -> Vec<u8> {
    let recs: Vec<TestRecord<'_>> = (0..n)
        .map(|i| (None, Some(&b"v"[..]), Vec::new(), i as i64))
        .collect();
    build_batch(&recs, Compression::None, producer_id, epoch, base_seq)
}

/// [`build_batch`] marked transactional (attributes bit 4), as a transactional producer sends.
pub fn transactional_batch(
    records: &[TestRecord<'_>],
    codec: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let mut b = build_batch(records, codec, producer_id, producer_epoch, base_sequence);
    let attrs = i16::from_be_bytes([b[21], b[22]]) | crate::records::build::TRANSACTIONAL;
    b[21..23].copy_from_slice(&attrs.to_be_bytes());
    fix_crc(&mut b);
    b
}
