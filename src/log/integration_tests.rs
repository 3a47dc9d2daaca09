//! End-to-end tests of the log layer on real files in temporary directories.

use crate::common::{LeaderEpoch, Offset, TopicId};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::checkpoint::{read_offset_checkpoint, LOG_START_FILE, RECOVERY_POINT_FILE};
use super::segment::file_name;
use super::*;
use crate::records::batch::{compute_crc, BatchHeader};
use crate::records::testutil::{build_batch, idempotent_batch, simple_batch, TestRecord};
use crate::records::{validate_produce_batch, Compression};

const TOPIC_ID: TopicId =
    TopicId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);

fn tp() -> TopicPartition {
    TopicPartition::new("orders", 0)
}

fn quiet_opts() -> LogOptions {
    LogOptions {
        flush_interval_ms: 60_000,
        checkpoint_interval_ms: 600_000,
        ..LogOptions::default()
    }
}

fn append(p: &PartitionLog, batch: &[u8]) -> Result<AppendOutcome, LogError> {
    let info = validate_produce_batch(batch, 1 << 24).expect("test batch must validate");
    p.append(&Bytes::copy_from_slice(batch), &info, LeaderEpoch(3))
}

fn appended(p: &PartitionLog, batch: &[u8]) -> (i64, i64) {
    match append(p, batch).unwrap() {
        AppendOutcome::Appended {
            base_offset,
            last_offset,
            ..
        } => (base_offset, last_offset),
        d => panic!("expected Appended, got {d:?}"),
    }
}

/// Splits fetched bytes into whole batches, checking each is valid.
fn split(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let h = BatchHeader::new(b).unwrap();
        let n = h.total_size().unwrap();
        assert_eq!(h.magic(), 2);
        assert_eq!(compute_crc(&b[..n]), h.crc(), "stored batch CRC");
        out.push(b[..n].to_vec());
        b = &b[n..];
    }
    out
}

fn bases(b: &[u8]) -> Vec<i64> {
    split(b)
        .iter()
        .map(|x| BatchHeader::new(x).unwrap().base_offset())
        .collect()
}

fn read_all(p: &PartitionLog) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut off = p.log_start_offset();
    while off < p.log_end_offset() {
        let r = p.read(off, 1 << 20, true).unwrap();
        let batches = split(&r.records);
        assert!(!batches.is_empty());
        for b in batches {
            off = Offset::from(BatchHeader::new(&b).unwrap().last_offset() + 1);
            out.push(b);
        }
    }
    out
}

fn part_dir(root: &Path) -> PathBuf {
    root.join("orders-0")
}

#[test]
fn append_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    assert_eq!(p.log_end_offset(), 0);
    let b1 = simple_batch(3, 10, 100);
    let b2 = simple_batch(1, 500, 200);
    let b3 = simple_batch(7, 1, 300);
    assert_eq!(appended(&p, &b1), (0, 2));
    assert_eq!(appended(&p, &b2), (3, 3));
    assert_eq!(appended(&p, &b3), (4, 10));
    assert_eq!(p.log_end_offset(), 11);
    assert_eq!(p.high_watermark(), 11);
    assert_eq!(p.size_bytes(), (b1.len() + b2.len() + b3.len()) as u64);
    let r = p.read(Offset(0), 1 << 20, true).unwrap();
    assert_eq!(r.high_watermark, 11);
    assert_eq!(r.log_start_offset, 0);
    let got = split(&r.records);
    assert_eq!(got.len(), 3);
    for (g, (orig, base)) in got.iter().zip([(&b1, 0), (&b2, 3), (&b3, 4)]) {
        let h = BatchHeader::new(g).unwrap();
        assert_eq!(h.base_offset(), base);
        assert_eq!(h.partition_leader_epoch(), 3);
        assert_eq!(&g[16..], &orig[16..]);
        assert_eq!(&g[8..12], &orig[8..12]);
    }
    assert_eq!(p.topic_id(), TOPIC_ID);
    let md = fs::read_to_string(part_dir(dir.path()).join("partition.metadata")).unwrap();
    assert_eq!(md, format!("version: 0\ntopic_id: {TOPIC_ID}\n"));
    // create is idempotent with the same id and refuses another.
    assert!(Arc::ptr_eq(&p, &m.create(&tp(), TOPIC_ID).unwrap()));
    assert!(matches!(
        m.create(&tp(), TopicId::from_bytes([9; 16])),
        Err(LogError::TopicIdMismatch { .. })
    ));
    assert_eq!(m.all().len(), 1);
}

#[test]
fn reads_start_at_containing_batch_and_respect_limits() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    let small = simple_batch(5, 10, 0);
    let big = simple_batch(2, 2000, 10);
    appended(&p, &small); // 0..=4
    appended(&p, &big); // 5..=6
    appended(&p, &small); // 7..=11
                          // Mid-batch offset returns the containing batch.
    assert_eq!(
        bases(&p.read(Offset(2), 1 << 20, true).unwrap().records),
        vec![0, 5, 7]
    );
    assert_eq!(
        bases(&p.read(Offset(6), 1 << 20, true).unwrap().records),
        vec![5, 7]
    );
    assert_eq!(
        bases(&p.read(Offset(11), 1 << 20, true).unwrap().records),
        vec![7]
    );
    // max_bytes stops at whole batches.
    assert_eq!(
        bases(&p.read(Offset(0), small.len() + 10, true).unwrap().records),
        vec![0]
    );
    assert_eq!(
        bases(
            &p.read(Offset(0), small.len() + big.len(), true)
                .unwrap()
                .records
        ),
        vec![0, 5]
    );
    // KIP-74: a batch larger than max_bytes is returned whole if min_one_batch.
    assert_eq!(
        bases(&p.read(Offset(5), 100, true).unwrap().records),
        vec![5]
    );
    assert!(p.read(Offset(5), 100, false).unwrap().records.is_empty());
    // End of log: empty; outside the log: OffsetOutOfRange.
    let r = p.read(Offset(12), 1000, true).unwrap();
    assert!(r.records.is_empty());
    assert_eq!(r.high_watermark, 12);
    assert!(matches!(
        p.read(Offset(13), 1000, true),
        Err(LogError::OffsetOutOfRange {
            offset: 13,
            log_start_offset: 0,
            log_end_offset: 12
        })
    ));
    assert!(matches!(
        p.read(Offset(-1), 1000, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn rolls_by_size_and_indexes_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 1000,
        index_interval_bytes: 150,
        ..quiet_opts()
    };
    let m = LogManager::open(dir.path(), opts.clone()).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    let b = simple_batch(2, 40, 0); // 2 records per batch
    let n = 60;
    for i in 0..n {
        assert_eq!(appended(&p, &b), (2 * i, 2 * i + 1));
    }
    let segs = p.segment_base_offsets();
    assert!(segs.len() > 5, "{segs:?}");
    assert_eq!(segs[0], 0);
    let per_seg = 1000 / b.len() as i64;
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(*s, i as i64 * per_seg * 2);
        for ext in ["log", "index", "timeindex"] {
            assert!(part_dir(dir.path()).join(file_name(*s, ext)).exists());
        }
        let entries = p.index_entries(*s).unwrap();
        assert!(!entries.is_empty() || *s == *segs.last().unwrap());
    }
    let log_len = fs::metadata(part_dir(dir.path()).join(file_name(0, "log")))
        .unwrap()
        .len();
    assert!(log_len <= 1000);
    // Every offset reads back the batch containing it.
    for off in 0..2 * n {
        let r = p.read(Offset::from(off), b.len(), false).unwrap();
        assert_eq!(bases(&r.records), vec![off - off % 2], "offset {off}");
    }
    // Reads stay within one segment.
    let r = p.read(Offset(0), 1 << 20, true).unwrap();
    assert_eq!(split(&r.records).len() as i64, per_seg);
    // The index file on disk matches memory.
    let on_disk = fs::read(part_dir(dir.path()).join(file_name(0, "index"))).unwrap();
    assert_eq!(
        on_disk,
        index::OffsetIndex::encode(&p.index_entries(0).unwrap())
    );
    drop(p);
    drop(m);
    // Reopen (no checkpoint: every segment scanned) and reopen after shutdown (indexes trusted).
    for _ in 0..2 {
        let m = LogManager::open(dir.path(), opts.clone()).unwrap();
        let p = m.get(&tp()).unwrap();
        assert_eq!(p.log_end_offset(), 2 * n);
        assert_eq!(p.segment_base_offsets(), segs);
        let report = p.recovery_report();
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(
            report.trusted_segments + report.scanned_segments,
            segs.len()
        );
        for off in 0..2 * n {
            let r = p.read(Offset::from(off), b.len(), false).unwrap();
            assert_eq!(bases(&r.records), vec![off - off % 2]);
        }
        m.shutdown().unwrap();
    }
}

fn ts_records(ts: &[i64]) -> Vec<u8> {
    let recs: Vec<TestRecord<'_>> = ts
        .iter()
        .map(|t| (None, Some(&b"v"[..]), vec![], *t))
        .collect();
    build_batch(&recs, Compression::None, -1, -1, -1)
}

#[test]
fn timestamps_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 400,
        index_interval_bytes: 1,
        ..quiet_opts()
    };
    let m = LogManager::open(dir.path(), opts).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    assert_eq!(p.max_timestamp().unwrap(), None);
    assert_eq!(p.offset_for_timestamp(0).unwrap(), None);
    appended(&p, &ts_records(&[100, 110, 120])); // 0..=2
    appended(&p, &ts_records(&[130])); // 3
                                       // A compressed batch with out-of-order timestamps: 4..=7.
    let recs: Vec<TestRecord<'_>> = [500i64, 180, 900, 200]
        .iter()
        .map(|t| {
            (
                Some(&b"k"[..]),
                Some(&b"value"[..]),
                vec![("h", &b"x"[..])],
                *t,
            )
        })
        .collect();
    appended(&p, &build_batch(&recs, Compression::Zstd, -1, -1, -1));
    appended(&p, &ts_records(&[300, 310])); // 8..=9
    for c in [Compression::Gzip, Compression::Snappy, Compression::Lz4] {
        let recs: Vec<TestRecord<'_>> = vec![(None, Some(&b"z"[..]), vec![], 1000)];
        appended(&p, &build_batch(&recs, c, -1, -1, -1)); // 10, 11, 12
    }
    assert!(p.segment_base_offsets().len() > 1);
    let cases = [
        (0, Some((0, 100))),
        (100, Some((0, 100))),
        (101, Some((1, 110))),
        (125, Some((3, 130))),
        (131, Some((4, 500))),
        (501, Some((6, 900))),
        (901, Some((10, 1000))),
        (1001, None),
    ];
    for (ts, want) in cases {
        assert_eq!(p.offset_for_timestamp(ts).unwrap(), want, "ts {ts}");
    }
    assert_eq!(p.max_timestamp().unwrap(), Some((1000, 10)));
    drop(p);
    drop(m);
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    for (ts, want) in cases {
        assert_eq!(
            p.offset_for_timestamp(ts).unwrap(),
            want,
            "after reopen, ts {ts}"
        );
    }
    appended(&p, &ts_records(&[950]));
    assert_eq!(p.max_timestamp().unwrap(), Some((1000, 10)));
}

#[test]
fn max_timestamp_inside_compressed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    appended(&p, &ts_records(&[5, 6]));
    let recs: Vec<TestRecord<'_>> = [50i64, 70, 60]
        .iter()
        .map(|t| (None, Some(&b"v"[..]), vec![], *t))
        .collect();
    appended(&p, &build_batch(&recs, Compression::Gzip, -1, -1, -1));
    assert_eq!(p.max_timestamp().unwrap(), Some((70, 3)));
    assert_eq!(p.offset_for_timestamp(65).unwrap(), Some((3, 70)));
    assert_eq!(p.offset_for_timestamp(51).unwrap(), Some((3, 70)));
    assert_eq!(p.offset_for_timestamp(7).unwrap(), Some((2, 50)));
}

#[test]
fn idempotent_producer_rules() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    appended(&p, &simple_batch(2, 1, 0)); // 0..=1, non-idempotent
    assert_eq!(appended(&p, &idempotent_batch(3, 77, 0, 0)), (2, 4));
    assert_eq!(appended(&p, &idempotent_batch(2, 77, 0, 3)), (5, 6));
    // Retry of an earlier batch: original offsets, nothing written.
    let leo = p.log_end_offset();
    assert_eq!(
        append(&p, &idempotent_batch(3, 77, 0, 0)).unwrap(),
        AppendOutcome::Duplicate {
            base_offset: 2,
            last_offset: 4,
            log_start_offset: 0
        }
    );
    assert_eq!(p.log_end_offset(), leo);
    // Gap.
    assert!(matches!(
        append(&p, &idempotent_batch(1, 77, 0, 9)),
        Err(LogError::OutOfOrderSequence {
            expected: 5,
            got: 9,
            ..
        })
    ));
    // New epoch must start at 0.
    assert!(matches!(
        append(&p, &idempotent_batch(1, 77, 1, 5)),
        Err(LogError::OutOfOrderSequence { expected: 0, .. })
    ));
    assert_eq!(appended(&p, &idempotent_batch(1, 77, 1, 0)), (7, 7));
    // Fenced: older epoch.
    assert!(matches!(
        append(&p, &idempotent_batch(1, 77, 0, 5)),
        Err(LogError::InvalidProducerEpoch {
            current: 1,
            got: 0,
            ..
        })
    ));
    // Unknown producer: any sequence.
    assert_eq!(appended(&p, &idempotent_batch(1, 78, 4, 1234)), (8, 8));
    assert_eq!(p.log_end_offset(), 9);
    drop(p);
    drop(m);
    // Producer state is rebuilt from the log on open.
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert!(matches!(
        append(&p, &idempotent_batch(1, 78, 4, 1234)).unwrap(),
        AppendOutcome::Duplicate { base_offset: 8, .. }
    ));
    assert!(matches!(
        append(&p, &idempotent_batch(1, 77, 0, 5)),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(appended(&p, &idempotent_batch(1, 77, 1, 1)), (9, 9));
}

#[test]
fn restart_keeps_data_and_checkpoints_parse() {
    let dir = tempfile::tempdir().unwrap();
    let batches: Vec<Vec<u8>> = (0..10)
        .map(|i| simple_batch(1 + i % 3, 20 + i, i as i64))
        .collect();
    {
        let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
        let p = m.create(&tp(), TOPIC_ID).unwrap();
        m.create(
            &TopicPartition::new("other-topic", 3),
            TopicId::from_bytes([2; 16]),
        )
        .unwrap();
        for b in &batches {
            appended(&p, b);
        }
        m.shutdown().unwrap();
        m.shutdown().unwrap();
        assert!(matches!(
            futures_block_on(p.wait_durable(p.log_end_offset() + 1)),
            Err(LogError::ShutDown)
        ));
    }
    let rp = read_offset_checkpoint(&dir.path().join(RECOVERY_POINT_FILE)).unwrap();
    let ls = read_offset_checkpoint(&dir.path().join(LOG_START_FILE)).unwrap();
    let leo: i64 = (0..10).map(|i| 1 + i % 3).sum();
    assert_eq!(rp.get(&tp()), Some(&leo));
    assert_eq!(rp.get(&TopicPartition::new("other-topic", 3)), Some(&0));
    assert_eq!(ls.get(&tp()), Some(&0));
    let text = fs::read_to_string(dir.path().join(RECOVERY_POINT_FILE)).unwrap();
    assert_eq!(text, format!("0\n2\norders 0 {leo}\nother-topic 3 0\n"));
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    assert_eq!(m.all().len(), 2);
    let p = m.get(&tp()).unwrap();
    assert_eq!(p.log_end_offset(), leo);
    assert_eq!(p.durable_offset(), leo);
    assert_eq!(p.topic_id(), TOPIC_ID);
    let got = read_all(&p);
    assert_eq!(got.len(), batches.len());
    for (g, b) in got.iter().zip(&batches) {
        assert_eq!(&g[16..], &b[16..]);
    }
    assert_eq!(appended(&p, &simple_batch(1, 1, 0)), (leo, leo));
    assert_eq!(
        m.get(&TopicPartition::new("other-topic", 3))
            .unwrap()
            .topic_id(),
        TopicId::from_bytes([2; 16])
    );
}

/// Minimal executor for tests that need one future resolved synchronously.
fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Truncates (or replaces) the active `.log` and reopens, checking that exactly the whole valid
/// batches remain, indexes work and appends continue at the right offset.
#[test]
fn torn_tail_is_truncated_at_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        index_interval_bytes: 64,
        ..quiet_opts()
    };
    let batches: Vec<Vec<u8>> = (0..6)
        .map(|i| simple_batch(2, 30 + 3 * i, i as i64))
        .collect();
    let mut ends = Vec::new(); // (byte end, next offset) after each batch
    {
        let m = LogManager::open(dir.path(), opts.clone()).unwrap();
        let p = m.create(&tp(), TOPIC_ID).unwrap();
        let mut end = 0;
        for b in &batches {
            let (_, last) = appended(&p, b);
            end += b.len();
            ends.push((end, last + 1));
        }
        futures_block_on(p.wait_durable(p.log_end_offset())).unwrap();
        m.shutdown().unwrap();
    }
    let log_path = part_dir(dir.path()).join(file_name(0, "log"));
    let full = fs::read(&log_path).unwrap();
    let full_index = fs::read(part_dir(dir.path()).join(file_name(0, "index"))).unwrap();
    assert!(!full_index.is_empty());
    let start = ends[ends.len() - 3].0;
    let expect = |cut: usize| -> (usize, i64) {
        ends.iter()
            .rev()
            .find(|(e, _)| *e <= cut)
            .copied()
            .unwrap_or((0, 0))
    };
    for cut in start..=full.len() {
        fs::write(&log_path, &full[..cut]).unwrap();
        let (valid, leo) = expect(cut);
        let m = LogManager::open(dir.path(), opts.clone()).unwrap();
        let p = m.get(&tp()).unwrap();
        assert_eq!(p.log_end_offset(), leo, "cut {cut}");
        assert_eq!(
            fs::metadata(&log_path).unwrap().len(),
            valid as u64,
            "cut {cut}"
        );
        let got = read_all(&p);
        assert_eq!(got.len(), ends.iter().filter(|(e, _)| *e <= cut).count());
        for off in 0..leo {
            assert_eq!(
                bases(&p.read(Offset::from(off), 1, true).unwrap().records),
                vec![off - off % 2]
            );
        }
        let idx = fs::read(part_dir(dir.path()).join(file_name(0, "index"))).unwrap();
        assert!(
            full_index.starts_with(&idx),
            "rebuilt index is a prefix of the original"
        );
        assert_eq!(
            appended(&p, &simple_batch(1, 5, 0)),
            (leo, leo),
            "cut {cut}"
        );
        drop(p);
        drop(m);
    }
    // Garbage appended after the valid data, and a flipped byte inside the last batch.
    let mut garbage = full.clone();
    garbage.extend((0..500u32).map(|i| (i * 97 % 251) as u8));
    let mut flipped = full.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x40;
    let mut zeros = full.clone();
    zeros.extend(std::iter::repeat_n(0u8, 4096));
    for (name, bytes, leo) in [
        ("garbage", &garbage, ends[5].1),
        ("flipped", &flipped, ends[4].1),
        ("zeros", &zeros, ends[5].1),
    ] {
        fs::write(&log_path, bytes).unwrap();
        let m = LogManager::open(dir.path(), opts.clone()).unwrap();
        let p = m.get(&tp()).unwrap();
        assert_eq!(p.log_end_offset(), leo, "{name}");
        assert_eq!(read_all(&p).len() as i64, leo / 2, "{name}");
        assert_eq!(appended(&p, &simple_batch(1, 5, 0)).0, leo, "{name}");
    }
}

#[test]
fn corruption_in_an_older_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 500,
        index_interval_bytes: 64,
        ..quiet_opts()
    };
    let b = simple_batch(1, 50, 0);
    {
        let m = LogManager::open(dir.path(), opts.clone()).unwrap();
        let p = m.create(&tp(), TOPIC_ID).unwrap();
        for _ in 0..30 {
            appended(&p, &b);
        }
        assert!(p.segment_base_offsets().len() >= 4);
        // No shutdown: no checkpoint, so every segment is scanned.
    }
    let per_seg = (500 / b.len()) as i64;
    let second = part_dir(dir.path()).join(file_name(per_seg, "log"));
    let mut bytes = fs::read(&second).unwrap();
    let at = b.len() + 70; // inside the second batch of the second segment
    bytes[at] ^= 0xff;
    fs::write(&second, &bytes).unwrap();
    let m = LogManager::open(dir.path(), opts.clone()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert_eq!(p.log_end_offset(), per_seg + 1);
    assert_eq!(p.segment_base_offsets(), vec![0, per_seg]);
    assert!(!part_dir(dir.path())
        .join(file_name(2 * per_seg, "log"))
        .exists());
    assert_eq!(read_all(&p).len() as i64, per_seg + 1);
    // Appends go to the truncated segment, then roll as usual.
    for i in 0..10 {
        assert_eq!(appended(&p, &b).0, per_seg + 1 + i);
    }
    assert!(p.segment_base_offsets().len() >= 3);
}

#[test]
fn bad_index_below_recovery_point_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 500,
        index_interval_bytes: 64,
        ..quiet_opts()
    };
    let b = simple_batch(1, 50, 0);
    let segs = {
        let m = LogManager::open(dir.path(), opts.clone()).unwrap();
        let p = m.create(&tp(), TOPIC_ID).unwrap();
        for _ in 0..30 {
            appended(&p, &b);
        }
        m.shutdown().unwrap();
        p.segment_base_offsets()
    };
    let idx0 = part_dir(dir.path()).join(file_name(0, "index"));
    let good = fs::read(&idx0).unwrap();
    fs::write(&idx0, [0xffu8; 13]).unwrap();
    fs::remove_file(part_dir(dir.path()).join(file_name(segs[1], "timeindex"))).unwrap();
    let m = LogManager::open(dir.path(), opts.clone()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert_eq!(p.log_end_offset(), 30);
    assert_eq!(p.segment_base_offsets(), segs);
    assert_eq!(fs::read(&idx0).unwrap(), good);
    // Segment 0's bad index forces a rescan from there on.
    assert_eq!(p.recovery_report().trusted_segments, 0);
    assert_eq!(p.recovery_report().scanned_segments, segs.len());
    drop(p);
    m.shutdown().unwrap();
    drop(m);
    // After a clean shutdown only the last segment is scanned.
    let m = LogManager::open(dir.path(), opts.clone()).unwrap();
    let p = m.get(&tp()).unwrap();
    let r = p.recovery_report();
    assert_eq!(r.scanned_segments, 1);
    assert_eq!(r.trusted_segments, segs.len() - 1);
    for off in 0..30 {
        assert_eq!(
            bases(&p.read(Offset::from(off), 1, true).unwrap().records),
            vec![off]
        );
    }
}

#[test]
fn garbage_files_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let pd = part_dir(dir.path());
    fs::create_dir_all(&pd).unwrap();
    fs::write(pd.join("partition.metadata"), b"\xff\xfe garbage").unwrap();
    fs::write(
        pd.join(file_name(0, "log")),
        (0..1000u32).map(|i| (i * 31) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    fs::write(pd.join(file_name(0, "index")), b"123").unwrap();
    fs::write(pd.join(file_name(77, "index")), b"orphan").unwrap();
    fs::write(dir.path().join(RECOVERY_POINT_FILE), b"garbage\n").unwrap();
    fs::create_dir_all(dir.path().join("orders-1.abc123-delete")).unwrap();
    fs::create_dir_all(dir.path().join("not_a_partition")).unwrap();
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert_eq!(p.log_end_offset(), 0);
    assert_eq!(fs::metadata(pd.join(file_name(0, "log"))).unwrap().len(), 0);
    assert!(!pd.join(file_name(77, "index")).exists());
    assert!(!dir.path().join("orders-1.abc123-delete").exists());
    assert_eq!(m.all().len(), 1);
    assert_eq!(appended(&p, &simple_batch(2, 2, 0)), (0, 1));
}

#[test]
fn delete_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    appended(&p, &simple_batch(1, 1, 0));
    assert!(part_dir(dir.path()).exists());
    m.delete(&tp()).unwrap();
    assert!(m.get(&tp()).is_none());
    assert!(!part_dir(dir.path()).exists());
    assert_eq!(
        fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count(),
        0
    );
    assert!(matches!(
        append(&p, &simple_batch(1, 1, 0)),
        Err(LogError::StorageOffline(_))
    ));
    assert!(matches!(
        m.delete(&tp()),
        Err(LogError::UnknownPartition(_))
    ));
    // Re-creating after delete starts afresh.
    let p2 = m.create(&tp(), TOPIC_ID).unwrap();
    assert_eq!(p2.log_end_offset(), 0);
}

#[test]
fn poisoned_partition_refuses_work() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    appended(&p, &simple_batch(1, 1, 0));
    p.poison();
    assert!(p.is_offline());
    assert!(matches!(
        append(&p, &simple_batch(1, 1, 0)),
        Err(LogError::StorageOffline(_))
    ));
    assert!(matches!(
        futures_block_on(p.wait_durable(Offset(1))),
        Err(LogError::StorageOffline(_))
    ));
    assert!(p.read(Offset(0), 100, true).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_durable_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    let before = m.fsync_count();
    appended(&p, &simple_batch(1, 10, 0));
    p.wait_durable(Offset(1)).await.unwrap();
    assert_eq!(p.durable_offset(), 1);
    assert_eq!(m.fsync_count(), before + 1);
    // Already durable: no new fsync.
    p.wait_durable(Offset(1)).await.unwrap();
    assert_eq!(m.fsync_count(), before + 1);
    let waiters = 200;
    let mut tasks = Vec::new();
    for _ in 0..waiters {
        let p = Arc::clone(&p);
        tasks.push(tokio::spawn(async move {
            let out = append(&p, &simple_batch(1, 100, 0)).unwrap();
            p.wait_durable(out.end_offset()).await.unwrap();
            assert!(p.durable_offset() >= out.end_offset());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let used = m.fsync_count() - before - 1;
    assert!(used >= 1);
    eprintln!("group commit: {used} fsyncs for {waiters} waiters");
    assert!(used < waiters / 2, "{used} fsyncs for {waiters} waiters");
    assert_eq!(p.durable_offset(), 1 + waiters as i64);
    // Recovery point follows the durable offset.
    m.checkpoint().unwrap();
    let rp = read_offset_checkpoint(&dir.path().join(RECOVERY_POINT_FILE)).unwrap();
    assert_eq!(rp.get(&tp()), Some(&(1 + waiters as i64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_flush_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        flush_interval_ms: 20,
        checkpoint_interval_ms: 50,
        ..LogOptions::default()
    };
    let m = LogManager::open(dir.path(), opts).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    appended(&p, &simple_batch(3, 10, 0));
    let mut rx = p.subscribe();
    assert_eq!(*rx.borrow_and_update(), 3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rp = read_offset_checkpoint(&dir.path().join(RECOVERY_POINT_FILE)).unwrap();
        if p.durable_offset() == 3 && rp.get(&tp()) == Some(&3) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no background flush/checkpoint"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The LEO watch wakes long-polling fetches.
    let p2 = Arc::clone(&p);
    let waiter = tokio::spawn(async move {
        rx.changed().await.unwrap();
        *rx.borrow()
    });
    appended(&p2, &simple_batch(1, 1, 0));
    assert_eq!(waiter.await.unwrap(), 4);
}

#[test]
fn public_types_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    fn send_static<T: Send + 'static>(_: &T) {}
    send_sync::<LogManager>();
    send_sync::<PartitionLog>();
    send_sync::<LogError>();
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    // wait_durable's future is Send, and 'static when it owns its Arc.
    let fut = async move { p.wait_durable(Offset(0)).await };
    send_static(&fut);
    futures_block_on(fut).unwrap();
}

/// Torn tail spanning a segment boundary: the previous segment's last batch is cut at every byte
/// while a later segment exists (no checkpoint, as after a crash before the first checkpoint).
#[test]
fn torn_tail_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let b = simple_batch(2, 60, 0);
    let opts = LogOptions {
        segment_bytes: 3 * b.len() as u64,
        index_interval_bytes: 1,
        ..quiet_opts()
    };
    {
        let m = LogManager::open(dir.path(), opts.clone()).unwrap();
        let p = m.create(&tp(), TOPIC_ID).unwrap();
        for _ in 0..7 {
            appended(&p, &b);
        }
        assert_eq!(p.segment_base_offsets(), vec![0, 6, 12]);
    }
    let pd = part_dir(dir.path());
    let seg1 = fs::read(pd.join(file_name(6, "log"))).unwrap();
    let seg2 = fs::read(pd.join(file_name(12, "log"))).unwrap();
    assert_eq!(seg1.len(), 3 * b.len());
    {
        // A cut exactly at a batch boundary leaves the segment ending before the next one
        // begins: the tail was lost, so the later segment (written after it) goes too and the
        // log stays a prefix of what was written. Keeping it would leave a hole below the end
        // offset, and when the later segment is empty, a hole no read can step over.
        fs::write(pd.join(file_name(6, "log")), &seg1[..2 * b.len()]).unwrap();
        let m = LogManager::open(dir.path(), opts.clone()).unwrap();
        let p = m.get(&tp()).unwrap();
        assert_eq!(p.log_end_offset(), 10);
        assert_eq!(p.segment_base_offsets(), vec![0, 6]);
        assert_eq!(
            bases(&p.read(Offset(9), 1 << 20, true).unwrap().records),
            vec![8]
        );
    }
    for cut in 2 * b.len() + 1..seg1.len() {
        fs::write(pd.join(file_name(6, "log")), &seg1[..cut]).unwrap();
        fs::write(pd.join(file_name(12, "log")), &seg2).unwrap();
        let _ = fs::remove_file(dir.path().join(RECOVERY_POINT_FILE));
        let m = LogManager::open(dir.path(), opts.clone()).unwrap();
        let p = m.get(&tp()).unwrap();
        assert_eq!(p.log_end_offset(), 10, "cut {cut}");
        assert_eq!(p.segment_base_offsets(), vec![0, 6], "cut {cut}");
        assert!(!pd.join(file_name(12, "log")).exists());
        assert!(!pd.join(file_name(12, "index")).exists());
        assert_eq!(p.recovery_report().deleted_segments, 1);
        assert_eq!(
            p.recovery_report().truncated_bytes,
            (cut - 2 * b.len()) as u64
        );
        assert_eq!(read_all(&p).len(), 5);
        assert_eq!(p.index_entries(6).unwrap().len(), 1);
        assert_eq!(appended(&p, &b), (10, 11));
        drop(p);
        drop(m);
        fs::write(pd.join(file_name(6, "log")), &seg1).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fsync_poisons_the_partition() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    let other = m
        .create(&TopicPartition::new("other", 0), TOPIC_ID)
        .unwrap();
    appended(&p, &simple_batch(1, 1, 0));
    p.wait_durable(Offset(1)).await.unwrap();
    appended(&p, &simple_batch(1, 1, 0));
    appended(&other, &simple_batch(1, 1, 0));
    p.fail_next_flush.store(true, Ordering::SeqCst);
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let p = Arc::clone(&p);
            tokio::spawn(async move { p.wait_durable(Offset(2)).await })
        })
        .collect();
    for w in waiters {
        assert!(matches!(w.await.unwrap(), Err(LogError::StorageOffline(_))));
    }
    assert!(p.is_offline());
    assert_eq!(p.durable_offset(), 1);
    assert!(matches!(
        append(&p, &simple_batch(1, 1, 0)),
        Err(LogError::StorageOffline(_))
    ));
    assert!(matches!(
        p.wait_durable(Offset(1)).await,
        Err(LogError::StorageOffline(_))
    ));
    // Other partitions are unaffected; the offline one is left out of the checkpoint.
    other.wait_durable(Offset(1)).await.unwrap();
    m.checkpoint().unwrap();
    let rp = read_offset_checkpoint(&dir.path().join(RECOVERY_POINT_FILE)).unwrap();
    assert_eq!(rp.get(&TopicPartition::new("other", 0)), Some(&1));
    assert_eq!(rp.get(&tp()), None);
    // Reopening brings it back (recovered from a full scan).
    assert!(m.shutdown().is_ok());
    drop(p);
    drop(m);
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert!(!p.is_offline());
    assert_eq!(p.log_end_offset(), 2);
}

#[test]
fn large_batches_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.create(&tp(), TOPIC_ID).unwrap();
    let value: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let recs: Vec<TestRecord<'_>> = vec![(Some(&b"k"[..]), Some(&value[..]), vec![], 1)];
    let big = build_batch(&recs, Compression::None, -1, -1, -1);
    let zbig = build_batch(&recs, Compression::Lz4, -1, -1, -1);
    assert_eq!(appended(&p, &big), (0, 0));
    assert_eq!(appended(&p, &zbig), (1, 1));
    let r = p.read(Offset(0), 1024, true).unwrap();
    assert_eq!(r.records.len(), big.len());
    assert_eq!(&r.records[16..], &big[16..]);
    let r = p.read(Offset(1), 1024, true).unwrap();
    assert_eq!(&r.records[16..], &zbig[16..]);
    let recs = crate::records::records(&r.records, 1 << 23).unwrap();
    let first = recs.iter().next().unwrap().unwrap();
    assert_eq!(first.value, Some(&value[..]));
    assert_eq!(first.offset, 1);
}

#[test]
fn overlapping_segment_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
        let p = m.create(&tp(), TOPIC_ID).unwrap();
        for _ in 0..10 {
            appended(&p, &simple_batch(1, 10, 0));
        }
    }
    let pd = part_dir(dir.path());
    fs::copy(pd.join(file_name(0, "log")), pd.join(file_name(5, "log"))).unwrap();
    let m = LogManager::open(dir.path(), quiet_opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert_eq!(p.segment_base_offsets(), vec![0]);
    assert_eq!(p.log_end_offset(), 10);
    assert!(!pd.join(file_name(5, "log")).exists());
    assert_eq!(read_all(&p).len(), 10);
    assert_eq!(appended(&p, &simple_batch(1, 10, 0)), (10, 10));
}

/// After a crash, recovery reads only what follows the last durable index entry below the
/// recovery point, and ends in exactly the state a full scan reaches: same offsets, bytes,
/// index entries and timestamp answers.
#[test]
fn recovery_reads_only_the_tail_after_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        index_interval_bytes: 200,
        ..quiet_opts()
    };
    let (durable_len, total_len);
    {
        let m = LogManager::open(dir.path(), opts.clone()).unwrap();
        let p = m.create(&tp(), TOPIC_ID).unwrap();
        // Timestamps that go up and down, so the time index has something to get wrong.
        let batch = |i: i64| ts_records(&[1_000 + (i * 37) % 101, 2_000 + i]);
        for i in 0..120 {
            appended(&p, &batch(i));
        }
        futures_block_on(p.wait_durable(p.log_end_offset())).unwrap();
        m.checkpoint().unwrap();
        durable_len = p.size_bytes();
        for i in 120..160 {
            appended(&p, &batch(i));
        }
        total_len = p.size_bytes();
        // Dropping without shutdown: no final flush, no checkpoint — a crash.
    }
    let log_path = part_dir(dir.path()).join(file_name(0, "log"));
    let torn = total_len - 5;
    fs::OpenOptions::new()
        .write(true)
        .open(&log_path)
        .unwrap()
        .set_len(torn)
        .unwrap();
    // The same directory recovered the slow way, for comparison: no index files at all.
    let full_dir = tempfile::tempdir().unwrap();
    let src = part_dir(dir.path());
    let dst = part_dir(full_dir.path());
    fs::create_dir_all(&dst).unwrap();
    for entry in fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.ends_with("index") {
            fs::copy(entry.path(), dst.join(&name)).unwrap();
        }
    }
    for name in [
        "recovery-point-offset-checkpoint",
        "log-start-offset-checkpoint",
    ] {
        if dir.path().join(name).exists() {
            fs::copy(dir.path().join(name), full_dir.path().join(name)).unwrap();
        }
    }

    let m = LogManager::open(dir.path(), opts.clone()).unwrap();
    let p = m.get(&tp()).unwrap();
    let full_m = LogManager::open(full_dir.path(), opts).unwrap();
    let full = full_m.get(&tp()).unwrap();

    let tail = total_len - durable_len;
    let resumed = p.recovery_report().scanned_bytes;
    assert!(
        resumed <= tail + 400,
        "read {resumed} bytes for a {tail}-byte tail"
    );
    assert_eq!(
        full.recovery_report().scanned_bytes,
        full.size_bytes(),
        "a full scan reads it all"
    );
    eprintln!(
        "recovery read {resumed} of {} bytes ({tail}-byte unflushed tail)",
        full.size_bytes()
    );
    assert!(resumed * 3 < full.recovery_report().scanned_bytes);

    assert_eq!(p.log_end_offset(), 159 * 2, "the torn last batch is gone");
    assert_eq!(p.log_end_offset(), full.log_end_offset());
    assert_eq!(read_all(&p), read_all(&full));
    assert_eq!(p.index_entries(0), full.index_entries(0));
    assert_eq!(p.max_timestamp().unwrap(), full.max_timestamp().unwrap());
    for ts in (990..1_110).chain(1_990..2_170) {
        assert_eq!(
            p.offset_for_timestamp(ts).unwrap(),
            full.offset_for_timestamp(ts).unwrap(),
            "ts {ts}"
        );
    }
    // And appends continue at the right offset.
    assert_eq!(appended(&p, &ts_records(&[5_000])).0, 318);
}
