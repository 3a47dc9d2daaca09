//! Crash-safety properties of the log, on real files with the fault-injecting [`FaultyIo`]:
//! the newest segment cut at every byte offset, writes never fsynced dropped (or torn into
//! garbage), index files deleted or corrupted, and a full disk. After recovery: no acknowledged
//! (fsynced) record is lost, every batch returned is whole and byte-identical to what was
//! written, and the offset indexes point at the batches they name.
//!
//! Case counts are bounded by default; `GREGOR_CRASH_CASES=<n>` runs more random cases.

use crate::common::{LeaderEpoch, Offset, TopicId};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::io::FaultyIo;
use super::segment::file_name;
use super::*;
use crate::records::batch::BatchHeader;
use crate::records::testutil::simple_batch;
use crate::records::validate_produce_batch;

/// xorshift64*: deterministic, dependency-free randomness for reproducible cases.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

pub(super) fn cases(default: u64) -> u64 {
    std::env::var("GREGOR_CRASH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn opts() -> LogOptions {
    LogOptions {
        segment_bytes: 900,
        index_interval_bytes: 150,
        flush_interval_ms: 3_600_000,
        checkpoint_interval_ms: 3_600_000,
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("c", 0)
}

/// Appends a batch and returns it as stored (offset and epoch stamped), with its offsets.
fn append(p: &PartitionLog, rng: &mut Rng) -> (i64, i64, Vec<u8>) {
    let n = 1 + rng.below(4) as usize;
    let batch = simple_batch(
        n,
        10 + rng.below(120) as usize,
        1_000 + rng.below(1000) as i64,
    );
    let info = validate_produce_batch(&batch, 1 << 24).expect("valid test batch");
    match p
        .append(&Bytes::from(batch.clone()), &info, LeaderEpoch(0))
        .expect("append")
    {
        AppendOutcome::Appended {
            base_offset,
            last_offset,
            ..
        } => {
            let mut stored = batch;
            stored[..8].copy_from_slice(&base_offset.to_be_bytes());
            stored[12..16].copy_from_slice(&0i32.to_be_bytes());
            (base_offset, last_offset, stored)
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Reads the whole log from its start as a list of batches.
pub(super) fn read_all(p: &PartitionLog) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = p.log_start_offset();
    while offset < p.log_end_offset() {
        let r = p.read(offset, 1 << 20, true).expect("read");
        assert!(!r.records.is_empty(), "no data at {offset} below the end");
        let mut b = &r.records[..];
        while !b.is_empty() {
            let h = BatchHeader::new(b).expect("whole header");
            let n = h.total_size().expect("sane length");
            assert!(n <= b.len(), "torn batch returned");
            out.push(b[..n].to_vec());
            offset = Offset::from(h.last_offset() + 1);
            b = &b[n..];
        }
    }
    out
}

/// Every offset index entry points at the start of the batch whose last offset it names.
pub(super) fn check_indexes(dir: &Path, p: &PartitionLog) {
    for base in p.segment_base_offsets() {
        let data = std::fs::read(dir.join(file_name(base, "log"))).expect("segment file");
        for (rel, pos) in p.index_entries(base).expect("segment") {
            let h = BatchHeader::new(&data[pos as usize..]).expect("entry inside the file");
            assert_eq!(
                h.last_offset(),
                base + i64::from(rel),
                "index entry {rel}@{pos}"
            );
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn newest_log(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn newest_segment_cut_at_every_byte_offset() {
    let src = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(7);
    let mut written = Vec::new();
    {
        let m = LogManager::open(src.path(), opts()).unwrap();
        let p = m.create(&tp(), TopicId::from_bytes([1; 16])).unwrap();
        while p.segment_base_offsets().len() < 3 || written.len() < 12 {
            written.push(append(&p, &mut rng));
        }
        m.shutdown().unwrap();
    }
    let pdir = src.path().join(tp().dir_name());
    let newest = newest_log(&pdir);
    let newest_name = newest.file_name().unwrap().to_owned();
    let newest_base: i64 = newest_name.to_str().unwrap()[..20].parse().unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    assert!(len > 200, "the newest segment holds several batches");
    for cut in 0..=len {
        let dst = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dst.path());
        let dpdir = dst.path().join(tp().dir_name());
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dpdir.join(&newest_name))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        // What must survive: every batch before the newest segment, and the newest
        // segment's batches that end at or before the cut.
        let mut pos = 0u64;
        let expected: Vec<&Vec<u8>> = written
            .iter()
            .filter(|(base, _, b)| {
                if *base < newest_base {
                    return true;
                }
                pos += b.len() as u64;
                pos <= cut
            })
            .map(|(_, _, b)| b)
            .collect();
        let m = LogManager::open(dst.path(), opts()).unwrap();
        let p = m.get(&tp()).unwrap();
        let got = read_all(&p);
        assert_eq!(got.len(), expected.len(), "cut at {cut}");
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g, *e, "cut at {cut}: batch bytes");
        }
        check_indexes(&dpdir, &p);
        // The recovered log accepts appends right after the surviving prefix.
        let leo = p.log_end_offset();
        let (base, _, _) = append(&p, &mut rng);
        assert_eq!(base, leo);
    }
}

#[test]
fn dropped_unsynced_writes_lose_no_acknowledged_record() {
    for case in 0..cases(40) {
        let mut rng = Rng::new(case + 1000);
        let dir = tempfile::tempdir().unwrap();
        let io = Arc::new(FaultyIo::new());
        let mut written = Vec::new();
        let mut acked_end = 0i64;
        {
            let m = LogManager::open_with_io(dir.path(), opts(), io.clone()).unwrap();
            let p = m.create(&tp(), TopicId::from_bytes([1; 16])).unwrap();
            for _ in 0..(5 + rng.below(25)) {
                written.push(append(&p, &mut rng));
                match rng.below(6) {
                    // Acknowledge everything so far, as acks=all does after the fsync.
                    0 | 1 => {
                        p.flush().unwrap();
                        acked_end = p.durable_offset().get();
                    }
                    2 => m.checkpoint().unwrap(),
                    _ => {}
                }
            }
            // Crash: the manager goes away without flushing or checkpointing.
        }
        let pdir = dir.path().join(tp().dir_name());
        // Segments rolled after the last flush (never fsynced, nor their directory entry) may
        // not exist after the power cut. File creations reach the journal in order, so only a
        // suffix of them can be missing; the first segment's entry is synced at creation.
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&pdir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        while logs.len() > 1 {
            let Some(path) = logs.pop() else { break };
            if io.durable_len(&path).unwrap() != 0 || rng.below(2) == 0 {
                break;
            }
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            for ext in ["log", "index", "timeindex"] {
                let _ = std::fs::remove_file(pdir.join(format!("{stem}.{ext}")));
            }
        }
        let mut r2 = Rng::new(case + 5000);
        let mut r3 = Rng::new(case + 9000);
        io.crash_image(
            dir.path(),
            &mut |_, durable, len| r2.below(len - durable + 1),
            &mut |_| r3.below(3) == 0,
        )
        .unwrap();
        let m = LogManager::open(dir.path(), opts()).unwrap();
        let p = m.get(&tp()).unwrap();
        assert!(
            p.log_end_offset() >= acked_end,
            "case {case}: acknowledged records survive ({} < {acked_end})",
            p.log_end_offset()
        );
        let got = read_all(&p);
        // What survives is a prefix of what was written, byte for byte.
        assert!(got.len() <= written.len());
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g, &written[i].2, "case {case}: batch {i}");
        }
        check_indexes(&pdir, &p);
    }
}

#[test]
fn deleted_or_corrupt_index_files_are_rebuilt() {
    let src = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(3);
    let mut written = Vec::new();
    {
        let m = LogManager::open(src.path(), opts()).unwrap();
        let p = m.create(&tp(), TopicId::from_bytes([1; 16])).unwrap();
        while p.segment_base_offsets().len() < 5 {
            written.push(append(&p, &mut rng));
        }
        m.shutdown().unwrap();
    }
    let bases: Vec<i64> = {
        let m = LogManager::open(src.path(), opts()).unwrap();
        let p = m.get(&tp()).unwrap();
        assert!(
            p.recovery_report().trusted_segments >= 3,
            "sealed segments are trusted"
        );
        p.segment_base_offsets()
    };
    let variants = cases(60);
    for case in 0..variants {
        let dst = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dst.path());
        let pdir = dst.path().join(tp().dir_name());
        let base = bases[rng.below(bases.len() as u64 - 1) as usize];
        let ext = if rng.below(2) == 0 {
            "index"
        } else {
            "timeindex"
        };
        let path = pdir.join(file_name(base, ext));
        let mut bytes = std::fs::read(&path).unwrap_or_default();
        match case % 5 {
            0 => {
                std::fs::remove_file(&path).unwrap();
            }
            1 => {
                bytes.truncate(bytes.len().saturating_sub(3));
                std::fs::write(&path, &bytes).unwrap();
            }
            2 => {
                for _ in 0..3 {
                    if !bytes.is_empty() {
                        let i = rng.below(bytes.len() as u64) as usize;
                        bytes[i] ^= 1 << rng.below(8);
                    }
                }
                std::fs::write(&path, &bytes).unwrap();
            }
            3 => {
                // Well-shaped but wrong: every position moved inside its batch.
                for e in bytes.chunks_mut(8) {
                    if e.len() == 8 && ext == "index" {
                        let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]) + 1;
                        e[4..].copy_from_slice(&pos.to_be_bytes());
                    }
                }
                std::fs::write(&path, &bytes).unwrap();
            }
            _ => {
                std::fs::write(&path, b"garbage!").unwrap();
            }
        }
        let m = LogManager::open(dst.path(), opts()).unwrap();
        let p = m.get(&tp()).unwrap();
        let got = read_all(&p);
        assert_eq!(got.len(), written.len(), "case {case}");
        for (g, w) in got.iter().zip(&written) {
            assert_eq!(g, &w.2, "case {case}");
        }
        // Reads starting at every offset find the right batch.
        for (b, l, stored) in &written {
            for o in *b..=*l {
                let r = p.read(Offset::from(o), 1, true).unwrap();
                assert_eq!(&r.records[..], &stored[..], "case {case}: offset {o}");
            }
        }
        check_indexes(&pdir, &p);
    }
}

#[test]
fn full_disk_fails_the_append_but_not_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(FaultyIo::new());
    let m = LogManager::open_with_io(dir.path(), opts(), io.clone()).unwrap();
    let p = m.create(&tp(), TopicId::from_bytes([1; 16])).unwrap();
    let mut rng = Rng::new(11);
    let mut written = vec![append(&p, &mut rng), append(&p, &mut rng)];
    let seg = dir.path().join(tp().dir_name()).join(file_name(0, "log"));
    let size = p.size_bytes();
    io.set_disk_full(Some(40));
    let batch = simple_batch(2, 50, 5);
    let info = validate_produce_batch(&batch, 1 << 24).unwrap();
    for _ in 0..3 {
        let err = p
            .append(&Bytes::from(batch.clone()), &info, LeaderEpoch(0))
            .unwrap_err();
        assert!(matches!(&err, LogError::Io(e) if e.raw_os_error() == Some(libc::ENOSPC)));
        assert!(!p.is_offline(), "out of space does not poison");
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            size,
            "partial write truncated"
        );
    }
    // Reads keep working while the disk is full.
    assert_eq!(read_all(&p).len(), 2);
    io.set_disk_full(None);
    written.push(append(&p, &mut rng));
    assert_eq!(
        written[2].0,
        written[1].1 + 1,
        "offsets continue without a gap"
    );
    p.flush().unwrap();
    assert_eq!(
        read_all(&p),
        written.iter().map(|w| w.2.clone()).collect::<Vec<_>>()
    );
    // Another kind of write error, or a failed fsync, does take the partition offline.
    io.fail_nth_write(1, libc::EIO, 10);
    assert!(p
        .append(&Bytes::from(batch.clone()), &info, LeaderEpoch(0))
        .is_err());
    assert!(p.is_offline());
    assert_eq!(
        read_all(&p).len(),
        3,
        "reads still work on an offline partition"
    );
    let q = m
        .create(&TopicPartition::new("c", 1), TopicId::from_bytes([1; 16]))
        .unwrap();
    append(&q, &mut rng);
    io.fail_nth_sync(1);
    assert!(q.flush().is_err());
    assert!(q.is_offline());
    drop(m);
    // After a restart everything written and not torn is there.
    let m = LogManager::open(dir.path(), opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    assert_eq!(
        read_all(&p),
        written.iter().map(|w| w.2.clone()).collect::<Vec<_>>()
    );
}
