//! Producer-state snapshots, Kafka's `<offset>.snapshot` files: the idempotent and
//! transactional state of every producer as of a segment's base offset, written when the
//! previous segment is sealed. Recovery loads the newest usable snapshot and scans only the
//! batch headers after it, so a producer silent for many segments is still de-duplicated and a
//! transaction open since long ago still holds the last stable offset after a crash.
//!
//! Layout (Kafka's version 1): version int16, CRC-32C (uint32) of everything after it, then an
//! int32-counted array of 46-byte entries: producer id int64, epoch int16, last sequence int32,
//! last offset int64, offset delta int32 (last minus first sequence of the last batch),
//! timestamp int64, coordinator epoch int32, current transaction's first offset int64 (-1 for
//! none). A snapshot that does not parse or whose CRC is wrong is ignored.

use bytes::BufMut;

use crate::records::internal::Reader;

const VERSION: i16 = 1;
/// Bytes of one entry.
const ENTRY_LEN: usize = 46;

/// One producer's state in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// Last sequence written (-1 for a producer known only by its markers).
    pub last_sequence: i32,
    /// Offset of its last batch's last record (-1 if none).
    pub last_offset: i64,
    /// Last minus first sequence of that batch.
    pub offset_delta: i32,
    pub timestamp: i64,
    pub coordinator_epoch: i32,
    /// First offset of its open transaction in this partition, -1 if none.
    pub current_txn_first_offset: i64,
}

/// The bytes of a snapshot holding `entries`.
pub fn encode(entries: &[SnapshotEntry]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + entries.len() * ENTRY_LEN);
    body.put_i32(i32::try_from(entries.len()).unwrap_or(i32::MAX));
    for e in entries {
        body.put_i64(e.producer_id);
        body.put_i16(e.epoch);
        body.put_i32(e.last_sequence);
        body.put_i64(e.last_offset);
        body.put_i32(e.offset_delta);
        body.put_i64(e.timestamp);
        body.put_i32(e.coordinator_epoch);
        body.put_i64(e.current_txn_first_offset);
    }
    let mut out = Vec::with_capacity(6 + body.len());
    out.put_i16(VERSION);
    out.put_u32(crc32c::crc32c(&body));
    out.extend_from_slice(&body);
    out
}

/// The entries of a snapshot, or `None` if it is not a well-formed version-1 snapshot.
pub fn decode(bytes: &[u8]) -> Option<Vec<SnapshotEntry>> {
    let version = i16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?);
    let crc = u32::from_be_bytes(bytes.get(2..6)?.try_into().ok()?);
    let body = bytes.get(6..)?;
    if version != VERSION || crc32c::crc32c(body) != crc {
        return None;
    }
    let mut r = Reader::new(body);
    let n = r.count(ENTRY_LEN).ok()??;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(SnapshotEntry {
            producer_id: r.i64().ok()?,
            epoch: r.i16().ok()?,
            last_sequence: r.i32().ok()?,
            last_offset: r.i64().ok()?,
            offset_delta: r.i32().ok()?,
            timestamp: r.i64().ok()?,
            coordinator_epoch: r.i32().ok()?,
            current_txn_first_offset: r.i64().ok()?,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i64, txn: i64) -> SnapshotEntry {
        SnapshotEntry {
            producer_id: pid,
            epoch: 3,
            last_sequence: 41,
            last_offset: 1000 + pid,
            offset_delta: 4,
            timestamp: -1,
            coordinator_epoch: -1,
            current_txn_first_offset: txn,
        }
    }

    #[test]
    fn round_trip_and_rejects_damage() {
        let entries = vec![entry(1, -1), entry(2, 77)];
        let bytes = encode(&entries);
        assert_eq!(bytes.len(), 6 + 4 + 2 * ENTRY_LEN);
        assert_eq!(decode(&bytes), Some(entries));
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert_eq!(decode(&flipped), None, "CRC mismatch");
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None, "truncated");
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&encode(&[])), Some(vec![]));
    }
}
