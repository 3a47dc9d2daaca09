//! Tests of retention (time, size, log start offset) and DeleteRecords on real files.

use crate::common::{LeaderEpoch, Offset, TopicId};
use bytes::Bytes;

use super::checkpoint::{read_offset_checkpoint, LOG_START_FILE};
use super::*;
use crate::records::testutil::simple_batch;
use crate::records::validate_produce_batch;

fn opts() -> LogOptions {
    LogOptions {
        flush_interval_ms: 60_000,
        checkpoint_interval_ms: 600_000,
        ..LogOptions::default()
    }
}

fn append(p: &PartitionLog, batch: &[u8]) {
    let info = validate_produce_batch(batch, 1 << 24).expect("test batch must validate");
    p.append(&Bytes::copy_from_slice(batch), &info, LeaderEpoch(0))
        .expect("append");
}

/// A partition whose segments each hold one batch (segment.bytes below two batches), with
/// batch `i` timestamped `ts[i]`.
fn one_batch_segments(m: &LogManager, ts: &[i64]) -> std::sync::Arc<PartitionLog> {
    let p = m
        .create(&TopicPartition::new("r", 0), TopicId::from_bytes([7; 16]))
        .unwrap();
    let mut c = p.config();
    c.segment_bytes = 150;
    p.set_config(c);
    for t in ts {
        append(&p, &simple_batch(1, 50, *t));
    }
    p
}

#[test]
fn time_retention_deletes_expired_sealed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let now = crate::common::now_ms();
    let old = now - 10_000;
    let p = one_batch_segments(&m, &[old, old, now, old]);
    assert_eq!(p.segment_base_offsets(), vec![0, 1, 2, 3]);
    let mut c = p.config();
    c.retention_ms = 5_000;
    p.set_config(c.clone());
    assert_eq!(p.delete_old_segments(Some(now)).unwrap(), 2);
    // Stops at the first unexpired segment; never touches the active one (3, also old).
    assert_eq!(p.segment_base_offsets(), vec![2, 3]);
    assert_eq!(p.log_start_offset(), 2);
    assert!(!dir
        .path()
        .join("r-0")
        .join(segment::file_name(0, "log"))
        .exists());
    assert!(matches!(
        p.read(Offset(1), 1 << 20, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(!p.read(Offset(2), 1 << 20, true).unwrap().records.is_empty());
    // compact-only topics are not time-retained.
    c.delete = false;
    c.compact = true;
    c.retention_ms = 0;
    p.set_config(c);
    assert_eq!(p.delete_old_segments(Some(now + 1_000_000)).unwrap(), 0);
}

#[test]
fn size_retention_keeps_the_log_under_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let now = crate::common::now_ms();
    let p = one_batch_segments(&m, &[now; 5]);
    let one = p.size_bytes() / 5;
    let mut c = p.config();
    c.retention_bytes = (2 * one + one / 2) as i64;
    p.set_config(c);
    assert_eq!(m.run_retention(), 2);
    assert_eq!(p.segment_base_offsets(), vec![2, 3, 4]);
    assert_eq!(p.size_bytes(), 3 * one);
    // The log start offset is checkpointed after a deleting pass.
    let ck = read_offset_checkpoint(&dir.path().join(LOG_START_FILE)).unwrap();
    assert_eq!(ck.get(&TopicPartition::new("r", 0)), Some(&2));
}

#[test]
fn delete_records_moves_the_log_start_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = LogManager::open(dir.path(), opts()).unwrap();
        let now = crate::common::now_ms();
        let p = one_batch_segments(&m, &[now; 4]);
        assert!(matches!(
            p.delete_records_before(Offset(5)),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(p.delete_records_before(Offset(2)).unwrap(), 2);
        // Segments wholly below the new start are gone; reads below it are out of range.
        assert_eq!(p.segment_base_offsets(), vec![2, 3]);
        assert!(matches!(
            p.read(Offset(1), 1 << 20, true),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        // Moving backwards is a no-op; -1 means the high watermark.
        assert_eq!(p.delete_records_before(Offset(1)).unwrap(), 2);
        assert_eq!(p.delete_records_before(Offset(-1)).unwrap(), 4);
        assert_eq!(
            p.segment_base_offsets(),
            vec![3],
            "the active segment stays"
        );
        assert_eq!(p.read(Offset(4), 1 << 20, true).unwrap().records.len(), 0);
        m.checkpoint().unwrap();
    }
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.get(&TopicPartition::new("r", 0)).unwrap();
    assert_eq!(p.log_start_offset(), 4);
    assert_eq!(p.log_end_offset(), 4);
}

#[test]
fn read_region_matches_read_for_every_offset_and_limit() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m
        .create(&TopicPartition::new("z", 0), TopicId::from_bytes([7; 16]))
        .unwrap();
    let mut c = p.config();
    c.segment_bytes = 200_000;
    p.set_config(c);
    // Small batches spanning several 64 KiB header windows, and a second segment.
    for i in 0..1500 {
        append(&p, &simple_batch(1 + i % 3, 20 + (i % 50), i as i64));
    }
    assert!(p.segment_base_offsets().len() >= 2);
    let leo = p.log_end_offset();
    let leo = leo.get();
    for offset in (0..leo).step_by(97).chain([leo - 1, leo]) {
        for max in [0usize, 1, 500, 70_000, 1 << 20] {
            for min_one in [false, true] {
                let a = p.read(Offset::from(offset), max, min_one).unwrap();
                let r = p
                    .read_region(Offset::from(offset), max, min_one, false)
                    .unwrap();
                let mut bytes = vec![0u8; r.len as usize];
                if let Some(f) = &r.file {
                    f.read_exact_at(&mut bytes, r.position).unwrap();
                }
                assert_eq!(
                    bytes,
                    a.records.to_vec(),
                    "offset {offset} max {max} {min_one}"
                );
                assert_eq!(r.high_watermark, a.high_watermark);
            }
        }
    }
}
