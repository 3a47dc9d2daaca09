//! Start-up at scale (ignored by default; a measurement, not a check of correctness):
//! `GREGOR_PARTITIONS=10000 cargo test --lib -- --ignored --nocapture partitions_start_up`
//! creates that many partitions with a few batches each, shuts down cleanly, then times a
//! clean reopen and a reopen without checkpoints (everything scanned, as after a crash), and
//! reports the descriptors the process holds afterwards.

use crate::common::{LeaderEpoch, TopicId};
use std::time::Instant;

use bytes::Bytes;

use super::*;
use crate::records::testutil::simple_batch;
use crate::records::validate_produce_batch;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
#[ignore]
fn partitions_start_up() {
    let n: i32 = std::env::var("GREGOR_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 1000,
        flush_interval_ms: 3_600_000,
        checkpoint_interval_ms: 3_600_000,
        ..LogOptions::default()
    };
    let batch = simple_batch(2, 200, 1);
    let info = validate_produce_batch(&batch, 1 << 20).unwrap();
    let batch = Bytes::from(batch);
    let t = Instant::now();
    {
        let m = LogManager::open(dir.path(), opts.clone()).unwrap();
        for i in 0..n {
            let p = m
                .create(
                    &TopicPartition::new("scale", i),
                    TopicId::from_bytes([9; 16]),
                )
                .unwrap();
            // Three segments each: two sealed, one active.
            for _ in 0..5 {
                p.append(&batch, &info, LeaderEpoch(0)).unwrap();
            }
            // As the flusher would: sync, which also releases the sealed segments' writers.
            p.flush().unwrap();
        }
        eprintln!(
            "created {n} partitions in {:?}; open descriptors: {}",
            t.elapsed(),
            open_fds()
        );
        m.shutdown().unwrap();
    }
    let t = Instant::now();
    let m = LogManager::open(dir.path(), opts.clone()).unwrap();
    eprintln!(
        "clean start-up with {n} partitions: {:?}; open descriptors: {}",
        t.elapsed(),
        open_fds()
    );
    assert_eq!(m.all().len(), n as usize);
    drop(m);
    for f in [checkpoint::RECOVERY_POINT_FILE, checkpoint::LOG_START_FILE] {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    let t = Instant::now();
    let m = LogManager::open(dir.path(), opts).unwrap();
    eprintln!(
        "start-up without checkpoints (full scan) with {n} partitions: {:?}; open descriptors: {}",
        t.elapsed(),
        open_fds()
    );
    assert_eq!(m.all().len(), n as usize);
}
