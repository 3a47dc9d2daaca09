//! Validation of a Produce partition payload: exactly one magic-2 batch, header checks and CRC.
//! No per-record work: this is on the hot path.

use super::batch::{compute_crc, BatchHeader, Compression, HEADER_LEN};
use super::RecordError;

/// What the log needs to know about a validated batch, taken from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// Number of records in the batch (> 0).
    pub record_count: i32,
    /// `record_count - 1`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Greatest record timestamp.
    pub max_timestamp: i64,
    /// Producer id, -1 for non-idempotent producers.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence of the first record.
    pub base_sequence: i32,
    /// Transactional batch.
    pub is_transactional: bool,
    /// Codec of the records section.
    pub compression: Compression,
    /// Whole batch size in bytes.
    pub size: usize,
}

impl BatchInfo {
    /// Sequence of the last record, wrapping at `i32::MAX` as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }

    /// Reads a `BatchInfo` from any header without validating it (for recovery scans).
    pub fn from_header(h: &BatchHeader<'_>) -> BatchInfo {
        BatchInfo {
            record_count: h.record_count(),
            last_offset_delta: h.last_offset_delta(),
            base_timestamp: h.base_timestamp(),
            max_timestamp: h.max_timestamp(),
            producer_id: h.producer_id(),
            producer_epoch: h.producer_epoch(),
            base_sequence: h.base_sequence(),
            is_transactional: h.is_transactional(),
            compression: h.compression().unwrap_or(Compression::None),
            size: h.total_size().unwrap_or(0),
        }
    }
}

/// Validates a Produce partition payload, which must be exactly one magic-2 batch.
///
/// Checks, in order: length ≥ 61, `batchLength + 12 == bytes.len()` (so exactly one batch),
/// size ≤ `max_message_bytes`, magic == 2, CRC-32C over bytes 21..end, codec id 0..=4, base
/// offset 0 and no control flag (Kafka's rules for client batches), and
/// `recordCount == lastOffsetDelta + 1 > 0`. Pure; thread-safe.
pub fn validate_produce_batch(
    bytes: &[u8],
    max_message_bytes: usize,
) -> Result<BatchInfo, RecordError> {
    let h = BatchHeader::new(bytes).ok_or_else(|| {
        RecordError::CorruptMessage(format!(
            "record set of {} bytes is shorter than a batch header ({HEADER_LEN})",
            bytes.len()
        ))
    })?;
    let total = h.total_size().ok_or_else(|| {
        RecordError::CorruptMessage(format!("negative batch length {}", h.batch_length()))
    })?;
    if total < HEADER_LEN {
        return Err(RecordError::CorruptMessage(format!(
            "batch length {total} is shorter than a batch header"
        )));
    }
    if total != bytes.len() {
        return Err(RecordError::CorruptMessage(format!(
            "batch length {total} does not match record set size {} (exactly one batch required)",
            bytes.len()
        )));
    }
    if bytes.len() > max_message_bytes {
        return Err(RecordError::MessageTooLarge {
            size: bytes.len(),
            max: max_message_bytes,
        });
    }
    if h.magic() != 2 {
        return Err(RecordError::CorruptMessage(format!(
            "unsupported magic {} (only 2)",
            h.magic()
        )));
    }
    let crc = compute_crc(bytes);
    if crc != h.crc() {
        return Err(RecordError::CorruptMessage(format!(
            "crc mismatch: stored {:#010x}, computed {crc:#010x}",
            h.crc()
        )));
    }
    let compression = h
        .compression()
        .ok_or(RecordError::UnsupportedCompression(h.compression_id()))?;
    // As Kafka's validator does for client-produced batches.
    if h.base_offset() != 0 {
        return Err(RecordError::InvalidRecord(format!(
            "base offset {} must be 0 in a produced batch",
            h.base_offset()
        )));
    }
    if h.is_control() {
        return Err(RecordError::InvalidRecord(
            "clients may not write control batches".into(),
        ));
    }
    let count = h.record_count();
    if count <= 0 {
        return Err(RecordError::InvalidRecord(format!(
            "record count {count} must be > 0"
        )));
    }
    if i64::from(count) != i64::from(h.last_offset_delta()) + 1 {
        return Err(RecordError::InvalidRecord(format!(
            "record count {count} != last offset delta {} + 1",
            h.last_offset_delta()
        )));
    }
    Ok(BatchInfo {
        record_count: count,
        last_offset_delta: h.last_offset_delta(),
        base_timestamp: h.base_timestamp(),
        max_timestamp: h.max_timestamp(),
        producer_id: h.producer_id(),
        producer_epoch: h.producer_epoch(),
        base_sequence: h.base_sequence(),
        is_transactional: h.is_transactional(),
        compression,
        size: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::stamp::stamp_base_offset_and_epoch;
    use crate::records::testutil::{build_batch, fix_crc, idempotent_batch, simple_batch};

    #[test]
    fn accepts_a_good_batch() {
        let b = idempotent_batch(3, 42, 5, 10);
        let info = validate_produce_batch(&b, 1 << 20).unwrap();
        assert_eq!(info.record_count, 3);
        assert_eq!(info.last_offset_delta, 2);
        assert_eq!(info.producer_id, 42);
        assert_eq!(info.producer_epoch, 5);
        assert_eq!(info.base_sequence, 10);
        assert_eq!(info.last_sequence(), 12);
        assert_eq!(info.size, b.len());
        assert_eq!(info.compression, Compression::None);
        assert!(!info.is_transactional);
        assert_eq!(info.base_timestamp, 0);
        assert_eq!(info.max_timestamp, 2);
    }

    #[test]
    fn header_accessors() {
        let mut b = build_batch(&[(None, Some(b"v"), vec![], 77)], Compression::Lz4, 9, 2, 3);
        b[22] |= 0x08 | 0x10 | 0x20;
        let h = BatchHeader::new(&b).unwrap();
        assert_eq!(h.magic(), 2);
        assert_eq!(h.compression(), Some(Compression::Lz4));
        assert!(h.is_transactional());
        assert!(h.is_control());
        assert_eq!(
            h.timestamp_type(),
            crate::records::TimestampType::LogAppendTime
        );
        assert_eq!(h.base_timestamp(), 77);
        assert_eq!(h.partition_leader_epoch(), -1);
        assert!(BatchHeader::new(&b[..60]).is_none());
    }

    #[test]
    fn stamping_keeps_the_crc_valid() {
        let mut b = simple_batch(4, 10, 0);
        stamp_base_offset_and_epoch(&mut b, 123_456, 7);
        let h = BatchHeader::new(&b).unwrap();
        assert_eq!(h.base_offset(), 123_456);
        assert_eq!(h.partition_leader_epoch(), 7);
        assert_eq!(h.last_offset(), 123_459);
        assert_eq!(compute_crc(&b), h.crc());
        stamp_base_offset_and_epoch(&mut b[..10], 1, 1); // too short: no-op, no panic
    }

    #[test]
    fn rejects_short_and_mismatched_lengths() {
        let b = simple_batch(1, 1, 0);
        assert!(matches!(
            validate_produce_batch(&b[..60], 1 << 20),
            Err(RecordError::CorruptMessage(_))
        ));
        assert!(matches!(
            validate_produce_batch(&b[..b.len() - 1], 1 << 20),
            Err(RecordError::CorruptMessage(_))
        ));
        // Two batches back to back: not allowed for Produce v3+.
        let mut two = b.clone();
        two.extend_from_slice(&b);
        assert!(matches!(
            validate_produce_batch(&two, 1 << 20),
            Err(RecordError::CorruptMessage(_))
        ));
        let mut neg = b.clone();
        neg[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            validate_produce_batch(&neg, 1 << 20),
            Err(RecordError::CorruptMessage(_))
        ));
    }

    #[test]
    fn rejects_bad_magic_and_crc() {
        let b = simple_batch(2, 5, 0);
        let mut m = b.clone();
        m[16] = 1;
        assert!(matches!(
            validate_produce_batch(&m, 1 << 20),
            Err(RecordError::CorruptMessage(_))
        ));
        let mut c = b.clone();
        let last = c.len() - 1;
        c[last] ^= 0xff;
        assert!(matches!(
            validate_produce_batch(&c, 1 << 20),
            Err(RecordError::CorruptMessage(_))
        ));
    }

    #[test]
    fn rejects_too_large() {
        let b = simple_batch(2, 100, 0);
        let r = validate_produce_batch(&b, b.len() - 1);
        assert_eq!(
            r,
            Err(RecordError::MessageTooLarge {
                size: b.len(),
                max: b.len() - 1
            })
        );
        assert!(validate_produce_batch(&b, b.len()).is_ok());
    }

    #[test]
    fn rejects_bad_record_counts() {
        let b = simple_batch(2, 1, 0);
        let mut z = b.clone();
        z[57..61].copy_from_slice(&0i32.to_be_bytes());
        z[23..27].copy_from_slice(&(-1i32).to_be_bytes());
        fix_crc(&mut z);
        assert!(matches!(
            validate_produce_batch(&z, 1 << 20),
            Err(RecordError::InvalidRecord(_))
        ));
        let mut m = b.clone();
        m[57..61].copy_from_slice(&5i32.to_be_bytes());
        fix_crc(&mut m);
        assert!(matches!(
            validate_produce_batch(&m, 1 << 20),
            Err(RecordError::InvalidRecord(_))
        ));
    }

    #[test]
    fn rejects_client_offsets_and_control_batches() {
        let mut b = simple_batch(1, 1, 0);
        b[7] = 5; // base offset 5 (outside the CRC)
        assert!(matches!(
            validate_produce_batch(&b, 1 << 20),
            Err(RecordError::InvalidRecord(_))
        ));
        let mut c = simple_batch(1, 1, 0);
        c[22] |= 0x20;
        fix_crc(&mut c);
        assert!(matches!(
            validate_produce_batch(&c, 1 << 20),
            Err(RecordError::InvalidRecord(_))
        ));
    }

    #[test]
    fn rejects_unknown_codec() {
        let mut b = simple_batch(1, 1, 0);
        b[22] = (b[22] & !0x07) | 0x05;
        fix_crc(&mut b);
        assert_eq!(
            validate_produce_batch(&b, 1 << 20),
            Err(RecordError::UnsupportedCompression(5))
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        // xorshift: deterministic pseudo-random garbage, some of it with a plausible header.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let good = build_batch(
            &[(Some(b"k"), Some(b"v"), vec![("h", b"x")], 5)],
            Compression::Gzip,
            1,
            0,
            0,
        );
        for i in 0..3000 {
            let len = (next() % 300) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 && b.len() >= HEADER_LEN {
                b[..HEADER_LEN].copy_from_slice(&good[..HEADER_LEN]);
                let blen = (b.len() - 12) as i32;
                b[8..12].copy_from_slice(&blen.to_be_bytes());
                fix_crc(&mut b);
            }
            let _ = validate_produce_batch(&b, 1 << 20);
            if let Ok(r) = crate::records::records(&b, 1 << 16) {
                for _ in r.iter() {}
            }
        }
    }

    #[test]
    fn last_sequence_wraps() {
        let b = idempotent_batch(3, 1, 0, i32::MAX - 1);
        let info = validate_produce_batch(&b, 1 << 20).unwrap();
        assert_eq!(info.last_sequence(), 0);
    }
}
