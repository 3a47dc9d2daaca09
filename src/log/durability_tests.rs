//! Crash properties over every durable file, through the crash model of [`FaultyIo`]: a seeded
//! random workload (plain, idempotent and transactional appends, abort and commit markers,
//! rolls, flushes, checkpoints, DeleteRecords, partition deletion, metadata commits, and
//! compaction swaps) loses power at a random operation of the file-system seam; the disk that
//! crash leaves (only what was fsynced: file bytes, creations, renames, removals) is written out
//! and opened with the real recovery code. Then: every offset acknowledged as durable reads
//! back with the same bytes, indexes match the log (and those below the checkpointed recovery
//! point are the durable ones, not rebuilt), producer state, aborted transactions, the log start
//! and the recovery point do not go back past a durable state, a deleted partition stays
//! deleted, and the metadata store reloads its last committed image.
//!
//! Each of today's fsyncs was removed, one at a time, and the test below that then failed is
//! named (default case counts; `GREGOR_CRASH_CASES=<n>` runs more):
//!
//! | fsync removed | caught by |
//! |---|---|
//! | `PartitionLog::flush`: fdatasync of the active `.log` | `random_workload_survives_a_crash_at_any_operation`, `compaction_swap_survives_a_crash_at_any_operation`, `crash_tests::dropped_unsynced_writes_lose_no_acknowledged_record` |
//! | `PartitionLog::flush`: fdatasync of `.txnindex` files (`txn_index_unsynced`) | `random_workload_survives_a_crash_at_any_operation`, `a_crash_during_recovery_loses_nothing_acknowledged` (acknowledged abort forgotten) |
//! | `PartitionLog::flush`: fsync of the partition dir after a roll | `random_workload_survives_a_crash_at_any_operation`, `compaction_swap_survives_a_crash_at_any_operation` |
//! | `SealedFiles::sync`: fdatasync of the sealed `.log` | `random_workload_survives_a_crash_at_any_operation`, `compaction_swap_survives_a_crash_at_any_operation`, `crash_tests::dropped_unsynced_writes…` |
//! | `SealedFiles::sync`: fdatasync of the sealed `.index` | `random_workload_survives_a_crash_at_any_operation`, `compaction_swap_survives_a_crash_at_any_operation` (index below the recovery point not durable) |
//! | `SealedFiles::sync`: fdatasync of the sealed `.timeindex` | `random_workload_survives_a_crash_at_any_operation`, `compaction_swap_survives_a_crash_at_any_operation` |
//! | `SealedFiles::sync`: fdatasync of the producer snapshot | `random_workload_survives_a_crash_at_any_operation`, `a_crash_during_recovery_loses_nothing_acknowledged` (damaged snapshot on the crashed disk; before recovery fell back to every segment, a quiet producer was forgotten) |
//! | `write_atomic`: fsync of the temp file (checkpoints, `partition.metadata`, metadata store) | `random_workload_survives_a_crash_at_any_operation` (metadata file empty) |
//! | `write_atomic`: fsync of the directory after the rename | `random_workload_survives_a_crash_at_any_operation` (metadata reloads an older image) |
//! | `LogManager::create`: fsync of the new partition dir | `random_workload_survives_a_crash_at_any_operation` (flushed data of a new partition lost) |
//! | `LogManager::create`: fsync of the log dir | `random_workload_survives_a_crash_at_any_operation` (created partition missing) |
//! | `LogManager::delete`: fsync of the log dir after the rename to `-delete` | `random_workload_survives_a_crash_at_any_operation` (deleted partition came back) |
//! | `delete_old_segments` (retention, DeleteRecords): fsync of the partition dir | `random_workload_survives_a_crash_at_any_operation` (deleted segments came back) |
//! | cleaner: fsync of `<base>.log.cleaned` | `compaction_swap_survives_a_crash_at_any_operation` (newest value of a key lost) |
//! | cleaner: fsync of the dir after `.cleaned` -> `.swap` | none: redundant. The `.cleaned` bytes are fsynced before the rename and `.swap` -> `.log` is one atomic rename, so every directory state a crash can expose (old `.log`; `.swap` beside it; new `.log`) recovers to the old or the new segment |
//! | cleaner: fdatasync of the new `.index`/`.timeindex` after the swap (outside the lock) | `compaction_swap_survives_a_crash_at_any_operation` (indexes of a completed pass not durable) |
//! | cleaner: fsync of the dir after `.swap` -> `.log` | `compaction_swap_survives_a_crash_at_any_operation` (completed pass not durable) |
//! | recovery: fsync of a truncated `.log` (`truncate_log`) | none: redundant. A lost truncation re-exposes bytes the next recovery rejects by the same checks, and the next append to that segment is followed by an fdatasync of the same file, which makes the truncation durable with it |
//! | recovery: fdatasync of rebuilt indexes of sealed segments (`write_indexes`) | `a_crash_during_recovery_loses_nothing_acknowledged` |
//! | recovery: dir fsync after completing an interrupted swap | none: idempotent. A lost completion leaves the `.swap`, and the next recovery completes it again |
//! | recovery: dir fsync after deleting segments that overlap their predecessor | none: idempotent. A segment that overlaps its predecessor keeps doing so (the predecessor only grows), so the next recovery deletes it again |
//! | recovery: dir fsync after deleting segments past a truncation or gap | `segments_deleted_by_recovery_stay_deleted` |
//! | recovery: dir fsync after creating the first segment of an empty log | `a_crash_during_recovery_loses_nothing_acknowledged` (appends to it lost) |
//! | `record_epoch`: the `leader-epoch-checkpoint` written (temp, fsync, rename, dir fsync) before the first batch of a new epoch | `replication_tests::the_epoch_checkpoint_survives_a_crash_at_any_operation`, `replication_tests::appends_after_a_truncation_survive_a_crash_without_resurrecting_the_cut` (the cache misses an epoch whose batches are durable) |
//! | truncation (`Segment::truncate_to`): fsync of the cut `.log` | `replication_tests::a_crash_during_truncation_leaves_a_prefix_and_after_it_nothing_comes_back` (truncated batches came back after the truncation returned) |
//! | truncation: rewrite of the log dir's checkpoints before returning | `replication_tests::a_truncation_rewrites_the_checkpoints_before_it_returns` (a stale log start hid the restarted log) |

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::crash_tests::{cases, check_indexes, read_all, Rng};
use super::io::FaultyIo;
use super::segment::file_name;
use super::*;
use crate::common::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, TopicId};
use crate::records::batch::BatchHeader;
use crate::records::build::MarkerKind;
use crate::records::testutil::{build_batch, idempotent_batch, simple_batch, transactional_batch};
use crate::records::{records, validate_produce_batch, Compression};

fn opts() -> LogOptions {
    LogOptions {
        segment_bytes: 700,
        index_interval_bytes: 120,
        flush_interval_ms: 3_600_000,
        checkpoint_interval_ms: 3_600_000,
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("d", 0)
}

fn tp_doomed() -> TopicPartition {
    TopicPartition::new("doomed", 0)
}

/// A batch as written: offsets, and its bytes as stored (`None` for markers, built inside).
type Written = (i64, i64, Option<Vec<u8>>);

/// What the workload was told is durable, and everything it wrote.
#[derive(Default)]
struct Model {
    written: Vec<Written>,
    /// Offsets below this were acknowledged durable (a flush returned).
    acked_end: i64,
    /// (recovery point, log start) of the last checkpoint that returned.
    checkpoint: Option<(i64, i64)>,
    /// First segment base left by the last DeleteRecords that returned.
    deleted_below: i64,
    /// Highest log start a DeleteRecords moved to: producers whose last batch is below it were
    /// evicted (as in Kafka), so a snapshot taken later rightly lacks them.
    evicted_below: i64,
    /// Producer id -> (last sequence, last offset) of its last batch, as written.
    producers: BTreeMap<i64, (i32, i64)>,
    /// Producer id -> its last batch acknowledged durable.
    acked_producers: BTreeMap<i64, (i32, i64)>,
    /// Abort markers (producer, marker offset) written / acknowledged durable.
    aborts: Vec<(i64, i64)>,
    acked_aborts: Vec<(i64, i64)>,
    /// The doomed partition: created durably, then deleted durably.
    doomed_created: bool,
    doomed_flushed: bool,
    doomed_delete_started: bool,
    doomed_deleted: bool,
    /// Topic names of the last metadata commit that returned, and of one in flight at the crash.
    meta_committed: Option<BTreeSet<String>>,
    meta_in_flight: Option<BTreeSet<String>>,
}

impl Model {
    fn push(&mut self, o: AppendOutcome, stored: Option<Vec<u8>>) {
        if let AppendOutcome::Appended {
            base_offset,
            last_offset,
            ..
        } = o
        {
            let stored = stored.map(|mut b| {
                b[..8].copy_from_slice(&base_offset.to_be_bytes());
                b[12..16].copy_from_slice(&0i32.to_be_bytes());
                b
            });
            self.written.push((base_offset, last_offset, stored));
        }
    }

    fn flushed(&mut self, durable: i64) {
        self.acked_end = self.acked_end.max(durable);
        for (pid, (seq, off)) in &self.producers {
            if *off < durable {
                self.acked_producers.insert(*pid, (*seq, *off));
            }
        }
        // A producer's acknowledged state is its newest batch below the durable offset.
        let below: Vec<(i64, (i32, i64))> = self
            .written
            .iter()
            .filter_map(|(b, l, s)| {
                let s = s.as_ref()?;
                let h = BatchHeader::new(s)?;
                (*l < durable && h.producer_id() >= 0 && h.base_sequence() >= 0).then(|| {
                    let last_seq = h.base_sequence() + h.last_offset_delta();
                    (
                        h.producer_id(),
                        (last_seq, *b + i64::from(h.last_offset_delta())),
                    )
                })
            })
            .collect();
        for (pid, v) in below {
            self.acked_producers.insert(pid, v);
        }
        self.acked_aborts = self
            .aborts
            .iter()
            .copied()
            .filter(|(_, at)| *at < durable)
            .collect();
    }
}

fn append(p: &PartitionLog, batch: Vec<u8>) -> Result<(AppendOutcome, Vec<u8>), LogError> {
    let info = validate_produce_batch(&batch, 1 << 24).expect("valid test batch");
    let o = p.append(&Bytes::from(batch.clone()), &info, LeaderEpoch(0))?;
    Ok((o, batch))
}

/// The runtime the metadata quorum of a workload runs on; the workload itself calls the store
/// from the test's thread, as handlers do from the blocking pool.
fn quorum_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// One random workload; returns at the first error, which must come from the crash.
fn run_workload(io: &Arc<FaultyIo>, root: &Path, rng: &mut Rng, model: &mut Model) {
    let step = |r: Result<(), LogError>| match r {
        Ok(()) => true,
        Err(e) => {
            assert!(io.crashed(), "only the crash fails operations: {e}");
            false
        }
    };
    let runtime = quorum_runtime();
    let opened = runtime.block_on(crate::metadata::open_single_node(root, 1, io.clone()));
    let Ok(store) = opened else {
        assert!(io.crashed());
        return;
    };
    model.meta_committed = Some(BTreeSet::new());
    let Ok(m) = LogManager::open_with_io(root, opts(), io.clone()) else {
        assert!(io.crashed());
        return;
    };
    let Ok(p) = m.create(&tp(), TopicId::from_bytes([1; 16])) else {
        assert!(io.crashed());
        return;
    };
    let mut seqs: BTreeMap<i64, i32> = BTreeMap::new();
    let mut open_txn = false;
    let mut topics = BTreeSet::new();
    for i in 0..70 {
        let ok = match rng.below(24) {
            0..=7 => step((|| {
                let b = simple_batch(
                    1 + rng.below(3) as usize,
                    10 + rng.below(90) as usize,
                    1_000 + i,
                );
                let (o, b) = append(&p, b)?;
                model.push(o, Some(b));
                Ok(())
            })()),
            8..=10 => step((|| {
                // Three idempotent producers; the first goes quiet early, so only a producer
                // snapshot remembers it once two more segments have rolled.
                let pid = 1000 + rng.below(if i < 20 { 3 } else { 2 }) as i64;
                let seq = seqs.entry(pid).or_insert(0);
                let n = 1 + rng.below(3) as usize;
                let (o, b) = append(&p, idempotent_batch(n, pid, 0, *seq))?;
                *seq += n as i32;
                if let AppendOutcome::Appended { last_offset, .. } = o {
                    model.producers.insert(pid, (*seq - 1, last_offset));
                }
                model.push(o, Some(b));
                Ok(())
            })()),
            11..=12 => step((|| {
                // A transaction of producer 2000: data, then (later) an abort or commit marker.
                let pid = 2000;
                if open_txn {
                    let kind = if rng.below(3) == 0 {
                        MarkerKind::Commit
                    } else {
                        MarkerKind::Abort
                    };
                    let o = p.append_txn_marker(ProducerId(pid), ProducerEpoch(0), kind, 0)?;
                    if let (MarkerKind::Abort, AppendOutcome::Appended { base_offset, .. }) =
                        (kind, o)
                    {
                        model.aborts.push((pid, base_offset));
                    }
                    model.push(o, None);
                    open_txn = false;
                } else {
                    let seq = seqs.entry(pid).or_insert(0);
                    let v = vec![b't'; 20 + rng.below(40) as usize];
                    let recs = [(None, Some(&v[..]), Vec::new(), 5_000 + i)];
                    let b = transactional_batch(&recs, Compression::None, pid, 0, *seq);
                    let (o, b) = append(&p, b)?;
                    *seq += 1;
                    if let AppendOutcome::Appended { last_offset, .. } = o {
                        model.producers.insert(pid, (*seq - 1, last_offset));
                    }
                    model.push(o, Some(b));
                    open_txn = true;
                }
                Ok(())
            })()),
            13..=16 => step((|| {
                p.flush()?;
                model.flushed(p.durable_offset().get());
                Ok(())
            })()),
            17..=18 => step((|| {
                let rp = p.durable_offset().get();
                let ls = p.log_start_offset().get();
                m.checkpoint()?;
                model.checkpoint = Some((rp, ls));
                Ok(())
            })()),
            19 => step((|| {
                let (start, end) = (p.log_start_offset().get(), p.log_end_offset().get());
                let to = start + rng.below((end - start + 1) as u64) as i64;
                let start = p.delete_records_before(Offset(to))?.get();
                model.evicted_below = model.evicted_below.max(start);
                let first = p.segment_base_offsets().first().copied().unwrap_or(0);
                model.deleted_below = model.deleted_below.max(first);
                Ok(())
            })()),
            20 => step((|| {
                if !model.doomed_created {
                    let d = m.create(&tp_doomed(), TopicId::from_bytes([2; 16]))?;
                    model.doomed_created = true;
                    append(&d, simple_batch(2, 30, 1))?;
                    d.flush()?;
                    model.doomed_flushed = true;
                } else if !model.doomed_deleted {
                    model.doomed_delete_started = true;
                    m.delete(&tp_doomed())?;
                    model.doomed_deleted = true;
                }
                Ok(())
            })()),
            _ => {
                let mut next = topics.clone();
                let name = format!("topic-{i}");
                next.insert(name.clone());
                model.meta_in_flight = Some(next.clone());
                match store.create_topic(&name, 1, BTreeMap::new()) {
                    Ok(_) => {
                        topics = next;
                        model.meta_committed = Some(topics.clone());
                        model.meta_in_flight = None;
                        true
                    }
                    Err(e) => {
                        assert!(io.crashed(), "{e}");
                        false
                    }
                }
            }
        };
        if !ok {
            return;
        }
    }
}

/// Bytes of a file, or `None` if it does not exist.
fn read_opt(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// Checks the recovered disk `out` against what the workload was told.
/// `trusted_indexes`: whether the index files under `root` below the checkpointed recovery
/// point are final (false when a crash cut short a recovery that was rewriting them).
fn check_recovered(case: u64, root: &Path, out: &Path, model: &Model, trusted_indexes: bool) {
    let pdir_live = root.join(tp().dir_name());
    let pdir = out.join(tp().dir_name());
    // Segments wholly below the checkpointed recovery point are trusted by recovery: their
    // index files must be the durable ones, identical to those written before the crash.
    if let Some((rp, _)) = model.checkpoint.filter(|_| trusted_indexes) {
        let mut bases: Vec<i64> = std::fs::read_dir(&pdir)
            .map(|d| {
                d.filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    name.strip_suffix(".log")?.parse().ok()
                })
                .collect()
            })
            .unwrap_or_default();
        bases.sort_unstable();
        for w in bases.windows(2) {
            // Trusted when the next segment starts below the recovery point (recovery's rule):
            // then it was sealed before the flush that published the point.
            if w[1] >= rp {
                break;
            }
            for ext in ["index", "timeindex"] {
                let live = read_opt(&pdir_live.join(file_name(w[0], ext)));
                if live.is_some() {
                    assert_eq!(
                        read_opt(&pdir.join(file_name(w[0], ext))),
                        live,
                        "case {case}: {ext} of segment {} below the recovery point {rp}",
                        w[0]
                    );
                }
            }
        }
    }
    // A snapshot whose name is durable has durable bytes: recovery never meets a damaged one
    // (it would skip it and rebuild from more of the log, correct but slower).
    for e in std::fs::read_dir(&pdir).into_iter().flatten() {
        let path = e.expect("dir entry").path();
        if path.extension().is_some_and(|x| x == "snapshot") {
            let bytes = std::fs::read(&path).expect("snapshot");
            assert!(
                producer_snapshot::decode(&bytes).is_some(),
                "case {case}: damaged producer snapshot {}",
                path.display()
            );
        }
    }
    if let Some(committed) = &model.meta_committed {
        let runtime = quorum_runtime();
        let store = runtime
            .block_on(crate::metadata::open_single_node(
                out,
                1,
                Arc::new(io::OsIo),
            ))
            .expect("metadata reopens");
        let names: BTreeSet<String> = store.topics().iter().map(|t| t.name.clone()).collect();
        assert!(
            &names == committed || model.meta_in_flight.as_ref() == Some(&names),
            "case {case}: metadata {names:?}, last committed {committed:?}"
        );
    }
    let m = LogManager::open(out, opts()).expect("recovery");
    if model.doomed_deleted {
        assert!(
            m.get(&tp_doomed()).is_none(),
            "case {case}: a deleted partition came back"
        );
    } else if model.doomed_created && !model.doomed_delete_started {
        let d = m.get(&tp_doomed()).expect("created partition survives");
        if model.doomed_flushed {
            assert_eq!(
                d.log_end_offset().get(),
                2,
                "case {case}: flushed data of doomed"
            );
        }
    }
    let Some(p) = m.get(&tp()) else {
        assert!(
            model.acked_end == 0 && model.written.is_empty(),
            "case {case}: partition lost"
        );
        return;
    };
    let leo = p.log_end_offset().get();
    let start = p.log_start_offset().get();
    assert!(
        leo >= model.acked_end,
        "case {case}: acknowledged offsets lost: end {leo} < {}",
        model.acked_end
    );
    if let Some((rp, ls)) = model.checkpoint {
        assert!(
            leo >= rp,
            "case {case}: end {leo} below the recovery point {rp}"
        );
        assert!(
            p.durable_offset().get() >= rp.min(leo),
            "case {case}: recovery point went back"
        );
        assert!(
            start >= ls,
            "case {case}: log start {start} went back below {ls}"
        );
    }
    assert!(
        start >= model.deleted_below,
        "case {case}: log start {start} below deleted segments ({})",
        model.deleted_below
    );
    // What is readable is the written batches from the log start to the end, byte for byte.
    let got = read_all(&p);
    if let Some(first) = got.first() {
        let h = BatchHeader::new(first).expect("header");
        let j0 = model
            .written
            .iter()
            .position(|w| w.0 == h.base_offset())
            .unwrap_or_else(|| panic!("case {case}: unknown batch at {}", h.base_offset()));
        assert!(h.base_offset() <= start && start <= h.last_offset() + 1);
        assert!(got.len() <= model.written.len() - j0);
        for (g, w) in got.iter().zip(&model.written[j0..]) {
            let h = BatchHeader::new(g).expect("header");
            assert_eq!(
                (h.base_offset(), h.last_offset()),
                (w.0, w.1),
                "case {case}"
            );
            if let Some(bytes) = &w.2 {
                assert_eq!(g, bytes, "case {case}: batch at {}", w.0);
            }
        }
    } else {
        assert_eq!(start, leo, "case {case}: empty log");
    }
    check_indexes(&pdir, &p);
    // Producer state: at least what was acknowledged, exactly what the surviving log says.
    let recovered: BTreeMap<i64, (i32, i64)> = p
        .active_producers()
        .into_iter()
        .filter(|e| e.last_sequence >= 0)
        .map(|e| (e.producer_id, (e.last_sequence, e.last_offset)))
        .collect();
    for (pid, (seq, off)) in &model.acked_producers {
        if *off < start.max(model.evicted_below) {
            continue;
        }
        let got = recovered.get(pid).copied();
        assert!(
            got.is_some_and(|(s, o)| s >= *seq && o >= *off),
            "case {case}: producer {pid} went back: {got:?} < {:?}",
            (seq, off)
        );
    }
    let aborted: BTreeSet<(i64, i64)> = p
        .aborted_transactions(Offset(0), Offset(leo))
        .into_iter()
        .map(|t| (t.producer_id, t.last_offset))
        .collect();
    for a in &model.acked_aborts {
        if a.1 >= start {
            assert!(
                aborted.contains(a),
                "case {case}: acknowledged abort {a:?} forgotten"
            );
        }
    }
}

#[test]
fn random_workload_survives_a_crash_at_any_operation() {
    for case in 0..cases(150) {
        let mut rng = Rng::new(case * 7919 + 13);
        let root = tempfile::tempdir().unwrap();
        let io = Arc::new(FaultyIo::new());
        io.crash_after(1 + rng.below(420));
        let mut model = Model::default();
        run_workload(&io, root.path(), &mut rng, &mut model);
        io.crash_now();
        let out = tempfile::tempdir().unwrap();
        io.materialise(root.path(), out.path()).unwrap();
        check_recovered(case, root.path(), out.path(), &model, true);
    }
}

/// Recovery writes too (truncations, rebuilt indexes, deletions): it may itself lose power.
/// The disk a first crash left gets a torn tail on the newest segment and a damaged index;
/// recovery runs through the crash model and loses power at a random operation (or completes
/// and checkpoints); the disk after that second crash must keep every property.
#[test]
fn a_crash_during_recovery_loses_nothing_acknowledged() {
    for case in 0..cases(80) {
        let mut rng = Rng::new(case * 104_729 + 5);
        let root = tempfile::tempdir().unwrap();
        let io = Arc::new(FaultyIo::new());
        io.crash_after(60 + rng.below(360));
        let mut model = Model::default();
        run_workload(&io, root.path(), &mut rng, &mut model);
        io.crash_now();
        let first = tempfile::tempdir().unwrap();
        io.materialise(root.path(), first.path()).unwrap();
        let pdir = first.path().join(tp().dir_name());
        let mut logs: Vec<std::path::PathBuf> = std::fs::read_dir(&pdir)
            .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
        logs.sort();
        if let Some(newest) = logs.last() {
            if rng.below(2) == 0 {
                // A torn write past the durable end.
                let mut b = std::fs::read(newest).unwrap();
                b.extend_from_slice(&[0x5a; 37]);
                std::fs::write(newest, b).unwrap();
            }
        }
        if logs.len() > 1 && rng.below(2) == 0 {
            let victim = &logs[rng.below(logs.len() as u64 - 1) as usize];
            let index = victim.with_extension("index");
            if let Ok(mut b) = std::fs::read(&index) {
                b.extend_from_slice(&[1, 2, 3]);
                std::fs::write(&index, b).unwrap();
            }
        }
        let io2 = Arc::new(FaultyIo::new());
        io2.assume_durable(first.path()).unwrap();
        io2.crash_after(1 + rng.below(80));
        let mut completed = false;
        if let Ok(m) = LogManager::open_with_io(first.path(), opts(), io2.clone()) {
            if let Some(p) = m.get(&tp()) {
                let rp = p.durable_offset().get();
                let ls = p.log_start_offset().get();
                if m.checkpoint().is_ok() {
                    model.checkpoint = Some((rp, ls));
                    completed = true;
                    // Appends go where recovery left the log: what it dropped was never
                    // acknowledged, and what it wrote (a truncation, a new segment, deleted
                    // segments) must be durable before these are.
                    let leo = p.log_end_offset().get();
                    model.written.retain(|w| w.1 < leo);
                    model.producers.retain(|_, v| v.1 < leo);
                    model.aborts.retain(|a| a.1 < leo);
                    let acked = (0..3)
                        .try_for_each(|i| {
                            let (o, b) = append(&p, simple_batch(2, 40, 9_000 + i))?;
                            model.push(o, Some(b));
                            Ok::<(), LogError>(())
                        })
                        .and_then(|()| p.flush());
                    match acked {
                        Ok(_) => model.flushed(p.durable_offset().get()),
                        Err(e) => assert!(io2.crashed(), "{e}"),
                    }
                }
            }
        }
        io2.crash_now();
        let second = tempfile::tempdir().unwrap();
        io2.materialise(first.path(), second.path()).unwrap();
        check_recovered(case, first.path(), second.path(), &model, completed);
    }
}

/// Key -> (offset, value) of its newest record.
type Latest = BTreeMap<Vec<u8>, (i64, Vec<u8>)>;

fn compacted_tp() -> TopicPartition {
    TopicPartition::new("k", 0)
}

/// A compacted partition with eight keys updated over several segments, flushed and
/// checkpointed. Returns the manager, the partition and the newest value of each key.
fn compacted_log(
    root: &Path,
    io: &Arc<FaultyIo>,
    now: i64,
) -> (Arc<LogManager>, Arc<PartitionLog>, Latest) {
    let m = LogManager::open_with_io(root, opts(), io.clone()).unwrap();
    let p = m
        .create(&compacted_tp(), TopicId::from_bytes([3; 16]))
        .unwrap();
    let mut c = p.config();
    c.compact = true;
    c.delete = false;
    c.min_compaction_lag_ms = 0;
    p.set_config(c);
    let mut latest = BTreeMap::new();
    for i in 0..60u32 {
        let key = format!("key{}", i % 8).into_bytes();
        let value = format!("value-{i}-{}", "x".repeat((i % 5) as usize * 9)).into_bytes();
        let recs = [(Some(&key[..]), Some(&value[..]), Vec::new(), now - 1000)];
        let b = build_batch(&recs, Compression::None, -1, -1, -1);
        let (o, _) = append(&p, b).unwrap();
        if let AppendOutcome::Appended { base_offset, .. } = o {
            latest.insert(key, (base_offset, value));
        }
    }
    p.flush().unwrap();
    m.checkpoint().unwrap();
    assert!(p.segment_base_offsets().len() >= 4);
    (m, p, latest)
}

/// Every record of the log as (offset, key, value).
type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn records_of(p: &PartitionLog) -> Vec<Rec> {
    let mut out = Vec::new();
    for b in read_all(p) {
        for r in records(&b, 1 << 20).unwrap().iter() {
            let r = r.unwrap();
            out.push((
                r.offset,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
            ));
        }
    }
    out
}

fn check_compacted(what: &str, out: &Path, before: &[Rec], latest: &Latest) -> Arc<LogManager> {
    let m = LogManager::open(out, opts()).expect("recovery");
    let p = m.get(&compacted_tp()).expect("partition");
    let got = records_of(&p);
    // Every record is one that was written, at its offset; the newest value of each key is
    // there.
    let before: BTreeMap<i64, &Rec> = before.iter().map(|r| (r.0, r)).collect();
    for r in &got {
        assert_eq!(before.get(&r.0), Some(&r), "{what}: record at {}", r.0);
    }
    for (k, (off, v)) in latest {
        assert!(
            got.iter()
                .any(|r| r.0 == *off && r.1.as_deref() == Some(k) && r.2.as_deref() == Some(v)),
            "{what}: newest value of {} lost",
            String::from_utf8_lossy(k)
        );
    }
    check_indexes(&out.join(compacted_tp().dir_name()), &p);
    m
}

#[test]
fn compaction_swap_survives_a_crash_at_any_operation() {
    let now = crate::common::now_ms();
    // Crash at the 1st, 2nd, ... operation of the cleaner pass until one completes.
    for k in 1u64.. {
        let root = tempfile::tempdir().unwrap();
        let io = Arc::new(FaultyIo::new());
        let (_m, p, latest) = compacted_log(root.path(), &io, now);
        let before = records_of(&p);
        io.crash_after(k);
        let cleaned = p.compact(now);
        let completed = !io.crashed();
        io.crash_now();
        let out = tempfile::tempdir().unwrap();
        io.materialise(root.path(), out.path()).unwrap();
        check_compacted(&format!("crash at op {k}"), out.path(), &before, &latest);
        if completed {
            assert!(cleaned.unwrap() > 0, "the pass rewrote segments");
            assert!(k > 5, "the pass did file operations");
            break;
        }
    }
    // A pass that returned has made its swap durable, indexes included: recovery below the
    // recovery point trusts them and finds them identical to the ones written.
    let root = tempfile::tempdir().unwrap();
    let io = Arc::new(FaultyIo::new());
    let (m, p, latest) = compacted_log(root.path(), &io, now);
    let before = records_of(&p);
    assert!(p.compact(now).unwrap() > 0);
    let after = records_of(&p);
    assert!(after.len() < before.len());
    m.checkpoint().unwrap();
    io.crash_now();
    let out = tempfile::tempdir().unwrap();
    io.materialise(root.path(), out.path()).unwrap();
    let live = root.path().join(compacted_tp().dir_name());
    let image = out.path().join(compacted_tp().dir_name());
    let bases = p.segment_base_offsets();
    for base in &bases[..bases.len() - 1] {
        for ext in ["log", "index", "timeindex"] {
            assert_eq!(
                read_opt(&image.join(file_name(*base, ext))),
                read_opt(&live.join(file_name(*base, ext))),
                "{ext} of cleaned segment {base} is durable"
            );
        }
    }
    let m2 = check_compacted("after a completed pass", out.path(), &before, &latest);
    let p2 = m2.get(&compacted_tp()).unwrap();
    assert_eq!(records_of(&p2), after, "the cleaned log is what recovers");
}

/// Segments recovery deletes after a truncation must stay deleted: otherwise, once new
/// appends refill the truncated segment up to the next one's base, a crash brings back the old
/// later segments as if they continued the log.
#[test]
fn segments_deleted_by_recovery_stay_deleted() {
    let root = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    {
        let m = LogManager::open(root.path(), opts()).unwrap();
        let p = m.create(&tp(), TopicId::from_bytes([1; 16])).unwrap();
        let mut i = 0;
        while p.segment_base_offsets().len() < 3 {
            let (o, b) = append(&p, simple_batch(1, 50, i)).unwrap();
            let mut model = Model::default();
            model.push(o, Some(b));
            written.extend(model.written);
            i += 1;
        }
        m.shutdown().unwrap();
    }
    // No recovery point: every segment is scanned. A corrupt batch in the middle of the first.
    std::fs::remove_file(root.path().join(checkpoint::RECOVERY_POINT_FILE)).unwrap();
    let pdir = root.path().join(tp().dir_name());
    let next_base = {
        let m = LogManager::open(root.path(), opts()).unwrap();
        m.get(&tp()).unwrap().segment_base_offsets()[1]
    };
    let cut = next_base / 2;
    let pos: usize = written
        .iter()
        .take_while(|w| w.0 < cut)
        .map(|w| w.2.as_ref().map_or(0, Vec::len))
        .sum();
    let first = pdir.join(file_name(0, "log"));
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[pos + 70] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    let io = Arc::new(FaultyIo::new());
    io.assume_durable(root.path()).unwrap();
    {
        let m = LogManager::open_with_io(root.path(), opts(), io.clone()).unwrap();
        let p = m.get(&tp()).unwrap();
        assert_eq!(
            p.log_end_offset().get(),
            cut,
            "truncated at the corrupt batch"
        );
        assert_eq!(p.segment_base_offsets(), vec![0], "later segments deleted");
        written.truncate(cut as usize);
        for i in cut..next_base {
            let (o, b) = append(&p, simple_batch(1, 50, 100 + i)).unwrap();
            let mut model = Model::default();
            model.push(o, Some(b));
            written.extend(model.written);
        }
        p.flush().unwrap();
        io.crash_now();
    }
    let out = tempfile::tempdir().unwrap();
    io.materialise(root.path(), out.path()).unwrap();
    let m = LogManager::open(out.path(), opts()).unwrap();
    let p = m.get(&tp()).unwrap();
    let got = read_all(&p);
    let want: Vec<Vec<u8>> = written.iter().filter_map(|w| w.2.clone()).collect();
    assert_eq!(
        got, want,
        "the log is the kept prefix and the new appends, nothing older"
    );
}
