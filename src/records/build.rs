//! Batches the broker writes itself: records of its internal topics (`__consumer_offsets`,
//! `__transaction_state`), transactional offset commits, and transaction markers (control
//! batches). Always uncompressed magic-2 batches with base offset 0 (the log stamps the real
//! one) and every record stamped with the same timestamp.
//!
//! A transaction marker is a control batch (attributes bits 4 and 5) holding one record whose
//! key is (version int16 = 0, type int16: 0 = abort, 1 = commit) and whose value is (version
//! int16 = 0, coordinator epoch int32), as Kafka writes it.

use bytes::{BufMut, Bytes};

use super::batch::{compute_crc, BatchHeader, HEADER_LEN};
use super::varint::{put_nullable_bytes, put_varlong};

/// Attributes bit 4: the batch belongs to a transaction.
pub const TRANSACTIONAL: i16 = 1 << 4;
/// Attributes bit 5: the batch is a control batch (a transaction marker).
pub const CONTROL: i16 = 1 << 5;

/// A record as (key, value); a `None` value is a tombstone.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Who writes a batch: a producer id and epoch (with the batch's first sequence, -1 for none)
/// or nobody (-1s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    /// Producer id, -1 for none.
    pub producer_id: i64,
    /// Producer epoch, -1 for none.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 for none.
    pub base_sequence: i32,
    /// Attribute bits 4–5 ([`TRANSACTIONAL`], [`CONTROL`]).
    pub flags: i16,
}

impl Writer {
    /// The broker itself: no producer, not transactional.
    pub const BROKER: Writer = Writer {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        flags: 0,
    };

    /// A transactional producer without sequence numbers (transactional offset commits).
    pub fn transactional(producer_id: i64, producer_epoch: i16) -> Writer {
        Writer {
            producer_id,
            producer_epoch,
            base_sequence: -1,
            flags: TRANSACTIONAL,
        }
    }
}

/// One uncompressed batch of `records` (key, value-or-null) written by `writer`, every record
/// at `now_ms`.
pub fn uncompressed_batch(records: &[KeyValue<'_>], now_ms: i64, writer: Writer) -> Bytes {
    let mut body = Vec::new();
    let mut rec = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        rec.clear();
        rec.push(0u8); // record attributes
        put_varlong(&mut rec, 0); // timestamp delta
        put_varlong(&mut rec, i as i64); // offset delta
        put_nullable_bytes(&mut rec, *key);
        put_nullable_bytes(&mut rec, *value);
        put_varlong(&mut rec, 0); // no headers
        put_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let count = i32::try_from(records.len()).unwrap_or(i32::MAX);
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.put_i64(0); // base offset
    b.put_i32((HEADER_LEN - 12 + body.len()) as i32); // batch length
    b.put_i32(-1); // partition leader epoch (stamped by the log)
    b.put_i8(2); // magic
    b.put_u32(0); // crc, filled below
    b.put_i16(writer.flags); // no compression, CreateTime
    b.put_i32(count - 1); // last offset delta
    b.put_i64(now_ms); // base timestamp
    b.put_i64(now_ms); // max timestamp
    b.put_i64(writer.producer_id);
    b.put_i16(writer.producer_epoch);
    b.put_i32(writer.base_sequence);
    b.put_i32(count);
    b.extend_from_slice(&body);
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// What a transaction marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// The producer's transaction in this partition is aborted: read_committed consumers skip
    /// its records.
    Abort,
    /// The transaction is committed.
    Commit,
}

impl MarkerKind {
    fn code(self) -> i16 {
        match self {
            MarkerKind::Abort => 0,
            MarkerKind::Commit => 1,
        }
    }
}

/// The control batch ending `producer_id`'s transaction in a partition.
pub fn marker_batch(
    kind: MarkerKind,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Bytes {
    let mut key = Vec::with_capacity(4);
    key.put_i16(0);
    key.put_i16(kind.code());
    let mut value = Vec::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    uncompressed_batch(
        &[(Some(&key), Some(&value))],
        now_ms,
        Writer {
            producer_id,
            producer_epoch,
            base_sequence: -1,
            flags: TRANSACTIONAL | CONTROL,
        },
    )
}

/// A transaction marker as read back from a control batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub kind: MarkerKind,
    /// The epoch of the coordinator that wrote it (DescribeProducers reports the latest).
    pub coordinator_epoch: i32,
}

/// The marker in control batch `batch`, or `None` if it is not a well-formed transaction
/// marker (the only control records Kafka 4 writes to data partitions).
pub fn marker(batch: &[u8]) -> Option<Marker> {
    let h = BatchHeader::new(batch)?;
    if !h.is_control() {
        return None;
    }
    let recs = super::records(batch, 1 << 16).ok()?;
    let first = recs.iter().next()?.ok()?;
    let kind = match first.key?.get(2..4)? {
        [0, 0] => MarkerKind::Abort,
        [0, 1] => MarkerKind::Commit,
        _ => return None,
    };
    // value: version int16, coordinator epoch int32 (absent in a malformed marker: unknown).
    let coordinator_epoch = first
        .value
        .and_then(|v| {
            v.get(2..6)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        })
        .unwrap_or(-1);
    Some(Marker {
        kind,
        coordinator_epoch,
    })
}

/// The kind of the marker in control batch `batch` (see [`marker`]).
pub fn marker_kind(batch: &[u8]) -> Option<MarkerKind> {
    marker(batch).map(|m| m.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::validate_produce_batch;

    #[test]
    fn markers_are_valid_control_batches_that_say_their_kind() {
        for kind in [MarkerKind::Abort, MarkerKind::Commit] {
            let b = marker_batch(kind, 42, 3, 7, 1_000);
            // Clients may not write control batches; the broker reads their header as is.
            assert!(validate_produce_batch(&b, 1 << 20).is_err());
            let h = BatchHeader::new(&b).unwrap();
            assert_eq!(h.crc(), compute_crc(&b));
            assert_eq!((h.producer_id(), h.producer_epoch()), (42, 3));
            let h = BatchHeader::new(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(h.record_count(), 1);
            assert_eq!(marker_kind(&b), Some(kind));
            let r = crate::records::records(&b, 1 << 20).unwrap();
            let r = r.iter().next().unwrap().unwrap();
            assert_eq!(r.value.unwrap(), &[0, 0, 0, 0, 0, 7]);
        }
        let plain = uncompressed_batch(&[(Some(b"k"), Some(b"v"))], 5, Writer::BROKER);
        assert_eq!(marker_kind(&plain), None);
    }

    #[test]
    fn transactional_writer_sets_bit_4_only() {
        let b = uncompressed_batch(
            &[(Some(b"k"), None), (None, Some(b"v"))],
            5,
            Writer::transactional(9, 1),
        );
        let h = BatchHeader::new(&b).unwrap();
        assert!(h.is_transactional() && !h.is_control());
        assert_eq!(
            (h.producer_id(), h.producer_epoch(), h.base_sequence()),
            (9, 1, -1)
        );
        assert_eq!(h.record_count(), 2);
        validate_produce_batch(&b, 1 << 20).unwrap();
    }
}
