//! Transactions in the log, on real files: the last stable offset, aborted transactions and
//! their `.txnindex` entries, read_committed reads stopping at the LSO, what survives a restart
//! or a crash, retention removing `.txnindex` files, and the cleaner ignoring aborted records.

use crate::common::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, TopicId};
use bytes::Bytes;

use super::segment::file_name;
use super::*;
use crate::records::build::MarkerKind;
use crate::records::testutil::{build_batch, transactional_batch, TestRecord};
use crate::records::{records, BatchHeader, BatchInfo, Compression};

fn opts() -> LogOptions {
    LogOptions {
        segment_bytes: 1 << 20,
        index_interval_bytes: 4096,
        flush_interval_ms: 3_600_000,
        checkpoint_interval_ms: 3_600_000,
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// Appends one record `key=value` from transactional producer `pid` with sequence `seq`,
/// stamped now (markers carry the broker's clock, and an old timestamp would roll segments).
fn txn_put(p: &PartitionLog, pid: i64, seq: i32, key: &str, value: &str) -> i64 {
    let now = crate::common::now_ms();
    let recs: Vec<TestRecord<'_>> =
        vec![(Some(key.as_bytes()), Some(value.as_bytes()), vec![], now)];
    let b = transactional_batch(&recs, Compression::None, pid, 0, seq);
    let info = BatchInfo::from_header(&BatchHeader::new(&b).unwrap());
    let o = p.append(&Bytes::from(b), &info, LeaderEpoch(0)).unwrap();
    (o.end_offset() - 1).get()
}

/// Appends one plain (non-transactional) record.
fn put(p: &PartitionLog, key: &str, value: &str) -> i64 {
    let now = crate::common::now_ms();
    let recs: Vec<TestRecord<'_>> =
        vec![(Some(key.as_bytes()), Some(value.as_bytes()), vec![], now)];
    let b = build_batch(&recs, Compression::None, -1, -1, -1);
    let info = BatchInfo::from_header(&BatchHeader::new(&b).unwrap());
    p.append(&Bytes::from(b), &info, LeaderEpoch(0))
        .unwrap()
        .end_offset()
        .get()
        - 1
}

fn marker(p: &PartitionLog, pid: i64, kind: MarkerKind) -> i64 {
    p.append_txn_marker(ProducerId(pid), ProducerEpoch(0), kind, 0)
        .unwrap()
        .end_offset()
        .get()
        - 1
}

/// Values a read_committed consumer sees: records below the LSO, minus aborted ones.
fn committed_values(p: &PartitionLog) -> Vec<String> {
    let lso = p.last_stable_offset();
    let aborted = p.aborted_transactions(Offset(0), lso);
    let r = p.read(p.log_start_offset(), 1 << 20, true).unwrap();
    let mut out = Vec::new();
    let mut b = &r.records[..];
    while let Some(h) = BatchHeader::new(b) {
        let n = h.total_size().unwrap();
        let dead = aborted.iter().any(|t| {
            t.producer_id == h.producer_id()
                && (t.first_offset..=t.last_offset).contains(&h.base_offset())
        });
        if h.base_offset() < lso && !h.is_control() && !dead {
            for rec in records(&b[..n], 1 << 20).unwrap().iter() {
                let rec = rec.unwrap();
                out.push(String::from_utf8(rec.value.unwrap().to_vec()).unwrap());
            }
        }
        b = &b[n..];
    }
    out
}

#[test]
fn lso_and_aborted_transactions_follow_the_markers() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.create(&tp(), TopicId::from_bytes([1; 16])).unwrap();
    put(&p, "a", "plain");
    let first7 = txn_put(&p, 7, 0, "a", "seven");
    let first8 = txn_put(&p, 8, 0, "b", "eight");
    txn_put(&p, 7, 1, "c", "seven-2");
    assert_eq!(
        p.last_stable_offset(),
        first7,
        "stops at the oldest open transaction"
    );
    assert_eq!(
        p.open_transactions(),
        vec![
            (ProducerId(7), Offset(first7)),
            (ProducerId(8), Offset(first8))
        ]
    );
    // read_committed reads stop at the LSO; read_uncommitted ones do not.
    let committed = p.read_region(Offset(0), 1 << 20, true, true).unwrap();
    let uncommitted = p.read_region(Offset(0), 1 << 20, true, false).unwrap();
    assert!(committed.len > 0 && committed.len < uncommitted.len);
    assert_eq!(committed.last_stable_offset, first7);
    assert_eq!(committed_values(&p), vec!["plain"]);

    let commit = marker(&p, 7, MarkerKind::Commit);
    assert_eq!(p.last_stable_offset(), first8);
    let abort = marker(&p, 8, MarkerKind::Abort);
    assert_eq!(p.last_stable_offset(), p.log_end_offset());
    assert!(commit < abort);
    let aborted = p.aborted_transactions(Offset(0), Offset(i64::MAX));
    assert_eq!(
        aborted,
        vec![AbortedTxn {
            producer_id: 8,
            first_offset: first8,
            last_offset: abort
        }]
    );
    assert_eq!(committed_values(&p), vec!["plain", "seven", "seven-2"]);
    // The abort is on disk, in the active segment's .txnindex.
    let index = std::fs::read(
        dir.path()
            .join(tp().dir_name())
            .join(file_name(0, "txnindex")),
    )
    .unwrap();
    assert_eq!(index.len(), 34);

    // A restart restores the aborted transaction, and an open one from the batch headers.
    let open9 = txn_put(&p, 9, 0, "d", "nine");
    m.shutdown().unwrap();
    drop(m);
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert_eq!(p.aborted_transactions(Offset(0), Offset(i64::MAX)), aborted);
    assert_eq!(p.open_transactions(), vec![(ProducerId(9), Offset(open9))]);
    assert_eq!(p.last_stable_offset(), open9);
    marker(&p, 9, MarkerKind::Commit);
    assert_eq!(
        committed_values(&p),
        vec!["plain", "seven", "seven-2", "nine"]
    );
}

#[test]
fn an_index_entry_whose_marker_was_lost_is_dropped_at_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join(tp().dir_name());
    let (end_before_abort, image) = {
        let m = LogManager::open(dir.path(), opts()).unwrap();
        let p = m.create(&tp(), TopicId::from_bytes([1; 16])).unwrap();
        txn_put(&p, 5, 0, "k", "v");
        m.shutdown().unwrap();
        let end = p.log_end_offset();
        let log = std::fs::read(pdir.join(file_name(0, "log"))).unwrap();
        // Abort, and keep the .txnindex entry but not the marker: a crash before the log's
        // fsync reached the disk.
        marker(&p, 5, MarkerKind::Abort);
        (end, log)
    };
    std::fs::write(pdir.join(file_name(0, "log")), &image).unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert_eq!(p.log_end_offset(), end_before_abort);
    assert!(
        p.aborted_transactions(Offset(0), Offset(i64::MAX))
            .is_empty(),
        "no marker, no abort"
    );
    assert_eq!(
        p.open_transactions().len(),
        1,
        "the transaction is open again"
    );
}

#[test]
fn retention_removes_txn_indexes_and_forgets_old_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.create(&tp(), TopicId::from_bytes([1; 16])).unwrap();
    let mut c = p.config();
    c.segment_bytes = 200;
    p.set_config(c);
    txn_put(&p, 5, 0, "k", "v");
    marker(&p, 5, MarkerKind::Abort);
    for i in 0..4 {
        put(&p, "x", &format!("{i}"));
    }
    let pdir = dir.path().join(tp().dir_name());
    let first = p.segment_base_offsets()[0];
    let txnindex = |base: i64| pdir.join(file_name(base, "txnindex"));
    assert!(p
        .segment_base_offsets()
        .into_iter()
        .any(|b| txnindex(b).exists()));
    p.delete_records_before(p.log_end_offset() - 1).unwrap();
    assert!(!txnindex(first).exists());
    assert!(p
        .aborted_transactions(Offset(0), Offset(i64::MAX))
        .is_empty());
}

#[test]
fn the_cleaner_drops_aborted_records_and_stops_at_open_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.create(&tp(), TopicId::from_bytes([1; 16])).unwrap();
    let mut c = p.config();
    c.compact = true;
    c.delete = false;
    c.segment_bytes = 300;
    p.set_config(c);
    put(&p, "k", "committed");
    txn_put(&p, 5, 0, "k", "aborted");
    marker(&p, 5, MarkerKind::Abort);
    let open = txn_put(&p, 6, 0, "j", "open");
    for i in 0..6 {
        put(&p, "pad", &format!("{i}"));
    }
    assert!(p.segment_base_offsets().len() > 2);
    p.compact(crate::common::now_ms()).unwrap();
    // Nothing at or after the open transaction was cleaned.
    assert!(p.first_dirty_offset() <= open);
    let values = committed_values(&p);
    assert!(values.contains(&"committed".to_string()), "{values:?}");
    let raw = p.read(Offset(0), 1 << 20, true).unwrap().records;
    let all: Vec<String> = {
        let mut v = Vec::new();
        let mut b = &raw[..];
        while let Some(h) = BatchHeader::new(b) {
            let n = h.total_size().unwrap();
            for r in records(&b[..n], 1 << 20).unwrap().iter() {
                if let Some(val) = r.unwrap().value {
                    v.push(String::from_utf8(val.to_vec()).unwrap());
                }
            }
            b = &b[n..];
        }
        v
    };
    assert!(
        !all.contains(&"aborted".to_string()),
        "aborted records are removed: {all:?}"
    );
}

#[test]
fn a_marker_with_a_newer_epoch_fences_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.create(&tp(), TopicId::from_bytes([1; 16])).unwrap();
    txn_put(&p, 5, 0, "k", "v");
    // The coordinator aborts on a timeout with the bumped epoch 1.
    p.append_txn_marker(ProducerId(5), ProducerEpoch(1), MarkerKind::Abort, 0)
        .unwrap();
    let now = crate::common::now_ms();
    let recs: Vec<TestRecord<'_>> = vec![(Some(b"k"), Some(b"late"), vec![], now)];
    let b = transactional_batch(&recs, Compression::None, 5, 0, 1);
    let info = BatchInfo::from_header(&BatchHeader::new(&b).unwrap());
    assert!(
        matches!(
            p.append(&Bytes::from(b), &info, LeaderEpoch(0)),
            Err(LogError::InvalidProducerEpoch { .. })
        ),
        "epoch 0 is fenced"
    );
    // The same holds after a restart (the marker is found by the recovery scan).
    m.shutdown().unwrap();
    drop(m);
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    let b = transactional_batch(&recs, Compression::None, 5, 0, 1);
    let info = BatchInfo::from_header(&BatchHeader::new(&b).unwrap());
    assert!(p.append(&Bytes::from(b), &info, LeaderEpoch(0)).is_err());
    let b = transactional_batch(&recs, Compression::None, 5, 1, 0);
    let info = BatchInfo::from_header(&BatchHeader::new(&b).unwrap());
    p.append(&Bytes::from(b), &info, LeaderEpoch(0)).unwrap();
}

#[test]
fn producer_snapshots_carry_state_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.create(&tp(), TopicId::from_bytes([1; 16])).unwrap();
    let mut c = p.config();
    c.segment_bytes = 100; // one batch a segment
    p.set_config(c);
    // An idempotent producer's last batch and a transaction's start, then many segments of
    // other data: both are far outside the last two segments.
    let now = crate::common::now_ms();
    let recs: Vec<TestRecord<'_>> = vec![(Some(b"k"), Some(b"v"), vec![], now)];
    let idem = build_batch(&recs, Compression::None, 40, 0, 0);
    let info = BatchInfo::from_header(&BatchHeader::new(&idem).unwrap());
    let first = p
        .append(&Bytes::from(idem.clone()), &info, LeaderEpoch(0))
        .unwrap();
    let open = txn_put(&p, 41, 0, "t", "open");
    for i in 0..10 {
        put(&p, "x", &format!("{i}"));
    }
    assert!(p.segment_base_offsets().len() > 8);
    m.shutdown().unwrap();
    drop(m);
    let snapshots = std::fs::read_dir(dir.path().join(tp().dir_name()))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snapshot")
        })
        .count();
    assert!(snapshots > 8, "one snapshot a roll: {snapshots}");

    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    // The retried idempotent batch is recognised, with its original offset.
    match p.append(&Bytes::from(idem), &info, LeaderEpoch(0)).unwrap() {
        AppendOutcome::Duplicate { base_offset, .. } => {
            assert_eq!(base_offset, first.end_offset() - 1)
        }
        other => panic!("a retry must be a duplicate, got {other:?}"),
    }
    // The open transaction still holds the last stable offset back.
    assert_eq!(p.open_transactions(), vec![(ProducerId(41), Offset(open))]);
    assert_eq!(p.last_stable_offset(), open);
    // Its abort marker records the transaction's real first offset.
    p.append_txn_marker(ProducerId(41), ProducerEpoch(0), MarkerKind::Abort, 0)
        .unwrap();
    let aborted = p.aborted_transactions(Offset(0), Offset(i64::MAX));
    assert_eq!(aborted.len(), 1);
    assert_eq!(aborted[0].first_offset, open);

    // A damaged newest snapshot is skipped: the one before it still serves.
    m.shutdown().unwrap();
    drop(m);
    let pdir = dir.path().join(tp().dir_name());
    let bases: Vec<i64> = {
        let m = LogManager::open(dir.path(), opts()).unwrap();
        let b = m.get(&tp()).unwrap().segment_base_offsets();
        m.shutdown().unwrap();
        b
    };
    let newest = bases
        .iter()
        .rev()
        .find(|b| pdir.join(file_name(**b, "snapshot")).exists())
        .unwrap();
    std::fs::write(pdir.join(file_name(*newest, "snapshot")), b"garbage").unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert!(p.open_transactions().is_empty(), "the abort closed it");
    assert_eq!(p.last_stable_offset(), p.log_end_offset());
}
