//! Iteration over the records inside one batch, decompressing if needed. Off the hot path only
//! (ListOffsets by timestamp, max timestamp, later compaction). Bounds-checked: garbage yields
//! errors, never panics.

use std::borrow::Cow;

use super::batch::{BatchHeader, Compression, HEADER_LEN};
use super::compression::decompress_bounded;
use super::RecordError;

/// One record, borrowing from the (decompressed) records section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo<'a> {
    /// Offset delta from the batch base offset.
    pub offset_delta: i32,
    /// Timestamp delta from the batch base timestamp.
    pub timestamp_delta: i64,
    /// Absolute offset (`base_offset + offset_delta`).
    pub offset: i64,
    /// Absolute timestamp (`base_timestamp + timestamp_delta`).
    pub timestamp: i64,
    /// Key, `None` if null.
    pub key: Option<&'a [u8]>,
    /// Value, `None` if null.
    pub value: Option<&'a [u8]>,
    /// Headers as (key, value) pairs.
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// The records section of one batch, decompressed. Obtain with [`records`], walk with
/// [`Records::iter`]. Owns its data; `Send + Sync`.
#[derive(Debug)]
pub struct Records<'a> {
    body: Cow<'a, [u8]>,
    count: i32,
    base_offset: i64,
    base_timestamp: i64,
    /// For LogAppendTime batches every record's timestamp is the batch's max timestamp.
    log_append_time: Option<i64>,
}

/// Prepares iteration over the records of `batch` (one whole batch, header included),
/// decompressing with output capped at `limit` bytes.
pub fn records(batch: &[u8], limit: usize) -> Result<Records<'_>, RecordError> {
    let h = BatchHeader::new(batch)
        .ok_or_else(|| RecordError::CorruptMessage("batch shorter than header".into()))?;
    let total = h
        .total_size()
        .filter(|t| *t >= HEADER_LEN && *t <= batch.len())
        .ok_or_else(|| RecordError::CorruptMessage("batch length out of bounds".into()))?;
    let codec = h
        .compression()
        .ok_or(RecordError::UnsupportedCompression(h.compression_id()))?;
    let raw = &batch[HEADER_LEN..total];
    let body = match codec {
        // An empty batch (left by compaction) has no records section to decompress.
        _ if h.record_count() == 0 => Cow::Borrowed(&raw[..0]),
        Compression::None => Cow::Borrowed(raw),
        c => Cow::Owned(decompress_bounded(c, raw, limit)?),
    };
    Ok(Records {
        body,
        count: h.record_count(),
        base_offset: h.base_offset(),
        base_timestamp: h.base_timestamp(),
        log_append_time: (h.timestamp_type() == super::batch::TimestampType::LogAppendTime)
            .then(|| h.max_timestamp()),
    })
}

impl Records<'_> {
    /// The records section, decompressed: what a batch with no codec would carry.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Iterates the records; yields an error (then stops) on malformed data or when fewer
    /// records are present than the header claims.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            buf: &self.body,
            pos: 0,
            remaining: self.count.max(0),
            base_offset: self.base_offset,
            base_timestamp: self.base_timestamp,
            log_append_time: self.log_append_time,
            failed: false,
        }
    }
}

/// Iterator over [`RecordInfo`]s; see [`Records::iter`].
#[derive(Debug)]
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: i32,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    failed: bool,
}

fn bad(msg: &str) -> RecordError {
    RecordError::InvalidRecord(msg.to_string())
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn varlong(&mut self) -> Result<i64, RecordError> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(bad("varint too long"))
    }
    fn varint(&mut self) -> Result<i32, RecordError> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| bad("varint out of i32 range"))
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| bad("length overflow"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| bad("field past end of record"))?;
        self.pos = end;
        Ok(s)
    }
    fn nullable(&mut self) -> Result<Option<&'a [u8]>, RecordError> {
        let len = self.varint()?;
        if len < 0 {
            return Ok(None);
        }
        let n = usize::try_from(len).map_err(|_| bad("bad length"))?;
        self.bytes(n).map(Some)
    }
}

impl<'a> RecordIter<'a> {
    fn parse_one(&mut self) -> Result<RecordInfo<'a>, RecordError> {
        let mut outer = Cursor {
            buf: self.buf,
            pos: self.pos,
        };
        let len = outer.varint()?;
        let len = usize::try_from(len).map_err(|_| bad("negative record length"))?;
        let body = outer.bytes(len)?;
        self.pos = outer.pos;
        let mut c = Cursor { buf: body, pos: 0 };
        c.bytes(1)?; // attributes, unused in magic 2
        let timestamp_delta = c.varlong()?;
        let offset_delta = c.varint()?;
        let key = c.nullable()?;
        let value = c.nullable()?;
        let nheaders = c.varint()?;
        if nheaders < 0 {
            return Err(bad("negative header count"));
        }
        // Each header needs at least two bytes, so the count is bounded by the record length.
        if usize::try_from(nheaders).unwrap_or(usize::MAX) > body.len() {
            return Err(bad("header count exceeds record size"));
        }
        let mut headers = Vec::with_capacity(usize::try_from(nheaders).unwrap_or(0));
        for _ in 0..nheaders {
            let k = c.nullable()?.ok_or_else(|| bad("null header key"))?;
            let v = c.nullable()?;
            headers.push((k, v));
        }
        if c.pos != body.len() {
            return Err(bad("trailing bytes in record"));
        }
        // A delta that takes the offset or timestamp out of the i64 range is an invalid
        // record, never a wrap to a negative value.
        let offset = self
            .base_offset
            .checked_add(i64::from(offset_delta))
            .ok_or_else(|| bad("record offset overflows"))?;
        let timestamp = match self.log_append_time {
            Some(ts) => ts,
            None => self
                .base_timestamp
                .checked_add(timestamp_delta)
                .ok_or_else(|| bad("record timestamp overflows"))?,
        };
        Ok(RecordInfo {
            offset_delta,
            timestamp_delta,
            offset,
            timestamp,
            key,
            value,
            headers,
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordInfo<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.remaining <= 0 {
            return None;
        }
        if self.pos >= self.buf.len() {
            self.failed = true;
            return Some(Err(bad("fewer records than the header claims")));
        }
        self.remaining -= 1;
        let r = self.parse_one();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::compression::{compress, compress_snappy_raw, DEFAULT_DECOMPRESS_LIMIT};
    use crate::records::testutil::{
        build_batch, build_batch_from_body, encode_records, TestRecord,
    };

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// A record whose offset delta takes it past i64::MAX (the base offset lies outside the
    /// CRC), or whose timestamp delta does, is an invalid record, not a wrapped value.
    #[test]
    fn deltas_past_the_i64_range_are_invalid_records() {
        let recs: Vec<TestRecord<'_>> = vec![
            (Some(&b"a"[..]), Some(&b"1"[..]), vec![], 100),
            (Some(&b"b"[..]), Some(&b"2"[..]), vec![], 105),
        ];
        let mut b = build_batch(&recs, Compression::None, -1, -1, -1);
        b[..8].copy_from_slice(&i64::MAX.to_be_bytes());
        let r = records(&b, DEFAULT_DECOMPRESS_LIMIT).unwrap();
        let got: Vec<_> = r.iter().collect();
        assert_eq!(got[0].as_ref().map(|r| r.offset), Ok(i64::MAX));
        assert!(
            matches!(got[1], Err(RecordError::InvalidRecord(_))),
            "{got:?}"
        );
        let body = encode_records(&recs);
        let b = build_batch_from_body(
            &body,
            2,
            Compression::None,
            i64::MAX - 2,
            i64::MAX,
            -1,
            -1,
            -1,
        );
        let r = records(&b, DEFAULT_DECOMPRESS_LIMIT).unwrap();
        let got: Vec<_> = r.iter().collect();
        assert_eq!(got[0].as_ref().map(|r| r.timestamp), Ok(i64::MAX - 2));
        assert!(
            matches!(got[1], Err(RecordError::InvalidRecord(_))),
            "{got:?}"
        );
    }

    #[test]
    fn every_codec_round_trips_through_iter() {
        let h1: Vec<(&str, &[u8])> = vec![("h", b"v"), ("trace", b"")];
        let recs: Vec<TestRecord<'_>> = vec![
            (Some(b"k1"), Some(b"value-1"), vec![], 1000),
            (None, Some(b"value-2"), h1.clone(), 1005),
            (Some(b"k3"), None, vec![], 990),
        ];
        for c in ALL {
            let b = build_batch(&recs, c, 7, 1, 0);
            crate::records::validate_produce_batch(&b, 1 << 20).unwrap();
            let r = records(&b, DEFAULT_DECOMPRESS_LIMIT).unwrap();
            let got: Vec<_> = r.iter().collect::<Result<_, _>>().unwrap();
            assert_eq!(got.len(), 3, "{c:?}");
            assert_eq!(got[0].key, Some(&b"k1"[..]));
            assert_eq!(got[0].value, Some(&b"value-1"[..]));
            assert_eq!(got[1].key, None);
            assert_eq!(got[1].headers.len(), 2);
            assert_eq!(got[1].headers[0], (&b"h"[..], Some(&b"v"[..])));
            assert_eq!(got[2].value, None);
            let offs: Vec<i32> = got.iter().map(|r| r.offset_delta).collect();
            assert_eq!(offs, vec![0, 1, 2]);
            let ts: Vec<i64> = got.iter().map(|r| r.timestamp).collect();
            assert_eq!(ts, vec![1000, 1005, 990]);
            assert_eq!(got[2].timestamp_delta, -10);
        }
    }

    #[test]
    fn raw_snappy_batch_iterates() {
        let recs: Vec<TestRecord<'_>> =
            vec![(None, Some(b"a"), vec![], 5), (None, Some(b"b"), vec![], 6)];
        let body = encode_records(&recs);
        let z = compress_snappy_raw(&body).unwrap();
        let b = build_batch_from_body(&z, 2, Compression::Snappy, 5, 6, -1, -1, -1);
        let r = records(&b, DEFAULT_DECOMPRESS_LIMIT).unwrap();
        assert_eq!(r.iter().count(), 2);
        assert!(r.iter().all(|x| x.is_ok()));
    }

    #[test]
    fn garbage_never_panics() {
        let recs: Vec<TestRecord<'_>> = vec![
            (Some(b"key"), Some(b"value"), vec![("a", b"b")], 1),
            (Some(b"key2"), Some(b"value2"), vec![], 2),
        ];
        let good = build_batch(&recs, Compression::None, -1, -1, -1);
        // Flip every byte of the records section, and truncate at every length.
        for i in HEADER_LEN..good.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut b = good.clone();
                b[i] ^= x;
                if let Ok(r) = records(&b, 1 << 16) {
                    for _ in r.iter() {}
                }
            }
            let mut t = good[..i].to_vec();
            t[8..12].copy_from_slice(&((i as i32) - 12).to_be_bytes());
            if let Ok(r) = records(&t, 1 << 16) {
                assert!(r.iter().any(|x| x.is_err()) || i == good.len());
            }
        }
        // Compressed section replaced by garbage.
        let z = compress(Compression::Gzip, b"not records at all").unwrap();
        let b = build_batch_from_body(&z, 3, Compression::Gzip, 0, 0, -1, -1, -1);
        let r = records(&b, 1 << 16).unwrap();
        assert!(r.iter().any(|x| x.is_err()));
    }
}
