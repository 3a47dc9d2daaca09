//! Offsets read from disk are checked, never trusted to fit: a batch whose base offset (outside
//! the CRC, so a flipped bit passes the checksum) makes `base + last offset delta` overflow is an
//! invalid batch that recovery cuts away, not an arithmetic wrap or a panic.

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
        let p = m.create(&tp, [2; 16]).unwrap();
        for i in 0..3 {
            let batch = simple_batch(2, 20, 1_000 + i);
            sizes.push(batch.len() as u64);
            let info = validate_produce_batch(&batch, 1 << 20).unwrap();
            p.append(&Bytes::from(batch), &info, 0).unwrap();
        }
        m.shutdown().unwrap();
    }
    // Forget the recovery point so the whole segment is scanned again, then put the last
    // batch's base offset at i64::MAX, so base + delta overflows: its CRC still matches.
    std::fs::remove_file(dir.path().join("recovery-point-offset-checkpoint")).unwrap();
    let log = dir
        .path()
        .join(tp.dir_name())
        .join(super::segment::file_name(0, "log"));
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
    match p.append(&Bytes::from(next), &info, 0).unwrap() {
        AppendOutcome::Appended { base_offset, .. } => assert_eq!(base_offset, 4),
        other => panic!("unexpected {other:?}"),
    }
}
