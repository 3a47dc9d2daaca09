//! The storage side of replication on real files: the leader epoch cache and its checkpoint,
//! follower appends of a leader's fetched bytes, truncation (within a segment, across segments,
//! inside a batch, of everything), the rebuilt producer and transaction state, the explicit
//! high watermark and its watches, and crashes during and after a truncation (through the crash
//! model of [`FaultyIo`]).

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::crash_tests::{check_indexes, read_all};
use super::io::FaultyIo;
use super::leader_epoch::LEADER_EPOCH_FILE;
use super::*;
use crate::common::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, TopicId};
use crate::records::batch::BatchHeader;
use crate::records::build::MarkerKind;
use crate::records::testutil::{idempotent_batch, simple_batch, transactional_batch};
use crate::records::{validate_produce_batch, Compression};

const ID: TopicId = TopicId::from_bytes([9; 16]);

fn opts() -> LogOptions {
    LogOptions {
        segment_bytes: 600,
        index_interval_bytes: 100,
        flush_interval_ms: 3_600_000,
        checkpoint_interval_ms: 3_600_000,
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("r", 0)
}

fn open(dir: &Path) -> (Arc<LogManager>, Arc<PartitionLog>) {
    let m = LogManager::open(dir, opts()).unwrap();
    let p = m.create(&tp(), ID).unwrap();
    (m, p)
}

fn lead(p: &PartitionLog, batch: Vec<u8>, epoch: i32) -> Result<AppendOutcome, LogError> {
    let info = validate_produce_batch(&batch, 1 << 24).unwrap();
    p.append(&Bytes::from(batch), &info, LeaderEpoch(epoch))
}

/// What a follower's Fetch from `offset` would carry: the region bytes up to the log end.
fn fetch(p: &PartitionLog, offset: i64, max: usize) -> Bytes {
    let r = p.read_region_to_log_end(Offset(offset), max, true).unwrap();
    let Some(f) = r.file else {
        return Bytes::new();
    };
    let mut buf = vec![0u8; r.len as usize];
    f.read_exact_at(&mut buf, r.position).unwrap();
    Bytes::from(buf)
}

/// Replicates everything `leader` has past `follower`'s end.
fn catch_up(leader: &PartitionLog, follower: &PartitionLog) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let bytes = fetch(leader, follower.log_end_offset().get(), 700);
        assert!(!bytes.is_empty());
        follower.append_replica(&bytes).unwrap();
    }
}

fn epochs(p: &PartitionLog) -> Vec<(i32, i64)> {
    p.epoch_entries()
        .into_iter()
        .map(|(e, o)| (e, o.get()))
        .collect()
}

fn header_epochs(batches: &[Vec<u8>]) -> Vec<(i64, i32)> {
    batches
        .iter()
        .map(|b| {
            let h = BatchHeader::new(b).unwrap();
            (h.base_offset(), h.partition_leader_epoch())
        })
        .collect()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn leader_appends_keep_the_epoch_cache_and_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (m, p) = open(dir.path());
    assert_eq!(p.latest_epoch(), None);
    assert_eq!(p.end_offset_for_epoch(0), None, "empty cache");
    lead(&p, simple_batch(3, 10, 1), 2).unwrap();
    lead(&p, simple_batch(2, 10, 2), 2).unwrap();
    let file = p.dir().join(LEADER_EPOCH_FILE);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n1\n2 0\n");
    assert!(matches!(
        lead(&p, simple_batch(1, 10, 3), 1),
        Err(LogError::FencedLeaderEpoch {
            epoch: 1,
            latest: 2
        })
    ));
    assert_eq!(p.log_end_offset(), 5, "a fenced append writes nothing");
    lead(&p, simple_batch(4, 10, 4), 5).unwrap();
    assert_eq!(epochs(&p), vec![(2, 0), (5, 5)]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n2\n2 0\n5 5\n");
    assert_eq!(p.end_offset_for_epoch(1), None, "below every epoch");
    assert_eq!(p.end_offset_for_epoch(2), Some((2, Offset(5))));
    assert_eq!(p.end_offset_for_epoch(4), Some((2, Offset(5))));
    assert_eq!(p.end_offset_for_epoch(5), Some((5, Offset(9))));
    assert_eq!(p.end_offset_for_epoch(7), Some((5, Offset(9))));
    // A new leader records its epoch before appending anything.
    p.begin_leader_epoch(LeaderEpoch(6)).unwrap();
    assert_eq!(p.end_offset_for_epoch(5), Some((5, Offset(9))));
    assert_eq!(p.end_offset_for_epoch(6), Some((6, Offset(9))));
    assert!(p.begin_leader_epoch(LeaderEpoch(4)).is_err());
    let stored = read_all(&p);
    assert_eq!(
        header_epochs(&stored),
        vec![(0, 2), (3, 2), (5, 5)],
        "batches carry the epoch they were written in"
    );
    m.shutdown().unwrap();
    drop((m, p));
    // Reopened: the checkpoint, minus the entry with no batch (6 starts at the end).
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert_eq!(epochs(&p), vec![(2, 0), (5, 5)]);
    drop((m, p));
    // Without the file (a log from before replication), the whole log is epoch 0.
    std::fs::remove_file(&file).unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert_eq!(epochs(&p), vec![(0, 0)]);
    assert_eq!(p.end_offset_for_epoch(3), Some((0, Offset(9))));
}

#[test]
fn replica_append_keeps_offsets_epochs_and_bytes() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_lm, l) = open(ld.path());
    let (_fm, f) = open(fd.path());
    for i in 0..6 {
        lead(&l, simple_batch(1 + i % 3, 40, 100 + i as i64), 1).unwrap();
    }
    for i in 0..5 {
        lead(&l, idempotent_batch(2, 77, 0, 2 * i), 4).unwrap();
    }
    // A partial batch after whole ones is ignored, as Kafka does at a Fetch's byte limit.
    let all = fetch(&l, 0, 1 << 20);
    let whole = fetch(&l, 0, 300);
    let mut cut = whole.to_vec();
    cut.extend_from_slice(&all[whole.len()..whole.len() + 30]);
    let r = f.append_replica(&Bytes::from(cut)).unwrap();
    assert_eq!(r.bytes, whole.len() as u64);
    assert_eq!(r.log_end_offset, f.log_end_offset());
    assert!(r.batches >= 1);
    catch_up(&l, &f);
    assert_eq!(f.log_end_offset(), l.log_end_offset());
    assert_eq!(read_all(&f), read_all(&l), "byte-identical copies");
    assert_eq!(epochs(&f), epochs(&l));
    assert_eq!(epochs(&f), vec![(1, 0), (4, 12)]);
    assert_eq!(
        std::fs::read(f.dir().join(LEADER_EPOCH_FILE)).unwrap(),
        std::fs::read(l.dir().join(LEADER_EPOCH_FILE)).unwrap()
    );
    assert!(
        f.segment_base_offsets().len() > 1,
        "the follower rolled too"
    );
    check_indexes(f.dir(), &f);
    // Fetched again: everything is already there.
    let again = f.append_replica(&fetch(&l, 0, 1 << 20)).unwrap();
    assert_eq!((again.batches, again.bytes), (0, 0));
    // A follower that becomes leader still knows the producer: its retry is a duplicate.
    let dup = lead(&f, idempotent_batch(2, 77, 0, 8), 6).unwrap();
    assert!(
        matches!(dup, AppendOutcome::Duplicate { base_offset, .. } if base_offset == l.log_end_offset().get() - 2),
        "{dup:?}"
    );
    assert!(matches!(
        lead(&f, idempotent_batch(1, 77, 0, 11), 6),
        Err(LogError::OutOfOrderSequence { expected: 10, .. })
    ));
}

#[test]
fn replica_append_rejects_bad_crc_and_overlaps_and_accepts_gaps() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_lm, l) = open(ld.path());
    let (fm, f) = open(fd.path());
    lead(&l, simple_batch(3, 10, 1), 0).unwrap();
    lead(&l, simple_batch(2, 10, 2), 0).unwrap();
    let bytes = fetch(&l, 0, 1 << 20);
    let first_len = BatchHeader::new(&bytes).unwrap().total_size().unwrap();
    let mut bad = bytes.to_vec();
    bad[first_len + 70] ^= 0x40;
    assert!(matches!(
        f.append_replica(&Bytes::from(bad)),
        Err(LogError::Corrupt(_))
    ));
    assert_eq!(
        f.log_end_offset(),
        3,
        "the batch before the bad one is kept"
    );
    // A batch that straddles the log end (another leader's layout) is refused.
    let mut straddling = simple_batch(4, 10, 3);
    straddling[..8].copy_from_slice(&1i64.to_be_bytes());
    assert!(matches!(
        f.append_replica(&Bytes::from(straddling)),
        Err(LogError::UnexpectedAppendOffset {
            base_offset: 1,
            log_end_offset: 3
        })
    ));
    // A gap (the leader's log was compacted) is legal, also across a roll.
    let mut gapped = simple_batch(2, 500, 4);
    gapped[..8].copy_from_slice(&10i64.to_be_bytes());
    gapped[12..16].copy_from_slice(&3i32.to_be_bytes());
    f.append_replica(&Bytes::from(gapped.clone())).unwrap();
    let mut gapped2 = simple_batch(1, 500, 5);
    gapped2[..8].copy_from_slice(&20i64.to_be_bytes());
    gapped2[12..16].copy_from_slice(&3i32.to_be_bytes());
    f.append_replica(&Bytes::from(gapped2.clone())).unwrap();
    assert_eq!(f.log_end_offset(), 21);
    assert_eq!(epochs(&f), vec![(0, 0), (3, 10)]);
    let before = read_all(&f);
    assert_eq!(before[1], gapped, "bytes unchanged");
    assert_eq!(before[2], gapped2);
    assert_eq!(
        f.read(Offset(5), 1 << 20, true).unwrap().records[..],
        gapped[..]
    );
    fm.shutdown().unwrap();
    drop((fm, f));
    let m = LogManager::open(fd.path(), opts()).unwrap();
    let f = m.get(&tp()).unwrap();
    assert_eq!(f.log_end_offset(), 21, "recovery keeps the gapped batches");
    assert_eq!(read_all(&f), before);
}

#[test]
fn truncation_within_and_across_segments_then_appends_continue() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_lm, l) = open(ld.path());
    let (fm, f) = open(fd.path());
    for i in 0..30 {
        lead(
            &l,
            simple_batch(1 + i % 3, 60, 10 * i as i64),
            1 + (i / 10) as i32,
        )
        .unwrap();
    }
    catch_up(&l, &f);
    let leader = read_all(&l);
    let segs = f.segment_base_offsets();
    assert!(segs.len() >= 4, "{segs:?}");
    // A divergent suffix on the follower (a deposed leader's unreplicated writes).
    for i in 0..4 {
        lead(&f, simple_batch(2, 60, 1000 + i), 7).unwrap();
    }
    assert_eq!(f.latest_epoch(), Some(7));
    // Truncate at a batch boundary in the middle of the second segment.
    let second = segs[1];
    let boundary = leader
        .iter()
        .map(|b| BatchHeader::new(b).unwrap().base_offset())
        .find(|&o| o > second && o < segs[2])
        .unwrap();
    f.truncate_to(Offset(boundary)).unwrap();
    assert_eq!(f.log_end_offset(), boundary);
    assert_eq!(f.segment_base_offsets(), segs[..2].to_vec());
    let kept = leader
        .iter()
        .take_while(|b| BatchHeader::new(b).unwrap().base_offset() < boundary)
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(read_all(&f), kept);
    assert!(f.latest_epoch() < Some(7), "the divergent epoch is gone");
    assert!(f.durable_offset() <= boundary);
    check_indexes(f.dir(), &f);
    // Appends continue at the new end, and the copy converges again.
    catch_up(&l, &f);
    assert_eq!(read_all(&f), leader);
    assert_eq!(epochs(&f), epochs(&l));
    check_indexes(f.dir(), &f);
    // An offset inside a batch cuts before that batch.
    let inside = leader
        .iter()
        .map(|b| BatchHeader::new(b).unwrap())
        .find(|h| h.last_offset() > h.base_offset() && h.base_offset() > 5)
        .map(|h| (h.base_offset(), h.base_offset() + 1))
        .unwrap();
    f.truncate_to(Offset(inside.1)).unwrap();
    assert_eq!(f.log_end_offset(), inside.0);
    let after = read_all(&f);
    check_indexes(f.dir(), &f);
    let cache = epochs(&f);
    assert!(cache.iter().all(|&(_, s)| s < inside.0));
    // No-op at or past the end.
    f.truncate_to(Offset(inside.0 + 100)).unwrap();
    assert_eq!(f.log_end_offset(), inside.0);
    // Reopening (recovery) agrees with the truncated log: nothing comes back.
    drop(f);
    fm.shutdown().unwrap();
    drop(fm);
    let m = LogManager::open(fd.path(), opts()).unwrap();
    let f = m.get(&tp()).unwrap();
    assert_eq!(f.log_end_offset(), inside.0);
    assert_eq!(read_all(&f), after);
    assert_eq!(epochs(&f), cache);
    check_indexes(f.dir(), &f);
    catch_up(&l, &f);
    assert_eq!(read_all(&f), leader);
}

#[test]
fn truncation_rebuilds_producer_and_transaction_state() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_lm, l) = open(ld.path());
    let (fm, f) = open(fd.path());
    lead(&l, idempotent_batch(2, 7, 0, 0), 1).unwrap();
    let v = [b't'; 30];
    let recs = [(None, Some(&v[..]), Vec::new(), 5)];
    let txn_at = lead(
        &l,
        transactional_batch(&recs, Compression::None, 9, 0, 0),
        1,
    )
    .unwrap()
    .end_offset()
    .get()
        - 1;
    let seq2 = lead(&l, idempotent_batch(2, 7, 0, 2), 1).unwrap();
    let marker = l
        .append_txn_marker(ProducerId(9), ProducerEpoch(0), MarkerKind::Abort, 0)
        .unwrap();
    let marker_at = marker.end_offset().get() - 1;
    catch_up(&l, &f);
    let aborted = f.aborted_transactions(Offset(0), f.log_end_offset());
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (
            aborted[0].producer_id,
            aborted[0].first_offset,
            aborted[0].last_offset
        ),
        (9, txn_at, marker_at)
    );
    assert!(f.open_transactions().is_empty());
    assert_eq!(f.last_stable_offset(), f.log_end_offset());
    // The marker is cut: the transaction is open again and nothing is aborted.
    f.truncate_to(Offset(marker_at)).unwrap();
    assert_eq!(f.open_transactions(), vec![(ProducerId(9), Offset(txn_at))]);
    assert!(f
        .aborted_transactions(Offset(0), f.log_end_offset())
        .is_empty());
    assert_eq!(f.last_stable_offset(), txn_at);
    // Producer 7's second batch is cut too: its retry is new, not a duplicate.
    f.truncate_to(Offset(seq2.end_offset().get() - 2)).unwrap();
    let producers = f.active_producers();
    let p7 = producers.iter().find(|p| p.producer_id == 7).unwrap();
    assert_eq!(p7.last_sequence, 1);
    drop(f);
    fm.shutdown().unwrap();
    drop(fm);
    let m = LogManager::open(fd.path(), opts()).unwrap();
    let f = m.get(&tp()).unwrap();
    assert_eq!(f.open_transactions(), vec![(ProducerId(9), Offset(txn_at))]);
    assert!(f
        .aborted_transactions(Offset(0), f.log_end_offset())
        .is_empty());
    catch_up(&l, &f);
    assert_eq!(read_all(&f), read_all(&l));
    assert_eq!(
        f.aborted_transactions(Offset(0), f.log_end_offset()),
        aborted
    );
    let dup = lead(&f, idempotent_batch(2, 7, 0, 2), 2).unwrap();
    assert!(matches!(dup, AppendOutcome::Duplicate { .. }), "{dup:?}");
}

#[test]
fn truncate_fully_starts_an_empty_log_at_the_offset() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_lm, l) = open(ld.path());
    let (fm, f) = open(fd.path());
    for i in 0..12 {
        lead(&l, simple_batch(2, 80, i), 1).unwrap();
    }
    catch_up(&l, &f);
    f.truncate_fully_and_start_at(Offset(100)).unwrap();
    assert_eq!(f.log_end_offset(), 100);
    assert_eq!(f.log_start_offset(), 100);
    assert_eq!(f.segment_base_offsets(), vec![100]);
    assert!(epochs(&f).is_empty());
    assert!(f.active_producers().is_empty());
    let mut b = simple_batch(3, 10, 1);
    b[..8].copy_from_slice(&100i64.to_be_bytes());
    b[12..16].copy_from_slice(&3i32.to_be_bytes());
    f.append_replica(&Bytes::from(b)).unwrap();
    assert_eq!(epochs(&f), vec![(3, 100)]);
    block_on(f.wait_durable(Offset(103))).unwrap();
    drop(f);
    fm.shutdown().unwrap();
    drop(fm);
    let m = LogManager::open(fd.path(), opts()).unwrap();
    let f = m.get(&tp()).unwrap();
    assert_eq!(f.log_start_offset(), 100);
    assert_eq!(f.log_end_offset(), 103);
    assert_eq!(epochs(&f), vec![(3, 100)]);
}

#[test]
fn explicit_high_watermark_bounds_consumer_reads_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, p) = open(dir.path());
    lead(&p, simple_batch(2, 10, 100), 0).unwrap();
    assert_eq!(p.high_watermark(), 2, "follows the log end by default");
    p.set_high_watermark_mode(false);
    p.set_high_watermark(Offset(2));
    let mut consumer = p.subscribe();
    let mut follower = p.subscribe_log_end();
    consumer.borrow_and_update();
    follower.borrow_and_update();
    lead(&p, simple_batch(3, 10, 200), 0).unwrap();
    lead(&p, simple_batch(1, 10, 300), 0).unwrap();
    assert!(follower.has_changed().unwrap(), "appends wake followers");
    assert!(!consumer.has_changed().unwrap(), "but not consumers");
    assert_eq!(p.log_end_offset(), 6);
    assert_eq!(p.high_watermark(), 2);
    // Consumers see only the first batch; followers everything.
    let r = p.read(Offset(0), 1 << 20, true).unwrap();
    assert_eq!(r.high_watermark, 2);
    assert_eq!(
        BatchHeader::new(&r.records).unwrap().total_size(),
        Some(r.records.len())
    );
    assert!(p.read(Offset(2), 1 << 20, true).unwrap().records.is_empty());
    let region = p.read_region(Offset(2), 1 << 20, true, false).unwrap();
    assert!(region.file.is_none() && region.len == 0);
    assert_eq!(region.high_watermark, 2);
    let region = p.read_region_to_log_end(Offset(2), 1 << 20, true).unwrap();
    assert!(region.len > 0);
    assert_eq!(region.high_watermark, 2, "the follower learns the HW");
    assert_eq!(fetch(&p, 0, 1 << 20).len() as u64, p.size_bytes());
    // ListOffsets: latest is the HW; a timestamp found only above it is not found.
    assert_eq!(p.offset_for_timestamp(150).unwrap(), None);
    assert_eq!(p.max_timestamp().unwrap(), None);
    assert_eq!(p.last_stable_offset(), 2);
    // Raising the HW wakes consumers; it never passes the log end.
    p.set_high_watermark(Offset(5));
    assert!(consumer.has_changed().unwrap());
    assert_eq!(*consumer.borrow_and_update(), 5);
    assert_eq!(p.offset_for_timestamp(150).unwrap(), Some((2, 200)));
    p.set_high_watermark(Offset(50));
    assert_eq!(p.high_watermark(), 6);
    // An open transaction holds the LSO, which never passes the HW.
    let v = [b't'; 10];
    let recs = [(None, Some(&v[..]), Vec::new(), 5)];
    lead(
        &p,
        transactional_batch(&recs, Compression::None, 4, 0, 0),
        0,
    )
    .unwrap();
    assert_eq!(p.high_watermark(), 6);
    assert_eq!(p.last_stable_offset(), 6);
    p.set_high_watermark(Offset(7));
    assert_eq!(
        p.last_stable_offset(),
        6,
        "the open transaction starts at 6"
    );
    let committed = p.read_region(Offset(6), 1 << 20, true, true).unwrap();
    assert_eq!(committed.len, 0);
    // DeleteRecords stops at the HW.
    assert!(p.delete_records_before(Offset(7)).is_ok());
    assert!(p.delete_records_before(Offset(8)).is_err());
    // Back to following the log end: consumers are woken and see everything.
    p.set_high_watermark_mode(true);
    assert_eq!(p.high_watermark(), p.log_end_offset());
}

#[test]
fn truncation_lowers_the_high_watermark_and_wakes_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, p) = open(dir.path());
    for i in 0..5 {
        lead(&p, simple_batch(2, 10, i), 0).unwrap();
    }
    p.set_high_watermark_mode(false);
    p.set_high_watermark(Offset(8));
    let mut consumer = p.subscribe();
    let mut follower = p.subscribe_log_end();
    consumer.borrow_and_update();
    follower.borrow_and_update();
    p.truncate_to(Offset(4)).unwrap();
    assert_eq!(p.high_watermark(), 4);
    assert!(follower.has_changed().unwrap());
    assert_eq!(*follower.borrow_and_update(), 4);
    assert_eq!(*consumer.borrow_and_update(), 4);
}

/// The disk a crash right now would leave, reopened with the real recovery code.
fn crash_and_reopen(io: &FaultyIo, root: &Path) -> (tempfile::TempDir, Arc<LogManager>) {
    io.crash_now();
    let out = tempfile::tempdir().unwrap();
    io.materialise(root, out.path()).unwrap();
    let m = LogManager::open(out.path(), opts()).unwrap();
    (out, m)
}

/// A durable follower log of `n` batches over several segments, through the crash model;
/// returns its batches and the offset of a batch boundary in its second segment.
fn durable_log(io: &Arc<FaultyIo>, root: &Path) -> (Arc<LogManager>, Arc<PartitionLog>) {
    let m = LogManager::open_with_io(root, opts(), io.clone()).unwrap();
    let p = m.create(&tp(), ID).unwrap();
    for i in 0..16 {
        lead(
            &p,
            simple_batch(1 + i % 3, 70, i as i64),
            1 + (i / 6) as i32,
        )
        .unwrap();
    }
    p.flush().unwrap();
    m.checkpoint().unwrap();
    (m, p)
}

#[test]
fn a_crash_during_truncation_leaves_a_prefix_and_after_it_nothing_comes_back() {
    // Count the operations of one truncation, then crash at each of them in turn.
    let (target, cut_end, ops) = {
        let root = tempfile::tempdir().unwrap();
        let io = Arc::new(FaultyIo::new());
        let (_m, p) = durable_log(&io, root.path());
        let target = p.segment_base_offsets()[1] + 1;
        let before = io.ops();
        p.truncate_to(Offset(target)).unwrap();
        (target, p.log_end_offset().get(), io.ops() - before)
    };
    assert!(ops > 5, "{ops}");
    for k in 1..=ops + 1 {
        let root = tempfile::tempdir().unwrap();
        let io = Arc::new(FaultyIo::new());
        let (m, p) = durable_log(&io, root.path());
        let full = read_all(&p);
        let old_end = p.log_end_offset().get();
        io.crash_after(k);
        let done = p.truncate_to(Offset(target)).is_ok();
        drop((m, p));
        let (out, m) = crash_and_reopen(&io, root.path());
        let p = m.get(&tp()).expect("partition survives");
        let leo = p.log_end_offset().get();
        let got = read_all(&p);
        assert!(
            got.len() <= full.len() && got[..] == full[..got.len()],
            "crash {k}: a prefix"
        );
        if done {
            assert_eq!(leo, cut_end, "crash {k} after the truncation returned");
        } else {
            assert!(leo >= cut_end && leo <= old_end, "crash {k}: end {leo}");
        }
        assert!(epochs(&p).iter().all(|&(_, s)| s < leo.max(1)));
        check_indexes(&out.path().join(tp().dir_name()), &p);
    }
}

#[test]
fn appends_after_a_truncation_survive_a_crash_without_resurrecting_the_cut() {
    for case in 0..12u64 {
        let root = tempfile::tempdir().unwrap();
        let io = Arc::new(FaultyIo::new());
        let (m, p) = durable_log(&io, root.path());
        let segs = p.segment_base_offsets();
        let target = segs[1] + 1 + (case % 3) as i64;
        p.truncate_to(Offset(target)).unwrap();
        let end = p.log_end_offset().get();
        let kept = read_all(&p);
        // New history in a newer epoch, more than a segment of it, partly flushed.
        let mut acked = end;
        for i in 0..(4 + case) {
            lead(&p, simple_batch(2, 90, 500 + i as i64), 9).unwrap();
            if i % 3 == case % 3 {
                p.flush().unwrap();
                acked = p.durable_offset().get();
            }
        }
        drop((m, p));
        let (out, m) = crash_and_reopen(&io, root.path());
        let p = m.get(&tp()).unwrap();
        let got = read_all(&p);
        assert!(
            p.log_end_offset() >= acked,
            "case {case}: acknowledged data lost"
        );
        assert_eq!(got[..kept.len()], kept[..], "case {case}: the kept prefix");
        for b in &got[kept.len()..] {
            let h = BatchHeader::new(b).unwrap();
            assert_eq!(
                h.partition_leader_epoch(),
                9,
                "case {case}: only new batches"
            );
            assert!(h.base_offset() >= end);
        }
        let cache = epochs(&p);
        assert!(cache.iter().all(|&(e, _)| e <= 9));
        if got.len() > kept.len() {
            assert_eq!(cache.last(), Some(&(9, end)), "case {case}: {cache:?}");
        }
        check_indexes(&out.path().join(tp().dir_name()), &p);
    }
}

#[test]
fn the_epoch_checkpoint_survives_a_crash_at_any_operation() {
    for case in 0..40u64 {
        let root = tempfile::tempdir().unwrap();
        let io = Arc::new(FaultyIo::new());
        io.crash_after(1 + case * 3);
        let mut acked: Vec<(i64, i32)> = Vec::new();
        let mut written: Vec<(i64, i32)> = Vec::new();
        let run = (|| -> Result<(), LogError> {
            let m = LogManager::open_with_io(root.path(), opts(), io.clone())?;
            let p = m.create(&tp(), ID)?;
            for i in 0..20i64 {
                let epoch = (i / 4) as i32 * 2;
                let o = lead(&p, simple_batch(2, 40, i), epoch)?;
                written.push((o.end_offset().get() - 2, epoch));
                if i % 3 == 2 {
                    p.flush()?;
                    let d = p.durable_offset().get();
                    acked = written.iter().copied().filter(|(b, _)| *b < d).collect();
                }
            }
            Ok(())
        })();
        assert!(run.is_ok() || io.crashed());
        let (_out, m) = crash_and_reopen(&io, root.path());
        let Some(p) = m.get(&tp()) else {
            assert!(acked.is_empty());
            continue;
        };
        let got = header_epochs(&read_all(&p));
        assert!(
            got.len() >= acked.len(),
            "case {case}: acknowledged batches lost"
        );
        // The cache is exactly the first batch of every epoch that survived.
        let mut expected: Vec<(i32, i64)> = Vec::new();
        for &(base, epoch) in &got {
            if expected.last().is_none_or(|&(e, _)| epoch > e) {
                expected.push((epoch, base));
            }
        }
        assert_eq!(epochs(&p), expected, "case {case}");
    }
}

#[test]
fn a_truncation_rewrites_the_checkpoints_before_it_returns() {
    // A log start moved by DeleteRecords is checkpointed; a follower then starts over below it
    // (the leader's log starts there). The checkpoint must follow at once, or recovery would
    // move the log start back up and hide what is replicated next.
    let root = tempfile::tempdir().unwrap();
    let io = Arc::new(FaultyIo::new());
    let (m, p) = durable_log(&io, root.path());
    p.delete_records_before(Offset(8)).unwrap();
    m.checkpoint().unwrap();
    p.truncate_fully_and_start_at(Offset(3)).unwrap();
    let mut b = simple_batch(2, 10, 1);
    b[..8].copy_from_slice(&3i64.to_be_bytes());
    p.append_replica(&Bytes::from(b)).unwrap();
    p.flush().unwrap();
    drop((m, p));
    let (_out, m) = crash_and_reopen(&io, root.path());
    let p = m.get(&tp()).unwrap();
    assert_eq!(p.log_start_offset(), 3);
    assert_eq!(p.log_end_offset(), 5);
}
