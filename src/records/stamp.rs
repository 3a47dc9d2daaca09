//! Stamping broker-assigned fields into a batch header without touching the CRC-covered region.

use super::batch::{OFF_BASE_OFFSET, OFF_LEADER_EPOCH};

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
