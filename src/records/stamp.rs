//! Stamping broker-assigned fields into a batch header without touching the CRC-covered region.

use super::batch::{
    CRC_START, HEADER_LEN, OFF_ATTRIBUTES, OFF_BASE_OFFSET, OFF_CRC, OFF_LEADER_EPOCH,
    OFF_MAX_TIMESTAMP,
};

/// Writes `base_offset` into bytes 0–7 and `leader_epoch` into bytes 12–15 of `header`.
/// Both fields lie before byte 21, so the CRC stays valid. Does nothing if `header` is shorter
/// than 16 bytes. Pure; thread-safe.
pub fn stamp_base_offset_and_epoch(header: &mut [u8], base_offset: i64, leader_epoch: i32) {
    if header.len() < 16 {
        return;
    }
    header[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    header[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Attribute bit 3: the batch's timestamps are the broker's append time.
pub const LOG_APPEND_TIME_FLAG: i16 = 0x08;

/// Rewrites a copy of the 61-byte `header` for a `LogAppendTime` topic, as Kafka does: sets
/// attribute bit 3, writes `now_ms` into `maxTimestamp` and recomputes the CRC over the new
/// header tail plus `rest` (the batch bytes after the header, unchanged). Pure; thread-safe.
pub fn stamp_log_append_time(header: &mut [u8; HEADER_LEN], rest: &[u8], now_ms: i64) {
    let attrs = i16::from_be_bytes([header[OFF_ATTRIBUTES], header[OFF_ATTRIBUTES + 1]]);
    header[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2]
        .copy_from_slice(&(attrs | LOG_APPEND_TIME_FLAG).to_be_bytes());
    header[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[CRC_START..]), rest);
    header[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites `maxTimestamp` of a whole batch (in place) and recomputes its CRC. Used only for
/// batches whose header is self-contradictory (max below base), which Kafka repairs from the
/// records. Does nothing if `batch` is shorter than a header. Pure; thread-safe.
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64) {
    if batch.len() < HEADER_LEN {
        return;
    }
    batch[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::{compute_crc, BatchHeader, TimestampType};
    use crate::records::testutil::simple_batch;

    #[test]
    fn log_append_time_stamp_keeps_the_batch_valid() {
        let batch = simple_batch(3, 10, 1234);
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&batch[..HEADER_LEN]);
        stamp_log_append_time(&mut head, &batch[HEADER_LEN..], 99_999);
        let mut out = head.to_vec();
        out.extend_from_slice(&batch[HEADER_LEN..]);
        let h = BatchHeader::new(&out).unwrap();
        assert_eq!(h.max_timestamp(), 99_999);
        assert_eq!(h.base_timestamp(), 1234);
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.crc(), compute_crc(&out));
    }
}
