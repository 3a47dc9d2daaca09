//! The follower side of replication in one partition log: appending the batches of a leader's
//! Fetch response (offsets and leader epochs as the leader stamped them, bytes unchanged, CRC
//! checked), and truncation — back to a batch boundary after a leader change (KIP-101/279), or
//! of everything when the leader's log starts past this one's end.
//!
//! A replica append updates exactly what a leader append does: segment rolls, indexes, producer
//! and transaction state (so a producer's retry is still recognised after this replica becomes
//! leader, and aborted transactions are indexed), the leader epoch cache, the log end offset and
//! its watchers. A truncation is durable before it returns: later segments are removed (and the
//! directory fsynced) before the containing segment is cut and fsynced, so a crash at any point
//! leaves a prefix of the old log; producer and transaction state are rebuilt from snapshots and
//! batch headers as recovery would, and the recovery-point checkpoint is rewritten so recovery
//! never trusts segments from before the cut. Both take the cleaner's and the flusher's
//! per-partition locks first, so no compaction swap or snapshot write of the old history lands
//! afterwards. Readers holding a file handle from before may read stale bytes or get an error.

use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

use bytes::Bytes;

use crate::common::Offset;
use crate::records::batch::{compute_crc, BatchHeader, HEADER_LEN};

use super::super::io::is_out_of_space;
use super::super::producer_state::{BatchMeta, ProducerState};
use super::super::recovery::{rebuild_producers, rebuild_txn_state};
use super::super::segment::{delete_segment_files, Segment};
use super::super::txn_state::TxnState;
use super::super::LogError;
use super::{Inner, PartitionLog, RollError};

/// Result of [`PartitionLog::append_replica`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaAppend {
    /// The log end offset after the append (pass it to `wait_durable`).
    pub log_end_offset: Offset,
    /// Batches written (batches already in the log are skipped, not counted).
    pub batches: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Checks one batch of replicated bytes: framing, magic 2, offsets, record count and CRC.
fn check_batch(b: &[u8]) -> Result<(), LogError> {
    let h = BatchHeader::new(b).ok_or_else(|| LogError::Corrupt("short batch".into()))?;
    let bad = |what: &str| {
        LogError::Corrupt(format!(
            "replicated batch at offset {}: {what}",
            h.base_offset()
        ))
    };
    if h.magic() != 2 {
        return Err(bad("magic is not 2"));
    }
    if !h.offsets_valid()
        || h.record_count() < 0
        || i64::from(h.record_count()) > i64::from(h.last_offset_delta()) + 1
    {
        return Err(bad("bad offsets or record count"));
    }
    if compute_crc(b) != h.crc() {
        return Err(bad("CRC mismatch"));
    }
    Ok(())
}

/// Splits replicated bytes into whole, checked batches as (start, length); a partial batch at
/// the end is ignored (a Fetch response cuts at its byte limit). The first batch that fails its
/// checks ends the list and is returned as the error.
fn frame(records: &[u8]) -> (Vec<(usize, usize)>, Option<LogError>) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(h) = records.get(pos..).and_then(BatchHeader::new) {
        let total = match h.total_size() {
            Some(t) if t >= HEADER_LEN => t,
            _ => {
                return (
                    out,
                    Some(LogError::Corrupt(format!(
                        "replicated batch at byte {pos}: bad length"
                    ))),
                )
            }
        };
        let Some(b) = records.get(pos..pos + total) else {
            break;
        };
        if let Err(e) = check_batch(b) {
            return (out, Some(e));
        }
        out.push((pos, total));
        pos += total;
    }
    (out, None)
}

impl PartitionLog {
    /// Appends the records of a leader's Fetch response for this partition: whole v2 batches,
    /// possibly followed by a partial one (ignored). Each keeps the offsets and leader epoch the
    /// leader stamped and is written byte for byte. Batches wholly below the log end offset are
    /// skipped (already here); a batch must otherwise start at or after the log end offset
    /// (gaps are legal: the leader's log may be compacted), else `UnexpectedAppendOffset`. A
    /// batch failing its checks (framing, magic, CRC) gives `Corrupt`; nothing from it on is
    /// written, the batches before it are. A batch of a newer leader epoch first makes the
    /// epoch's entry durable in `leader-epoch-checkpoint`. Wait for durability with
    /// [`PartitionLog::wait_durable`] before reporting the new end to the leader.
    pub fn append_replica(&self, records: &Bytes) -> Result<ReplicaAppend, LogError> {
        if self.offline.load(Ordering::SeqCst) {
            return Err(self.offline_error());
        }
        // Framing and CRCs are checked before the lock is taken.
        let (batches, mut failure) = frame(records);
        let mut g = self.lock();
        let mut written = 0usize;
        let mut bytes = 0u64;
        for &(start, total) in &batches {
            let b = &records[start..start + total];
            let Some(h) = BatchHeader::new(b) else {
                break;
            };
            if h.last_offset() < g.leo {
                continue;
            }
            if h.base_offset() < g.leo {
                failure = Some(LogError::UnexpectedAppendOffset {
                    base_offset: h.base_offset(),
                    log_end_offset: g.leo,
                });
                break;
            }
            if let Err(e) = self.write_replica_batch(&mut g, &records.slice(start..start + total)) {
                failure = Some(e);
                break;
            }
            written += 1;
            bytes += total as u64;
        }
        let leo = g.leo;
        let follows = g.hw_follows_leo;
        let flush_forced =
            written > 0 && leo - self.durable_tx.borrow().offset >= g.config.flush_messages;
        drop(g);
        if written > 0 {
            self.publish_leo(leo, follows);
        }
        if flush_forced {
            // Fails only once the flusher has stopped, and the shutdown flush covers this.
            let _ = self.flush.request(&self.tp);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(ReplicaAppend {
                log_end_offset: Offset(leo),
                batches: written,
                bytes,
            }),
        }
    }

    /// Writes one checked replicated batch at the end of the log (caller holds the lock and
    /// has checked that it starts at or after the log end offset).
    fn write_replica_batch(
        &self,
        g: &mut MutexGuard<'_, Inner>,
        b: &Bytes,
    ) -> Result<(), LogError> {
        let h = BatchHeader::new(b).ok_or_else(|| LogError::Corrupt("short batch".into()))?;
        let (base_offset, last_offset) = (h.base_offset(), h.last_offset());
        let len = b.len() as u64;
        let max_timestamp = h.max_timestamp();
        if g.needs_roll(len, last_offset, max_timestamp) {
            // The new segment starts at the log end, not at the batch: recovery reads a gap
            // between one segment's end and the next one's base as lost data.
            let roll_at = g.leo;
            if last_offset - roll_at > i64::from(i32::MAX) {
                return Err(LogError::Corrupt(format!(
                    "replicated batch at {base_offset} is too far past the log end {roll_at}"
                )));
            }
            match self.roll(g, roll_at) {
                Ok(()) => {}
                Err(RollError::Create(e)) if is_out_of_space(&e) => return Err(LogError::Io(e)),
                Err(e) => {
                    self.poison();
                    return Err(LogError::Io(e.into_io()));
                }
            }
        } else if g
            .segments
            .last()
            .is_some_and(|s| last_offset - s.base_offset() > i64::from(i32::MAX))
        {
            return Err(LogError::Corrupt(format!(
                "replicated batch at {base_offset} is too far past its segment's base"
            )));
        }
        let epoch = h.partition_leader_epoch();
        if epoch >= 0 && g.epochs.latest_epoch().is_none_or(|l| epoch > l) {
            self.record_epoch(g, epoch, base_offset)?;
        }
        let interval = g.config.index_interval_bytes;
        let Some(active) = g.segments.last_mut() else {
            self.poison();
            return Err(LogError::Corrupt(format!(
                "partition {} has no active segment",
                self.tp
            )));
        };
        active.builder.set_interval(interval);
        let pos = active.size();
        if let Err(failure) =
            active.append(self.io.as_ref(), &[], &b[..], last_offset, max_timestamp)
        {
            return Err(match active.log_file() {
                Ok(file) => self.append_failed(failure, &file, pos),
                Err(e) => {
                    self.poison();
                    LogError::Io(e)
                }
            });
        }
        let producer_id = h.producer_id();
        if producer_id >= 0 && h.base_sequence() >= 0 {
            let info = crate::records::BatchInfo::from_header(&h);
            g.producers.update(
                producer_id,
                h.producer_epoch(),
                BatchMeta {
                    first_seq: h.base_sequence(),
                    last_seq: info.last_sequence(),
                    base_offset,
                    last_offset,
                },
                max_timestamp,
            );
        }
        if h.is_transactional() {
            if let Err(e) = g.track_txn(self.io.as_ref(), &self.dir, b, producer_id, base_offset) {
                tracing::error!(partition = %self.tp, error = %e, "cannot record a replicated transaction marker; partition is offline");
                self.poison();
                return Err(e);
            }
        }
        g.leo = last_offset + 1;
        g.size_bytes += len;
        Ok(())
    }

    /// Removes every batch at or above `offset`; a batch holding `offset` goes whole (Kafka
    /// truncates at batch boundaries; a leader's answer is one). The log end offset becomes the
    /// end of the last batch kept (`offset` when it is a batch boundary). No-op if `offset` is
    /// at or past the log end offset; below the log start offset (or cutting a batch that holds
    /// the log start) it empties the log as [`PartitionLog::truncate_fully_and_start_at`].
    /// Durable before it returns; see the module docs. Producer and transaction state, the
    /// leader epoch cache (and its checkpoint), the durable offset and the high watermark are
    /// brought down to the new end, and log end watchers are told. An I/O failure poisons the
    /// partition.
    pub fn truncate_to(&self, offset: Offset) -> Result<(), LogError> {
        let offset = offset.get();
        if self.offline.load(Ordering::SeqCst) {
            return Err(self.offline_error());
        }
        let _pass = self
            .cleaning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _flushing = self
            .flushing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut g = self.lock();
        if offset >= g.leo {
            return Ok(());
        }
        let res = if offset < g.log_start_offset {
            self.truncate_fully_locked(&mut g, offset).map(|()| true)
        } else {
            self.truncate_locked(&mut g, offset)
        };
        self.after_truncation(g, res)
    }

    /// Deletes the whole log and starts it empty at `offset`, which becomes the log start
    /// offset too: a follower whose end is below the leader's log start. Durable before it
    /// returns; producer, transaction and epoch state are cleared.
    pub fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<(), LogError> {
        let offset = offset.get();
        if self.offline.load(Ordering::SeqCst) {
            return Err(self.offline_error());
        }
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset().get(),
                log_end_offset: self.log_end_offset().get(),
            });
        }
        let _pass = self
            .cleaning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _flushing = self
            .flushing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut g = self.lock();
        let res = self.truncate_fully_locked(&mut g, offset).map(|()| true);
        self.after_truncation(g, res)
    }

    /// Publishes a finished truncation (or poisons the partition after a failed one) and
    /// rewrites the log directory's checkpoints, so recovery never starts from a recovery point
    /// past the new end. `res` says whether the log was emptied (then everything below the new
    /// end is durable: there is nothing).
    fn after_truncation(
        &self,
        mut g: MutexGuard<'_, Inner>,
        res: Result<bool, LogError>,
    ) -> Result<(), LogError> {
        let emptied = match res {
            Ok(emptied) => emptied,
            Err(e) => {
                drop(g);
                tracing::error!(partition = %self.tp, error = %e, "truncation failed; partition is offline");
                self.poison();
                return Err(e);
            }
        };
        g.truncations += 1;
        let leo = g.leo;
        g.hw = g.hw.min(leo);
        g.first_dirty_offset = g.first_dirty_offset.min(leo);
        let hw = g.high_watermark();
        // Under the lock, with the flush lock held: no flush publishes past the cut.
        self.durable_tx.send_if_modified(|d| {
            let to = if emptied { leo } else { d.offset.min(leo) };
            let changed = d.offset != to;
            d.offset = to;
            changed
        });
        drop(g);
        self.leo_tx.send_replace(leo);
        self.hw_tx.send_replace(hw);
        tracing::info!(partition = %self.tp, log_end_offset = leo, "truncated log");
        if let Some(shared) = self.checkpointer.get().and_then(std::sync::Weak::upgrade) {
            shared.write_checkpoints()?;
        }
        Ok(())
    }

    /// Truncation to `offset` (at or above the log start, below the log end), lock held.
    /// Returns whether the log was emptied instead.
    fn truncate_locked(&self, g: &mut Inner, offset: i64) -> Result<bool, LogError> {
        let io = self.io.as_ref();
        let idx = g
            .segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        let (cut, new_leo) = match g.segments.get(idx) {
            Some(seg) => cut_point(seg, offset)?,
            None => {
                return Err(LogError::Corrupt(format!(
                    "partition {} has no segment",
                    self.tp
                )))
            }
        };
        if new_leo < g.log_start_offset {
            // The batch holding `offset` also holds the log start: nothing readable is left.
            return self.truncate_fully_locked(g, offset).map(|()| true);
        }
        // Later segments go first (durably), so a crash mid-way leaves a prefix of the log.
        let removed: Vec<Segment> = g.segments.drain(idx + 1..).collect();
        for s in &removed {
            delete_segment_files(io, &self.dir, s.base_offset())?;
        }
        for sealed in g.sealed_unsynced.iter_mut() {
            if removed
                .iter()
                .any(|s| s.base_offset() == sealed.base_offset())
            {
                sealed.mark_deleted();
            }
            sealed.drop_snapshot_past(new_leo);
        }
        if !removed.is_empty() {
            io.sync_dir(&self.dir)?;
        }
        let interval = g.config.index_interval_bytes;
        let seg = g
            .segments
            .last_mut()
            .ok_or_else(|| LogError::Corrupt(format!("partition {} has no segment", self.tp)))?;
        seg.make_writable(io)?;
        let end = seg.truncate_to(io, cut, interval)?;
        let seg_base = seg.base_offset();
        if end != new_leo {
            return Err(LogError::Corrupt(format!(
                "segment {seg_base} ends at {end} after truncation, expected {new_leo}"
            )));
        }
        super::txn::truncate_txn_index(io, &self.dir, seg_base, new_leo)?;
        if g.epochs.truncate_from_end(new_leo) {
            g.epochs.write(io, &self.dir)?;
        }
        g.leo = new_leo;
        g.size_bytes = g.segments.iter().map(Segment::size).sum();
        self.rebuild_state(g)?;
        Ok(false)
    }

    /// Empties the log and starts it at `offset`, lock held.
    fn truncate_fully_locked(&self, g: &mut Inner, offset: i64) -> Result<(), LogError> {
        let io = self.io.as_ref();
        let removed: Vec<Segment> = g.segments.drain(..).collect();
        for s in &removed {
            delete_segment_files(io, &self.dir, s.base_offset())?;
        }
        for sealed in g.sealed_unsynced.iter_mut() {
            sealed.mark_deleted();
            sealed.drop_snapshot_past(i64::MIN);
        }
        io.sync_dir(&self.dir)?;
        let seg = Segment::create(io, &self.dir, offset, g.config.index_interval_bytes)?;
        g.segments.push(seg);
        io.sync_dir(&self.dir)?;
        g.epochs.clear();
        g.epochs.write(io, &self.dir)?;
        g.leo = offset;
        g.log_start_offset = offset;
        g.size_bytes = 0;
        g.producers = ProducerState::default();
        g.txn = TxnState::default();
        g.hw = offset;
        Ok(())
    }

    /// Rebuilds producer and transaction state for the (truncated) log, as recovery would.
    fn rebuild_state(&self, g: &mut Inner) -> Result<(), LogError> {
        let (producers, scanned) = rebuild_producers(&self.dir, &g.segments)?;
        let mut txn = rebuild_txn_state(&self.dir, &g.segments, g.leo, scanned)?;
        let start = g.log_start_offset;
        txn.trim_before(start);
        g.producers = producers;
        g.txn = txn;
        g.evict_producers_before(start);
        Ok(())
    }
}

/// Where to cut segment `seg` to remove every batch holding an offset at or above `offset`:
/// (byte position, next offset after the last batch kept). Scans batch headers from the index
/// entry of a batch wholly below `offset`.
fn cut_point(seg: &Segment, offset: i64) -> Result<(u64, i64), LogError> {
    let base = seg.base_offset();
    let file = seg.log_file()?;
    let end = seg.size();
    // The greatest entry naming a batch that ends below `offset`: that batch is kept.
    let mut pos = u64::from(seg.index.lookup(offset - base - 1));
    let mut next = base;
    if pos > 0 {
        let hb = super::super::segment::read_header(&file, pos, end)?
            .ok_or_else(|| LogError::Corrupt(format!("index entry past segment {base}")))?;
        let h = BatchHeader::new(&hb)
            .ok_or_else(|| LogError::Corrupt(format!("bad header in segment {base}")))?;
        next = h.last_offset() + 1;
        pos += h.total_size().unwrap_or(0) as u64;
    }
    while let Some(hb) = super::super::segment::read_header(&file, pos, end)? {
        let h = BatchHeader::new(&hb)
            .ok_or_else(|| LogError::Corrupt(format!("bad header in segment {base}")))?;
        if h.last_offset() >= offset {
            return Ok((pos, next));
        }
        let total = h
            .total_size()
            .filter(|t| *t >= HEADER_LEN)
            .ok_or_else(|| LogError::Corrupt(format!("bad batch length in segment {base}")))?;
        next = h.last_offset() + 1;
        pos += total as u64;
    }
    Ok((pos, next))
}
