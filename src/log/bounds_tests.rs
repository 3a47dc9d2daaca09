//! Offsets read from disk are checked, never trusted to fit: a batch whose base offset (outside
//! the CRC, so a flipped bit passes the checksum) makes `base + last offset delta` (or the next
//! offset after it) overflow is an invalid batch that recovery cuts away, and an index entry
//! past i64::MAX is not trusted — never an arithmetic wrap or a panic. Producer state is
//! bounded (expiry and eviction).

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

/// A batch whose last offset is i64::MAX leaves no offset for the next batch: `base + delta`
/// fits but `+ 1` does not. Recovery cuts it (it used to overflow computing the next offset).
/// The segment is moved to a base near i64::MAX, with its batches' base offsets (outside the
/// CRC) to match.
#[test]
fn a_batch_ending_at_the_largest_offset_is_cut_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("bounds", 0);
    let mut sizes = Vec::new();
    {
        let m = LogManager::open(dir.path(), opts()).unwrap();
        let p = m.create(&tp, TopicId::from_bytes([2; 16])).unwrap();
        for i in 0..2 {
            let batch = simple_batch(2, 20, 1_000 + i);
            sizes.push(batch.len());
            let info = validate_produce_batch(&batch, 1 << 20).unwrap();
            p.append(&Bytes::from(batch), &info, LeaderEpoch(0))
                .unwrap();
        }
        m.shutdown().unwrap();
    }
    std::fs::remove_file(dir.path().join("recovery-point-offset-checkpoint")).unwrap();
    let pdir = dir.path().join(tp.dir_name());
    let base = i64::MAX - 5;
    let mut bytes = std::fs::read(pdir.join(segment::file_name(0, "log"))).unwrap();
    for ext in ["log", "index", "timeindex"] {
        let _ = std::fs::remove_file(pdir.join(segment::file_name(0, ext)));
    }
    // Two batches of two records: offsets MAX-5..MAX-4, then MAX-1..MAX.
    bytes[..8].copy_from_slice(&base.to_be_bytes());
    let second = sizes[0];
    bytes[second..second + 8].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
    std::fs::write(pdir.join(segment::file_name(base, "log")), &bytes).unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    assert_eq!(
        m.get(&tp).unwrap().log_end_offset(),
        base + 2,
        "the first batch stays, the one ending at i64::MAX is cut"
    );
}

/// Index entries are read from disk too: a segment whose base offset is near i64::MAX with an
/// entry whose relative offset takes it past i64::MAX is not trusted (the whole segment is
/// scanned, and its batches, below the base, are cut), rather than an overflow.
#[test]
fn an_index_entry_past_the_largest_offset_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("bounds", 0);
    {
        let m = LogManager::open(dir.path(), opts()).unwrap();
        let p = m.create(&tp, TopicId::from_bytes([2; 16])).unwrap();
        let batch = simple_batch(2, 20, 1_000);
        let info = validate_produce_batch(&batch, 1 << 20).unwrap();
        p.append(&Bytes::from(batch), &info, LeaderEpoch(0))
            .unwrap();
        m.shutdown().unwrap();
    }
    let pdir = dir.path().join(tp.dir_name());
    let base = i64::MAX - 10;
    for ext in ["log", "index", "timeindex"] {
        let from = pdir.join(segment::file_name(0, ext));
        if from.exists() {
            std::fs::rename(&from, pdir.join(segment::file_name(base, ext))).unwrap();
        }
    }
    // One entry: relative offset 100 (base + 100 > i64::MAX) at position 0.
    let mut entry = 100i32.to_be_bytes().to_vec();
    entry.extend_from_slice(&0u32.to_be_bytes());
    std::fs::write(pdir.join(segment::file_name(base, "index")), entry).unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    assert_eq!(m.get(&tp).unwrap().log_end_offset(), base);
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
