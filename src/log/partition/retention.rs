//! Retention of one partition log: DeleteRecords and the deletion of old segments by
//! `retention.ms`, `retention.bytes` or a log start offset moved past them.

use std::sync::atomic::Ordering;

use super::super::segment::{delete_segment_files, Segment};
use super::super::LogError;
use super::{PartitionLog, RollError};

impl PartitionLog {
    /// DeleteRecords: moves the log start offset up to `offset` (-1 = the high watermark) and
    /// drops the segments wholly below it. Returns the new log start offset (the low
    /// watermark). `OffsetOutOfRange` if `offset` is above the high watermark or below -1.
    pub fn delete_records_before(
        &self,
        offset: crate::common::Offset,
    ) -> Result<crate::common::Offset, LogError> {
        let offset = offset.get();
        if self.offline.load(Ordering::SeqCst) {
            return Err(self.offline_error());
        }
        {
            let mut g = self.lock();
            let hw = g.high_watermark();
            let target = if offset == -1 { hw } else { offset };
            if target < 0 || target > hw {
                return Err(self.out_of_range(offset, &g));
            }
            if target > g.log_start_offset {
                g.log_start_offset = target;
                g.evict_producers_before(target);
            }
        }
        self.delete_old_segments(None)?;
        Ok(self.log_start_offset())
    }

    /// Retention: deletes segments, oldest first, that are wholly below the log start offset,
    /// or — when `cleanup.policy` includes `delete` and `now_ms` is given — whose largest
    /// timestamp is older than `retention.ms` before `now_ms`, or that push the log beyond
    /// `retention.bytes`. As in Kafka, a non-empty active segment that breaches retention goes
    /// too: a new empty segment is rolled first, so a quiet topic's old data does not stay
    /// forever in a segment that never fills. Advances the log start offset to the first
    /// remaining segment.
    /// The files are removed after the lock is released; readers that already hold a segment's
    /// file handle finish their `pread`s on the unlinked file. Returns the segments deleted.
    pub fn delete_old_segments(&self, now_ms: Option<i64>) -> Result<usize, LogError> {
        if self.offline.load(Ordering::SeqCst) {
            return Ok(0);
        }
        let removed: Vec<Segment> = {
            let mut g = self.lock();
            let cfg = g.config.clone();
            let sealed = g.segments.len().saturating_sub(1);
            // The active segment is a candidate only for the retention policy, and only if it
            // holds data.
            let candidates = if cfg.delete && now_ms.is_some() && g.size_bytes > 0 {
                match g.segments.last() {
                    Some(active) if active.size() > 0 => g.segments.len(),
                    _ => sealed,
                }
            } else {
                sealed
            };
            let policy = cfg.delete && now_ms.is_some();
            let mut excess = if policy && cfg.retention_bytes >= 0 {
                g.size_bytes.saturating_sub(cfg.retention_bytes as u64)
            } else {
                0
            };
            // As in Kafka, only data below the high watermark is ever deleted: a segment goes
            // only if everything in it is below it (all replicas have it).
            let hw = g.high_watermark();
            let mut n = 0;
            while n < candidates {
                let seg = &g.segments[n];
                let upper = g.segments.get(n + 1).map_or(g.leo, Segment::base_offset);
                if upper > hw {
                    break;
                }
                let below_start = g
                    .segments
                    .get(n + 1)
                    .is_some_and(|next| next.base_offset() <= g.log_start_offset);
                let expired = policy
                    && cfg.retention_ms >= 0
                    && now_ms.is_some_and(|now| {
                        now.saturating_sub(seg.max_timestamp().0) > cfg.retention_ms
                    });
                let too_big = excess > 0 && excess >= seg.size();
                if !(below_start || expired || too_big) {
                    break;
                }
                excess = excess.saturating_sub(seg.size());
                n += 1;
            }
            if n == 0 {
                return Ok(0);
            }
            if n == g.segments.len() {
                // Every segment goes, the active one too: roll an empty one to append to next.
                let leo = g.leo;
                match self.roll(&mut g, leo) {
                    Ok(()) => {}
                    // Nothing changed; keep the active segment and delete the sealed ones.
                    Err(RollError::Create(e)) => {
                        tracing::warn!(partition = %self.tp, error = %e, "cannot roll for retention");
                        n = sealed;
                        if n == 0 {
                            return Ok(0);
                        }
                    }
                    Err(e) => {
                        drop(g);
                        self.poison();
                        return Err(LogError::Io(e.into_io()));
                    }
                }
            }
            let removed: Vec<Segment> = g.segments.drain(..n).collect();
            for sealed in g.sealed_unsynced.iter_mut() {
                if removed
                    .iter()
                    .any(|s| s.base_offset() == sealed.base_offset())
                {
                    sealed.mark_deleted();
                }
            }
            let freed: u64 = removed.iter().map(Segment::size).sum();
            g.size_bytes = g.size_bytes.saturating_sub(freed);
            if let Some(first) = g.segments.first() {
                g.log_start_offset = g.log_start_offset.max(first.base_offset());
            }
            let start = g.log_start_offset;
            g.txn.trim_before(start);
            g.evict_producers_before(start);
            removed
        };
        for seg in &removed {
            tracing::info!(partition = %self.tp, base_offset = seg.base_offset(), "deleting segment (retention)");
            delete_segment_files(self.io.as_ref(), &self.dir, seg.base_offset())?;
        }
        self.io.sync_dir(&self.dir)?;
        Ok(removed.len())
    }
}
