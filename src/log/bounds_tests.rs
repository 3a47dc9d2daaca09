//! Offsets read from disk are checked, never trusted to fit: a batch whose base offset (outside
//! the CRC, so a flipped bit passes the checksum) makes `base + last offset delta` overflow is an
//! invalid batch that recovery cuts away, not an arithmetic wrap or a panic.

use crate::common::{LeaderEpoch, Offset, TopicId};
use bytes::Bytes;

use super::*;
use crate::records::testutil::simple_batch;
use crate::records::validate_produce_batch;

fn opts() -> LogOptions {
    LogOptions {
        segment_bytes: 1 << 20,
        index_interval_bytes: 4096,
        flush_interval_ms: 3_600_000,
        checkpoint_interval_ms: 3_600_000,
    }
}

#[test]
fn a_base_offset_that_overflows_is_cut_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("bounds", 0);
    let mut sizes = Vec::new();
    {
        let m = LogManager::open(dir.path(), opts()).unwrap();
        let p = m.create(&tp, TopicId::from_bytes([2; 16])).unwrap();
        for i in 0..3 {
            let batch = simple_batch(2, 20, 1_000 + i);
            sizes.push(batch.len() as u64);
            let info = validate_produce_batch(&batch, 1 << 20).unwrap();
            p.append(&Bytes::from(batch), &info, LeaderEpoch(0))
                .unwrap();
        }
        m.shutdown().unwrap();
    }
    // Forget the recovery point so the whole segment is scanned again, then put the last
    // batch's base offset at i64::MAX, so base + delta overflows: its CRC still matches.
    std::fs::remove_file(dir.path().join("recovery-point-offset-checkpoint")).unwrap();
    let log = dir
        .path()
        .join(tp.dir_name())
        .join(segment::file_name(0, "log"));
    let mut bytes = std::fs::read(&log).unwrap();
    let last = (sizes[0] + sizes[1]) as usize;
    bytes[last..last + 8].copy_from_slice(&i64::MAX.to_be_bytes());
    std::fs::write(&log, &bytes).unwrap();

    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.get(&tp).unwrap();
    assert_eq!(
        p.log_end_offset(),
        4,
        "the corrupt batch and what follows are cut"
    );
    let next = simple_batch(1, 20, 2_000);
    let info = validate_produce_batch(&next, 1 << 20).unwrap();
    match p.append(&Bytes::from(next), &info, LeaderEpoch(0)).unwrap() {
        AppendOutcome::Appended { base_offset, .. } => assert_eq!(base_offset, 4),
        other => panic!("unexpected {other:?}"),
    }
}

fn idempotent(p: &PartitionLog, pid: i64, seq: i32, ts: i64, transactional: bool) -> i64 {
    use crate::records::testutil::{build_batch, transactional_batch};
    use crate::records::Compression;
    let recs = [(Some(&b"k"[..]), Some(&b"v"[..]), Vec::new(), ts)];
    let batch = if transactional {
        transactional_batch(&recs, Compression::None, pid, 0, seq)
    } else {
        build_batch(&recs, Compression::None, pid, 0, seq)
    };
    let info = validate_produce_batch(&batch, 1 << 20).unwrap();
    match p
        .append(&Bytes::from(batch), &info, LeaderEpoch(0))
        .unwrap()
    {
        AppendOutcome::Appended { base_offset, .. } => base_offset,
        other => panic!("unexpected {other:?}"),
    }
}

fn producers(p: &PartitionLog) -> Vec<i64> {
    p.active_producers().iter().map(|e| e.producer_id).collect()
}

/// Producer state is bounded: an idle producer id expires after `producer.id.expiration.ms`
/// (by its last batch's timestamp) unless a transaction of its is open, and one whose last
/// batch is below the log start offset is evicted when the start moves.
#[test]
fn producer_state_expires_and_is_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m
        .create(&TopicPartition::new("ids", 0), TopicId::from_bytes([3; 16]))
        .unwrap();
    idempotent(&p, 5, 0, 10_000, false);
    idempotent(&p, 5, 1, 20_000, false);
    idempotent(&p, 6, 0, 10_000, true); // an open transaction
    idempotent(&p, 7, 0, 30_000, false);
    assert_eq!(producers(&p), vec![5, 6, 7]);
    // 5's last batch is at 20 000: not expired 1 ms before its hour, expired at it.
    assert_eq!(p.expire_producers(20_000 + 3_600_000 - 1, 3_600_000), 0);
    assert_eq!(p.expire_producers(20_000 + 3_600_000, 3_600_000), 1);
    assert_eq!(producers(&p), vec![6, 7]);
    // Much later: 7 goes, 6 stays while its transaction is open.
    assert_eq!(p.expire_producers(100_000_000, 3_600_000), 1);
    assert_eq!(producers(&p), vec![6]);
    // 8 writes at offset 4 and beyond; moving the log start past 8's last batch evicts it,
    // but not 6 (open transaction).
    let base = idempotent(&p, 8, 0, 40_000, false);
    idempotent(&p, 9, 0, 40_000, false);
    assert_eq!(producers(&p), vec![6, 8, 9]);
    p.delete_records_before(Offset::from(base + 1)).unwrap();
    assert_eq!(producers(&p), vec![6, 9]);
}
