//! Per-topic flush triggers and roll settings, on real files: `flush.messages` forces an fsync
//! when enough messages are unflushed, `flush.ms` gets a partition's data synced within its own
//! period while the broker-wide period is an hour, `segment.index.bytes` rolls the active
//! segment when its index is full, and `segment.jitter.ms` spreads time-based rolls.

use crate::common::{LeaderEpoch, TopicId};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::records::testutil::simple_batch;
use crate::records::validate_produce_batch;

/// Broker-wide flush period of an hour: only the per-topic settings can cause a flush here.
fn opts() -> LogOptions {
    LogOptions {
        flush_interval_ms: 3_600_000,
        checkpoint_interval_ms: 3_600_000,
        ..LogOptions::default()
    }
}

fn append(p: &PartitionLog, records: usize) -> AppendOutcome {
    append_at(p, records, crate::common::now_ms())
}

fn append_at(p: &PartitionLog, records: usize, ts: i64) -> AppendOutcome {
    let b = simple_batch(records, 20, ts);
    let info = validate_produce_batch(&b, 1 << 20).unwrap();
    p.append(&Bytes::from(b), &info, LeaderEpoch(0)).unwrap()
}

fn forced(o: AppendOutcome) -> bool {
    matches!(
        o,
        AppendOutcome::Appended {
            flush_forced: true,
            ..
        }
    )
}

/// Waits up to `limit` for `p` to be durable up to its end; returns how long it took.
fn durable_within(p: &PartitionLog, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if p.durable_offset() == p.log_end_offset() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn flush_messages_forces_an_fsync_once_enough_messages_are_unflushed() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m
        .create(&TopicPartition::new("f", 0), TopicId::from_bytes([1; 16]))
        .unwrap();
    let mut c = p.config();
    c.flush_messages = 10;
    p.set_config(c);
    assert!(!forced(append(&p, 4)));
    assert!(!forced(append(&p, 5)), "9 unflushed messages: below 10");
    assert!(forced(append(&p, 1)), "the 10th message forces the fsync");
    assert!(durable_within(&p, Duration::from_secs(5)).is_some());
    assert!(!forced(append(&p, 3)), "the count restarts after the fsync");
    assert!(forced(append(&p, 20)), "one batch over the limit");
    assert!(durable_within(&p, Duration::from_secs(5)).is_some());
}

#[test]
fn flush_ms_syncs_a_partition_within_its_own_period() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let fast = m
        .create(
            &TopicPartition::new("fast", 0),
            TopicId::from_bytes([1; 16]),
        )
        .unwrap();
    let slow = m
        .create(
            &TopicPartition::new("slow", 0),
            TopicId::from_bytes([2; 16]),
        )
        .unwrap();
    let mut c = fast.config();
    c.flush_ms = 100;
    fast.set_config(c);
    append(&fast, 3);
    append(&slow, 3);
    let took = durable_within(&fast, Duration::from_secs(5)).expect("flush.ms=100 never synced");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // A deliberate wait, three of the fast partition's periods, to show what does not happen.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        slow.durable_offset() < slow.log_end_offset(),
        "the default (an hour) must not have synced the other partition"
    );
    // Lowering a live topic's flush.ms applies at once.
    let mut c = slow.config();
    c.flush_ms = 0;
    slow.set_config(c);
    assert!(durable_within(&slow, Duration::from_secs(2)).is_some());
}

#[test]
fn segment_index_bytes_rolls_the_active_segment_when_its_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m
        .create(&TopicPartition::new("i", 0), TopicId::from_bytes([3; 16]))
        .unwrap();
    let mut c = p.config();
    c.index_interval_bytes = 0; // an index entry for every batch after the first
    c.segment_index_bytes = 4 * 12; // room for 4 offset entries, 3 time entries + the last
    p.set_config(c);
    let now = crate::common::now_ms();
    for i in 0..20 {
        append_at(&p, 1, now + i); // rising timestamps: a time index entry per batch too
    }
    let bases = p.segment_base_offsets();
    assert_eq!(bases.len(), 5, "4 batches a segment: {bases:?}");
    for base in &bases[..bases.len() - 1] {
        let entries = p.index_entries(*base).unwrap();
        assert!(entries.len() * 8 <= 48, "{base}: {entries:?}");
    }
    // The default 10 MiB never rolls this log.
    let q = m
        .create(&TopicPartition::new("i", 1), TopicId::from_bytes([3; 16]))
        .unwrap();
    let mut c = q.config();
    c.index_interval_bytes = 0;
    q.set_config(c);
    for _ in 0..20 {
        append(&q, 1);
    }
    assert_eq!(q.segment_base_offsets().len(), 1);
}

#[test]
fn segment_jitter_ms_rolls_some_segments_early() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let mut rolled = 0;
    for i in 0..20 {
        let p = m
            .create(&TopicPartition::new("j", i), TopicId::from_bytes([4; 16]))
            .unwrap();
        let mut c = p.config();
        c.segment_ms = 1000;
        c.segment_jitter_ms = 1000;
        p.set_config(c);
        append_at(&p, 1, 10_000);
        // 500 ms later: within segment.ms, past it for segments whose jitter exceeds 500 ms.
        append_at(&p, 1, 10_500);
        if p.segment_base_offsets().len() == 2 {
            rolled += 1;
        }
    }
    // Each segment draws its own jitter in [0, 1000): about half roll early. All or none has
    // a chance of about 2 in a million.
    assert!((1..20).contains(&rolled), "{rolled} of 20 rolled");
    // Without jitter none rolls.
    let p = m
        .create(&TopicPartition::new("nj", 0), TopicId::from_bytes([5; 16]))
        .unwrap();
    let mut c = p.config();
    c.segment_ms = 1000;
    p.set_config(c);
    append_at(&p, 1, 10_000);
    append_at(&p, 1, 10_500);
    assert_eq!(p.segment_base_offsets().len(), 1);
}
