//! Rewriting a batch with some of its records removed (log compaction), as Kafka does for
//! magic 2: the header keeps its base offset, last offset delta, base timestamp, attributes
//! (codec, timestamp type) and producer fields; kept records keep their offset and timestamp
//! deltas, keys, values and headers; the record count, max timestamp (CreateTime), length and
//! CRC are recomputed and the records are compressed again with the batch's own codec. Pure.

use super::batch::{BatchHeader, Compression, TimestampType, CODEC_MASK, HEADER_LEN};
use super::compression::compress;
use super::record_iter::{records, RecordInfo};
use super::varint::{put_nullable_bytes, put_varlong};
use super::RecordError;

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebuilt {
    /// Every record was kept: use the original bytes.
    Unchanged,
    /// No record was kept: drop the batch.
    Empty,
    /// The new batch.
    Batch(Vec<u8>),
}

/// Encodes one record exactly as it was framed in its batch.
fn encode_record(out: &mut Vec<u8>, r: &RecordInfo<'_>) {
    let mut body = vec![0u8];
    put_varlong(&mut body, r.timestamp_delta);
    put_varlong(&mut body, i64::from(r.offset_delta));
    put_nullable_bytes(&mut body, r.key);
    put_nullable_bytes(&mut body, r.value);
    put_varlong(&mut body, r.headers.len() as i64);
    for (k, v) in &r.headers {
        put_nullable_bytes(&mut body, Some(k));
        put_nullable_bytes(&mut body, *v);
    }
    put_varlong(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// Rebuilds `batch` (one whole stored batch) keeping the records for which `keep` is true.
/// Decompression is capped at `limit` bytes.
pub fn retain_records(
    batch: &[u8],
    limit: usize,
    mut keep: impl FnMut(&RecordInfo<'_>) -> bool,
) -> Result<Rebuilt, RecordError> {
    let h = BatchHeader::new(batch)
        .ok_or_else(|| RecordError::CorruptMessage("batch shorter than header".into()))?;
    let codec = h
        .compression()
        .ok_or(RecordError::UnsupportedCompression(h.compression_id()))?;
    let recs = records(batch, limit)?;
    let mut body = Vec::new();
    let mut kept = 0i32;
    let mut total = 0i32;
    let mut max_ts = -1i64;
    for r in recs.iter() {
        let r = r?;
        total += 1;
        if keep(&r) {
            kept += 1;
            // `r.timestamp` is base + delta, checked (only written back for CreateTime).
            max_ts = max_ts.max(r.timestamp);
            encode_record(&mut body, &r);
        }
    }
    if kept == total {
        return Ok(Rebuilt::Unchanged);
    }
    if kept == 0 {
        return Ok(Rebuilt::Empty);
    }
    let compressed = compress(codec, &body)?;
    let mut out = Vec::with_capacity(HEADER_LEN + compressed.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&compressed);
    let batch_length = i32::try_from(out.len() - 12)
        .map_err(|_| RecordError::InvalidRecord("rebuilt batch too large".into()))?;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    if h.timestamp_type() == TimestampType::CreateTime {
        out[35..43].copy_from_slice(&max_ts.to_be_bytes());
    }
    out[57..61].copy_from_slice(&kept.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Rebuilt::Batch(out))
}

/// `batch` with its records section compressed with `codec` instead (a topic whose
/// `compression.type` is not `producer`). Records are unchanged; attributes bits 0–2, length
/// and CRC are rewritten, and the codec runs at `level` (see `compression::compress_at`).
/// `plain` is `batch`'s records section, uncompressed (`Records::body`): the caller has
/// decompressed it already (bounded), so the batch is not decoded a second time.
pub fn recompress_records(
    batch: &[u8],
    plain: &[u8],
    codec: Compression,
    level: Option<i32>,
) -> Result<Vec<u8>, RecordError> {
    let h = BatchHeader::new(batch)
        .ok_or_else(|| RecordError::CorruptMessage("batch shorter than header".into()))?;
    let body = super::compression::compress_at(codec, plain, level)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&body);
    let batch_length = i32::try_from(out.len() - 12)
        .map_err(|_| RecordError::InvalidRecord("recompressed batch too large".into()))?;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attrs = (h.attributes() & !0x07) | i16::from(codec.id());
    out[21..23].copy_from_slice(&attrs.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// `batch` with every record removed but its header kept (record count 0), so its offsets,
/// producer fields and place in the log survive. Kafka writes such empty batches too, always
/// uncompressed: there is no payload, so a codec bit left set would send a consumer looking
/// for a compressed frame that is not there (Java's fails with "Stream ended prematurely").
pub fn empty_batch(batch: &[u8]) -> Result<Vec<u8>, RecordError> {
    let head = batch
        .get(..HEADER_LEN)
        .ok_or_else(|| RecordError::CorruptMessage("batch shorter than header".into()))?;
    let mut out = head.to_vec();
    out[8..12].copy_from_slice(&((HEADER_LEN - 12) as i32).to_be_bytes());
    // attributes (bytes 21..23): the codec is the low three bits.
    let attributes = i16::from_be_bytes([out[21], out[22]]) & !CODEC_MASK;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[57..61].copy_from_slice(&0i32.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::compute_crc;
    use crate::records::testutil::build_batch;

    /// An emptied compressed batch is written uncompressed, keeping the transactional bit,
    /// offsets and producer fields: a reader must find zero records, not a missing frame.
    #[test]
    fn an_emptied_batch_is_uncompressed() {
        let recs = vec![(Some(&b"k"[..]), Some(&b"v"[..]), vec![], 100)];
        for codec in [
            Compression::Lz4,
            Compression::Zstd,
            Compression::Gzip,
            Compression::Snappy,
        ] {
            let mut batch = build_batch(&recs, codec, 7, 1, 3);
            // transactional bit (4), as Streams' changelog batches have it
            let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 0x10;
            batch[21..23].copy_from_slice(&attributes.to_be_bytes());
            let empty = empty_batch(&batch).unwrap();
            let h = BatchHeader::new(&empty).unwrap();
            assert_eq!(h.compression(), Some(Compression::None), "{codec:?}");
            assert!(h.is_transactional());
            assert_eq!(h.record_count(), 0);
            assert_eq!(h.producer_id(), 7);
            assert_eq!(h.crc(), compute_crc(&empty));
            assert_eq!(records(&empty, 1 << 20).unwrap().iter().count(), 0);
        }
    }

    #[test]
    fn recompress_changes_only_the_codec() {
        let recs = vec![
            (
                Some(&b"a"[..]),
                Some(&b"1"[..]),
                vec![("h", &b"x"[..])],
                100,
            ),
            (None, Some(&b"2"[..]), vec![], 105),
        ];
        let batch = build_batch(&recs, Compression::Snappy, 7, 1, 3);
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let plain = records(&batch, 1 << 20).unwrap();
            let out = recompress_records(&batch, plain.body(), codec, None).unwrap();
            let h = BatchHeader::new(&out).unwrap();
            assert_eq!(h.compression(), Some(codec));
            assert_eq!(h.crc(), compute_crc(&out));
            assert_eq!(h.total_size(), Some(out.len()));
            assert_eq!((h.producer_id(), h.record_count()), (7, 2));
            let a: Vec<_> = records(&out, 1 << 20)
                .unwrap()
                .iter()
                .map(|r| format!("{:?}", r.unwrap()))
                .collect();
            let b: Vec<_> = records(&batch, 1 << 20)
                .unwrap()
                .iter()
                .map(|r| format!("{:?}", r.unwrap()))
                .collect();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn keeps_offsets_timestamps_headers_and_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Zstd,
            Compression::Lz4,
        ] {
            let recs = vec![
                (
                    Some(&b"a"[..]),
                    Some(&b"1"[..]),
                    vec![("h", &b"x"[..])],
                    100,
                ),
                (Some(&b"b"[..]), Some(&b"2"[..]), vec![], 105),
                (Some(&b"a"[..]), None, vec![("h2", &b"y"[..])], 103),
            ];
            let batch = build_batch(&recs, codec, -1, -1, -1);
            assert_eq!(
                retain_records(&batch, 1 << 20, |_| true).unwrap(),
                Rebuilt::Unchanged
            );
            assert_eq!(
                retain_records(&batch, 1 << 20, |_| false).unwrap(),
                Rebuilt::Empty
            );
            let Rebuilt::Batch(out) =
                retain_records(&batch, 1 << 20, |r| r.offset_delta != 1).unwrap()
            else {
                panic!("rebuilt")
            };
            let h = BatchHeader::new(&out).unwrap();
            assert_eq!(h.crc(), compute_crc(&out));
            assert_eq!(h.compression(), Some(codec));
            assert_eq!(h.record_count(), 2);
            assert_eq!(h.last_offset_delta(), 2, "the last offset is kept");
            assert_eq!(h.max_timestamp(), 103);
            assert_eq!(h.total_size(), Some(out.len()));
            let got: Vec<_> = records(&out, 1 << 20)
                .unwrap()
                .iter()
                .map(|r| {
                    let r = r.unwrap();
                    (
                        r.offset,
                        r.timestamp,
                        r.key.map(<[u8]>::to_vec),
                        r.headers.len(),
                    )
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    (0, 100, Some(b"a".to_vec()), 1),
                    (2, 103, Some(b"a".to_vec()), 1)
                ]
            );
        }
    }
}
