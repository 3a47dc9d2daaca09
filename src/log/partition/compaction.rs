//! Compaction of one partition log (`cleanup.policy=compact`), as Kafka's cleaner does it.
//!
//! The log splits into a clean head (offsets below `first_dirty_offset`, compacted at least
//! once), a dirty section, and an uncleanable tail: the active segment and every segment from
//! the first one holding a record younger than `min.compaction.lag.ms`. A pass runs when the
//! dirty bytes are more than `min.cleanable.dirty.ratio` of the cleanable bytes, or when a
//! dirty record is older than `max.compaction.lag.ms`. It maps the keys of the dirty section
//! (stopping early if the map reaches its memory budget), rewrites every segment below the
//! map's end against it, and moves `first_dirty_offset` to the map's end.
//!
//! Each segment is streamed batch by batch: nothing is written until the first batch that
//! changes, and a segment that does not change is left alone. A rewrite is crash-safe: the
//! cleaned bytes go to `<base>.log.cleaned` (fsynced), renamed to `<base>.log.swap` (from here
//! a crash completes the swap at recovery), then over `<base>.log` under the partition lock,
//! with rebuilt indexes. Readers already holding the old file keep reading the old bytes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::records::batch::BatchHeader;

use super::super::batch_reader::{BatchReader, CHUNK};
use super::super::cleaner::{self, AbortedSet, CleanedBatch, OffsetMap};
use super::super::index::OffsetIndex;
use super::super::io::FsIo;
use super::super::segment::{file_name, write_indexes, IndexBuilder, Segment, SegmentState};
use super::super::time_index::TimeIndex;
use super::super::LogError;
use super::{Inner, PartitionLog};

/// Default memory budget of the key map (`log.cleaner.dedupe.buffer.size`).
pub const DEFAULT_DEDUPE_BUFFER: usize = 128 << 20;

/// Where a compacted partition stands for the cleaner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanability {
    /// Offsets below this have been compacted at least once.
    pub first_dirty_offset: i64,
    /// Bytes of the cleanable range below `first_dirty_offset`.
    pub clean_bytes: u64,
    /// Bytes of the cleanable range from `first_dirty_offset` on.
    pub dirty_bytes: u64,
    /// A dirty record has waited longer than `max.compaction.lag.ms`.
    pub overdue: bool,
    /// `min.cleanable.dirty.ratio`.
    pub min_ratio: f64,
}

impl Cleanability {
    /// Dirty bytes over cleanable bytes (0 when there is nothing cleanable).
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// Whether a pass should run now.
    pub fn needs_cleaning(&self) -> bool {
        self.dirty_bytes > 0 && (self.overdue || self.dirty_ratio() > self.min_ratio)
    }
}

/// One sealed segment of the cleanable range, captured under the lock.
struct Planned {
    base: i64,
    file: Arc<File>,
    size: u64,
    next_offset: i64,
}

/// The bytes and indexes of a cleaned segment, ready to swap in.
struct Cleaned {
    path: PathBuf,
    len: u64,
    next_offset: i64,
    builder: IndexBuilder,
    index: OffsetIndex,
    time: TimeIndex,
}

impl Inner {
    /// The first dirty offset, reset to the log start if it is outside the log (a checkpoint
    /// from an older incarnation of the partition).
    fn first_dirty(&self) -> i64 {
        if self.first_dirty_offset > self.leo || self.first_dirty_offset < self.log_start_offset {
            self.log_start_offset
        } else {
            self.first_dirty_offset
        }
    }

    /// Number of leading segments that may be cleaned now: sealed, holding no record younger
    /// than `min.compaction.lag.ms`, and wholly below the last stable offset (an open
    /// transaction's records may still be aborted).
    fn cleanable_segments(&self, now_ms: i64) -> usize {
        let sealed = self.segments.len().saturating_sub(1);
        let youngest_allowed = now_ms.saturating_sub(self.config.min_compaction_lag_ms);
        let stable = self.txn.last_stable_offset(self.high_watermark());
        self.segments[..sealed]
            .iter()
            .position(|s| s.max_timestamp().0 > youngest_allowed || s.next_offset() > stable)
            .unwrap_or(sealed)
    }

    /// The cleaner's view, and how many leading segments are cleanable now.
    fn cleanability(&self, now_ms: i64) -> (Cleanability, usize) {
        let first_dirty = self.first_dirty();
        let n = self.cleanable_segments(now_ms);
        let (mut clean_bytes, mut dirty_bytes) = (0, 0);
        let mut oldest_dirty: Option<i64> = None;
        for s in &self.segments[..n] {
            if s.next_offset() <= first_dirty {
                clean_bytes += s.size();
            } else {
                dirty_bytes += s.size();
                if oldest_dirty.is_none() {
                    oldest_dirty = s
                        .builder
                        .first_batch_timestamp
                        .or(Some(s.max_timestamp().0));
                }
            }
        }
        let max_lag = self.config.max_compaction_lag_ms;
        let overdue = max_lag < i64::MAX
            && oldest_dirty.is_some_and(|ts| ts >= 0 && now_ms.saturating_sub(ts) > max_lag);
        let c = Cleanability {
            first_dirty_offset: first_dirty,
            clean_bytes,
            dirty_bytes,
            overdue,
            min_ratio: self.config.min_cleanable_dirty_ratio,
        };
        (c, n)
    }
}

impl PartitionLog {
    /// The cleaner's view of this partition, or `None` if it is not compacted (or offline).
    pub fn cleanability(&self, now_ms: i64) -> Option<Cleanability> {
        if self.offline.load(Ordering::SeqCst) {
            return None;
        }
        let g = self.lock();
        g.config.compact.then(|| g.cleanability(now_ms).0)
    }

    /// Offsets below this have been compacted at least once.
    pub fn first_dirty_offset(&self) -> i64 {
        self.lock().first_dirty()
    }

    /// Restores the cleaner's position from `cleaner-offset-checkpoint`.
    pub(crate) fn set_first_dirty_offset(&self, offset: i64) {
        self.lock().first_dirty_offset = offset;
    }

    /// One compaction pass if the partition needs one (see the module docs), with the default
    /// key-map budget. Returns the number of segments rewritten.
    pub fn compact(&self, now_ms: i64) -> Result<usize, LogError> {
        self.compact_within(now_ms, DEFAULT_DEDUPE_BUFFER)
    }

    /// [`PartitionLog::compact`] with a key map of about `budget` bytes.
    pub fn compact_within(&self, now_ms: i64, budget: usize) -> Result<usize, LogError> {
        let _pass = self
            .cleaning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((plan, first_dirty, tombstones_before, interval)) = self.plan(now_ms)? else {
            return Ok(0);
        };
        let aborted = AbortedSet::new(&self.aborted_transactions(
            crate::common::Offset(plan.first().map_or(0, |s| s.base)),
            crate::common::Offset(plan.last().map_or(0, |s| s.next_offset)),
        ));
        let mut map = OffsetMap::with_budget(budget);
        let limit = self.config().decompress_limit();
        'index: for seg in plan.iter().filter(|s| s.next_offset > first_dirty) {
            let mut reader = BatchReader::new(&seg.file, seg.size);
            while let Some((_, batch)) = reader.next_batch()? {
                let h = header(batch)?;
                if h.last_offset() < first_dirty {
                    continue;
                }
                if map.is_full() && map.end_offset() >= 0 {
                    break 'index;
                }
                cleaner::index_batch(batch, &mut map, &aborted, limit)?;
            }
        }
        let map_end = map.end_offset();
        if map_end < 0 {
            return Ok(0);
        }
        let mut rewritten = 0;
        for seg in plan.iter().filter(|s| s.base < map_end) {
            let cleaned = self.clean_segment(seg, &map, &aborted, tombstones_before, interval)?;
            let Some(cleaned) = cleaned else {
                continue;
            };
            let after = cleaned.len;
            if self.swap_in_cleaned(seg, cleaned)? {
                tracing::info!(partition = %self.tp, base_offset = seg.base, before = seg.size, after, "compacted segment");
                rewritten += 1;
            }
        }
        {
            let mut g = self.lock();
            g.first_dirty_offset = g.first_dirty().max(map_end);
        }
        tracing::debug!(partition = %self.tp, keys = map.len(), first_dirty_offset = map_end, rewritten, "compaction pass done");
        Ok(rewritten)
    }

    /// Under the lock: whether a pass is due, and if so the cleanable segments, the first dirty
    /// offset, the tombstone horizon and the index interval.
    #[allow(
        clippy::type_complexity,
        reason = "a private result destructured at its one caller"
    )]
    fn plan(&self, now_ms: i64) -> Result<Option<(Vec<Planned>, i64, i64, u32)>, LogError> {
        if self.offline.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let g = self.lock();
        if !g.config.compact {
            return Ok(None);
        }
        let (c, n) = g.cleanability(now_ms);
        if !c.needs_cleaning() {
            return Ok(None);
        }
        let plan = g.segments[..n]
            .iter()
            .map(|s| {
                Ok(Planned {
                    base: s.base_offset(),
                    file: s.log_file()?,
                    size: s.size(),
                    next_offset: s.next_offset(),
                })
            })
            .collect::<Result<Vec<_>, LogError>>()?;
        let tombstones_before = now_ms.saturating_sub(g.config.delete_retention_ms);
        Ok(Some((
            plan,
            c.first_dirty_offset,
            tombstones_before,
            g.config.index_interval_bytes,
        )))
    }

    /// Streams one segment through the cleaner into `<base>.log.cleaned` (fsynced), building
    /// its indexes. `None` if nothing changes (no file is left behind then).
    fn clean_segment(
        &self,
        seg: &Planned,
        map: &OffsetMap,
        aborted: &AbortedSet,
        tombstones_before: i64,
        interval: u32,
    ) -> Result<Option<Cleaned>, LogError> {
        let path = self
            .dir
            .join(format!("{}.cleaned", file_name(seg.base, "log")));
        let mut out: Option<BufWriter<File>> = None;
        let mut builder = IndexBuilder::new(seg.base, interval);
        let mut index = OffsetIndex::new(Vec::new(), None);
        let mut time = TimeIndex::new(Vec::new(), None);
        let mut len = 0u64;
        let mut next_offset = seg.base;
        let mut reader = BatchReader::new(&seg.file, seg.size);
        while let Some((pos, batch)) = reader.next_batch()? {
            let is_last = pos + batch.len() as u64 == seg.size;
            let limit = self.config().decompress_limit();
            let cleaned =
                cleaner::clean_batch(batch, map, aborted, tombstones_before, is_last, limit)?;
            let bytes: &[u8] = match &cleaned {
                CleanedBatch::Unchanged => batch,
                CleanedBatch::Rewritten(b) => b,
                CleanedBatch::Dropped => &[],
            };
            if out.is_none() && !matches!(cleaned, CleanedBatch::Unchanged) {
                // First change: everything before it is copied as it was (`len == pos`).
                let file = crate::log::io::create_truncated(self.io.as_ref(), &path)?;
                let mut w = BufWriter::with_capacity(CHUNK, file);
                copy_prefix(&seg.file, pos, &mut w)?;
                out = Some(w);
            }
            if let Some(w) = out.as_mut() {
                w.write_all(bytes)?;
            }
            if bytes.is_empty() {
                continue;
            }
            let h = header(bytes)?;
            let add = builder.add(len, h.last_offset(), h.max_timestamp(), bytes.len() as u64);
            if let Some((rel, p)) = add.offset {
                index.append(rel, p)?;
            }
            if let Some((ts, rel)) = add.time {
                time.maybe_append(ts, rel)?;
            }
            next_offset = h.last_offset() + 1;
            len += bytes.len() as u64;
        }
        let Some(w) = out else {
            return Ok(None);
        };
        let f = w.into_inner().map_err(|e| e.into_error())?;
        self.io.sync_all(&f)?;
        if let Some((ts, rel)) = builder.final_time_entry() {
            time.maybe_append(ts, rel)?;
        }
        Ok(Some(Cleaned {
            path,
            len,
            next_offset,
            builder,
            index,
            time,
        }))
    }

    /// Replaces sealed segment `seg` by its cleaned version. Returns false, leaving the log as
    /// it was, if the segment changed meanwhile (retention or DeleteRecords removed it).
    fn swap_in_cleaned(&self, seg: &Planned, cleaned: Cleaned) -> Result<bool, LogError> {
        let log_name = file_name(seg.base, "log");
        let swap_path = self.dir.join(format!("{log_name}.swap"));
        let io = self.io.as_ref();
        io.rename(&cleaned.path, &swap_path)?;
        io.sync_dir(&self.dir)?;
        let mut g = self.lock();
        let idx = g.segments.iter().position(|s| s.base_offset() == seg.base);
        let Some(i) = idx.filter(|&i| {
            i + 1 < g.segments.len()
                && g.segments[i].size() == seg.size
                && g.segments[i].next_offset() == seg.next_offset
                && cleaned.next_offset == seg.next_offset
        }) else {
            drop(g);
            io.remove_file(&swap_path)?;
            return Ok(false);
        };
        super::super::fd_cache::global().forget(&self.dir.join(&log_name));
        io.rename(&swap_path, &self.dir.join(&log_name))?;
        write_indexes(
            io,
            &self.dir,
            seg.base,
            cleaned.index.entries(),
            cleaned.time.entries(),
            false,
        )?;
        let new = Segment::open(
            io,
            &self.dir,
            seg.base,
            false,
            SegmentState {
                index: cleaned.index.entries().to_vec(),
                time_index: cleaned.time.entries().to_vec(),
                builder: cleaned.builder,
                size: cleaned.len,
                next_offset: cleaned.next_offset,
            },
        )?;
        let old_size = g.segments[i].size();
        g.segments[i] = new;
        g.size_bytes = g.size_bytes.saturating_sub(old_size) + cleaned.len;
        drop(g);
        // The fsyncs come after the lock is released: readers use the indexes in memory, the
        // files only matter to the next start, and the swap is not reported done before they
        // (and the directory) are durable.
        sync_index_files(io, &self.dir, seg.base)?;
        io.sync_dir(&self.dir)?;
        Ok(true)
    }
}

/// fdatasyncs segment `base`'s `.index` and `.timeindex`; a file already gone (retention
/// removed the segment meanwhile) needs no sync.
fn sync_index_files(io: &dyn FsIo, dir: &std::path::Path, base: i64) -> Result<(), LogError> {
    for ext in ["index", "timeindex"] {
        match File::open(dir.join(file_name(base, ext))) {
            Ok(f) => io.sync_data(&f)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn header(batch: &[u8]) -> Result<BatchHeader<'_>, LogError> {
    BatchHeader::new(batch).ok_or_else(|| LogError::Corrupt("compaction: short header".into()))
}

/// Copies `src[0..len)` to `out` through one chunk-sized buffer.
fn copy_prefix(src: &File, len: u64, out: &mut impl Write) -> Result<(), LogError> {
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK))];
    let mut at = 0u64;
    while at < len {
        let n = buf
            .len()
            .min(usize::try_from(len - at).unwrap_or(usize::MAX));
        src.read_exact_at(&mut buf[..n], at)?;
        out.write_all(&buf[..n])?;
        at += n as u64;
    }
    Ok(())
}
