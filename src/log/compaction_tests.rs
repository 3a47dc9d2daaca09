//! Compaction on real files: latest record per key, tombstones after delete.retention.ms,
//! offsets/timestamps/headers/codec kept, active segment untouched, and the `.cleaned` /
//! `.swap` protocol completing or rolling back after a crash.

use crate::common::{LeaderEpoch, Offset, TopicId};
use bytes::Bytes;

use super::segment::file_name;
use super::*;
use crate::records::batch::BatchHeader;
use crate::records::testutil::{build_batch, TestRecord};
use crate::records::{records, validate_produce_batch, Compression};

fn opts() -> LogOptions {
    LogOptions {
        segment_bytes: 400,
        index_interval_bytes: 100,
        flush_interval_ms: 3_600_000,
        checkpoint_interval_ms: 3_600_000,
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("k", 0)
}

/// (offset, timestamp, key, value, header count) of every record in the log.
type Seen = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>, usize);

fn all_records(p: &PartitionLog) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut offset = p.log_start_offset();
    while offset < p.log_end_offset() {
        let r = p.read(offset, 1 << 20, true).unwrap();
        let mut b = &r.records[..];
        assert!(!b.is_empty());
        while !b.is_empty() {
            let h = BatchHeader::new(b).unwrap();
            let n = h.total_size().unwrap();
            assert_eq!(h.crc(), crate::records::batch::compute_crc(&b[..n]));
            for rec in records(&b[..n], 1 << 20).unwrap().iter() {
                let rec = rec.unwrap();
                out.push((
                    rec.offset,
                    rec.timestamp,
                    rec.key.map(<[u8]>::to_vec),
                    rec.value.map(<[u8]>::to_vec),
                    rec.headers.len(),
                ));
            }
            offset = Offset::from(h.last_offset() + 1);
            b = &b[n..];
        }
    }
    out
}

/// Writes the workload: `key{i % 4}` updated over and over, a tombstone for key1 (old) and
/// key2 (recent), a record without key; gzip batches of 2 records.
fn fill(p: &PartitionLog, now: i64) {
    let mut i = 0u32;
    let push = |recs: Vec<TestRecord<'_>>| {
        let b = build_batch(&recs, Compression::Gzip, -1, -1, -1);
        let info = validate_produce_batch(&b, 1 << 20).unwrap();
        p.append(&Bytes::from(b), &info, LeaderEpoch(0)).unwrap();
    };
    for round in 0..6 {
        let v1 = format!("v{round}a");
        let v2 = format!("v{round}b");
        let k1 = format!("key{}", i % 4);
        let k2 = format!("key{}", (i + 1) % 4);
        i += 2;
        push(vec![
            (
                Some(k1.as_bytes()),
                Some(v1.as_bytes()),
                vec![("h", b"1")],
                now - 1000 + round,
            ),
            (
                Some(k2.as_bytes()),
                Some(v2.as_bytes()),
                vec![],
                now - 1000 + round,
            ),
        ]);
    }
    push(vec![
        (Some(b"key1"), None, vec![], now - 10_000_000),
        (None, Some(b"nokey"), vec![("x", b"y")], now - 10_000_000),
    ]);
    push(vec![(Some(b"key2"), None, vec![], now - 5)]);
    // Fill the active segment so the tombstones' segments are sealed.
    for _ in 0..3 {
        push(vec![(Some(b"key3"), Some(b"last"), vec![], now)]);
    }
}

#[test]
fn compaction_keeps_the_latest_record_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.create(&tp(), TopicId::from_bytes([2; 16])).unwrap();
    let now = crate::common::now_ms();
    fill(&p, now);
    let before = all_records(&p);
    let bases = p.segment_base_offsets();
    assert!(bases.len() >= 4, "several sealed segments: {bases:?}");
    let active = *bases.last().unwrap();
    let active_file = dir
        .path()
        .join(tp().dir_name())
        .join(file_name(active, "log"));
    let active_bytes = std::fs::read(&active_file).unwrap();
    let leo = p.log_end_offset();

    assert_eq!(
        p.compact(now).unwrap(),
        0,
        "delete-only topics are not compacted"
    );
    let mut c = p.config();
    c.compact = true;
    c.delete = false;
    c.delete_retention_ms = 1_000_000;
    p.set_config(c);
    assert!(p.compact(now).unwrap() > 0);

    assert_eq!(
        p.segment_base_offsets(),
        bases,
        "segments keep their base offsets"
    );
    assert_eq!(p.log_end_offset(), leo);
    assert_eq!(
        std::fs::read(&active_file).unwrap(),
        active_bytes,
        "active untouched"
    );
    let after = all_records(&p);
    // The expected survivors: from the sealed part, each key's latest record in the whole
    // sealed part, the keyless record, the recent tombstone; the active segment as it was.
    let sealed_end = active;
    let mut latest = std::collections::HashMap::new();
    for r in before.iter().filter(|r| r.0 < sealed_end) {
        if let Some(k) = &r.2 {
            latest.insert(k.clone(), r.0);
        }
    }
    let expected: Vec<&Seen> = before
        .iter()
        .filter(|r| {
            r.0 >= sealed_end
                || match &r.2 {
                    None => true,
                    Some(k) => {
                        latest.get(k) == Some(&r.0) && !(r.3.is_none() && k.as_slice() == b"key1")
                    }
                }
        })
        .collect();
    assert_eq!(after.iter().collect::<Vec<_>>(), expected);
    assert!(
        after
            .iter()
            .any(|r| r.2.as_deref() == Some(b"key2") && r.3.is_none()),
        "recent tombstone kept"
    );
    assert!(
        !after.iter().any(|r| r.2.as_deref() == Some(b"key1")),
        "old tombstone dropped with its key"
    );
    assert!(
        after.iter().any(|r| r.2.is_none()),
        "records without a key are kept"
    );
    assert!(
        after.iter().all(|r| r.2.is_none() || r.4 <= 1),
        "headers survive"
    );
    // The codec is kept by every batch that still has records; a batch emptied whole is
    // written uncompressed, as Kafka writes it.
    let mut offset = p.log_start_offset();
    let mut with_records = 0;
    while offset < p.log_end_offset() {
        let chunk = p.read(offset, 1 << 20, true).unwrap().records;
        let mut pos = 0;
        while let Some(h) = chunk.get(pos..).and_then(BatchHeader::new) {
            let want = if h.record_count() > 0 {
                with_records += 1;
                Compression::Gzip
            } else {
                Compression::None
            };
            assert_eq!(h.compression(), Some(want), "batch at {}", h.base_offset());
            pos += h.total_size().expect("sized batch");
            offset = Offset::from(h.last_offset() + 1);
        }
    }
    assert!(with_records > 0);
    // Idempotent: a second pass changes nothing.
    assert_eq!(p.compact(now).unwrap(), 0);
    // Survives a restart, with consistent indexes; appends continue.
    drop(m);
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert_eq!(all_records(&p), after);
    assert_eq!(p.log_end_offset(), leo);
    for base in p.segment_base_offsets() {
        let data = std::fs::read(
            dir.path()
                .join(tp().dir_name())
                .join(file_name(base, "log")),
        )
        .unwrap();
        for (rel, pos) in p.index_entries(base).unwrap() {
            let h = BatchHeader::new(&data[pos as usize..]).unwrap();
            assert_eq!(h.last_offset(), base + i64::from(rel));
        }
    }
}

#[test]
fn interrupted_swaps_complete_and_unfinished_cleanings_roll_back() {
    let dir = tempfile::tempdir().unwrap();
    let now = crate::common::now_ms();
    let (before, cleaned, base) = {
        let m = LogManager::open(dir.path(), opts()).unwrap();
        let p = m.create(&tp(), TopicId::from_bytes([2; 16])).unwrap();
        fill(&p, now);
        m.shutdown().unwrap();
        let before = all_records(&p);
        // Clean the first segment by hand, as the cleaner would, without swapping it in.
        let base = p.segment_base_offsets()[0];
        let pdir = dir.path().join(tp().dir_name());
        let bytes = std::fs::read(pdir.join(file_name(base, "log"))).unwrap();
        let mut map = cleaner::OffsetMap::with_budget(usize::MAX);
        for b in p
            .segment_base_offsets()
            .iter()
            .take(p.segment_base_offsets().len() - 1)
        {
            cleaner::index_keys(
                &std::fs::read(pdir.join(file_name(*b, "log"))).unwrap(),
                &mut map,
            )
            .unwrap();
        }
        let cleaned = cleaner::clean_segment(&bytes, &map, 0)
            .unwrap()
            .expect("something to clean");
        (before, cleaned, base)
    };
    let pdir = dir.path().join(tp().dir_name());
    let log_name = file_name(base, "log");
    // A crash while writing `.cleaned`: it is thrown away.
    std::fs::write(
        pdir.join(format!("{log_name}.cleaned")),
        &cleaned[..cleaned.len() / 2],
    )
    .unwrap();
    {
        let m = LogManager::open(dir.path(), opts()).unwrap();
        assert_eq!(all_records(&m.get(&tp()).unwrap()), before);
    }
    assert!(!pdir.join(format!("{log_name}.cleaned")).exists());
    // A crash after the rename to `.swap`: the swap is completed.
    std::fs::write(pdir.join(format!("{log_name}.swap")), &cleaned).unwrap();
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert_eq!(std::fs::read(pdir.join(&log_name)).unwrap(), cleaned);
    let after = all_records(&p);
    assert!(after.len() < before.len());
    assert!(
        after.iter().all(|r| before.contains(r)),
        "only removals, offsets unchanged"
    );
    assert_eq!(p.log_end_offset(), before.last().unwrap().0 + 1);
}
