//! Transactions in one partition log: the markers the transaction coordinator writes, the last
//! stable offset read_committed consumers stop at, and the aborted transactions they skip.
//!
//! Aborted transactions are kept on disk in Kafka's `.txnindex` files, one per segment (the one
//! holding the abort marker): entries of 34 bytes — version int16 (0), producer id int64,
//! first offset int64, last offset int64 (the marker), last stable offset int64 at the time.
//! An entry is written when its marker is appended and fsynced by the flusher before the marker
//! counts as durable, so an acknowledged abort is never forgotten (and no fsync happens under
//! the partition lock); recovery drops entries whose marker did not survive, re-derives entries
//! from markers after the last snapshot, and rebuilds open transactions from the newest producer
//! snapshot (`producer_snapshot`) and the batch headers after it.

use std::fs::{File, OpenOptions};

use super::super::io::FsIo;
use std::io::Write;
use std::path::Path;

use bytes::{BufMut, Bytes};

use crate::records::batch::BatchHeader;
use crate::records::build::{marker, marker_batch, Marker, MarkerKind};
use crate::records::BatchInfo;

use super::super::producer_snapshot::SnapshotEntry;
use super::super::segment::file_name;
use super::super::txn_state::{AbortedTxn, TxnState};
use super::super::LogError;
use super::{AppendOutcome, Inner, PartitionLog};
use crate::common::now_ms;

/// Bytes of one `.txnindex` entry.
pub(crate) const TXN_ENTRY_LEN: usize = 34;

impl PartitionLog {
    /// Appends the marker ending `producer_id`'s transaction in this partition (a control
    /// batch; the transaction coordinator calls this), stamped with the log's latest leader
    /// epoch (0 for a log never written). An abort is recorded in the aborted index before this
    /// returns. Wait for durability with [`PartitionLog::wait_durable`]. A leader that may have
    /// been deposed uses [`PartitionLog::append_txn_marker_in_epoch`].
    pub fn append_txn_marker(
        &self,
        producer_id: crate::common::ProducerId,
        producer_epoch: crate::common::ProducerEpoch,
        kind: MarkerKind,
        coordinator_epoch: i32,
    ) -> Result<AppendOutcome, LogError> {
        let epoch = crate::common::LeaderEpoch(self.latest_epoch().unwrap_or(0));
        self.append_txn_marker_in_epoch(producer_id, producer_epoch, kind, coordinator_epoch, epoch)
    }

    /// [`PartitionLog::append_txn_marker`] as the leader of `leader_epoch`: refused with
    /// `FencedLeaderEpoch` if a newer epoch has written to the log.
    pub fn append_txn_marker_in_epoch(
        &self,
        producer_id: crate::common::ProducerId,
        producer_epoch: crate::common::ProducerEpoch,
        kind: MarkerKind,
        coordinator_epoch: i32,
        leader_epoch: crate::common::LeaderEpoch,
    ) -> Result<AppendOutcome, LogError> {
        let batch = marker_batch(
            kind,
            producer_id.get(),
            producer_epoch.get(),
            coordinator_epoch,
            now_ms(),
        );
        let info = BatchHeader::new(&batch)
            .map(|h| BatchInfo::from_header(&h))
            .ok_or_else(|| LogError::Corrupt("malformed marker batch".into()))?;
        self.append(&batch, &info, leader_epoch)
    }

    /// The last stable offset: read_committed consumers read below it. Never above the high
    /// watermark.
    pub fn last_stable_offset(&self) -> crate::common::Offset {
        let g = self.lock();
        crate::common::Offset(g.txn.last_stable_offset(g.high_watermark()))
    }

    /// Aborted transactions overlapping offsets `from..to`, oldest first.
    pub fn aborted_transactions(
        &self,
        from: crate::common::Offset,
        to: crate::common::Offset,
    ) -> Vec<AbortedTxn> {
        self.lock().txn.aborted_between(from.get(), to.get())
    }

    /// Every producer this partition knows, as a snapshot would record it (DescribeProducers).
    pub fn active_producers(&self) -> Vec<SnapshotEntry> {
        self.lock().snapshot_entries()
    }

    /// Forgets producers idle for `expiration_ms` (Kafka's `producer.id.expiration.ms`): those
    /// whose last batch's timestamp is that old and that have no open transaction. Their
    /// sequence state goes, so a producer coming back after that long starts anew, as in Kafka.
    /// Returns how many were forgotten.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        let mut g = self.lock();
        let open: std::collections::HashSet<i64> = g
            .txn
            .open_transactions()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        g.producers.retain(|p| {
            open.contains(&p.producer_id) || now_ms.saturating_sub(p.last_timestamp) < expiration_ms
        })
    }

    /// Open transactions as (producer id, first offset) (admin, tests).
    pub fn open_transactions(&self) -> Vec<(crate::common::ProducerId, crate::common::Offset)> {
        self.lock()
            .txn
            .open_transactions()
            .into_iter()
            .map(|(id, first)| (crate::common::ProducerId(id), crate::common::Offset(first)))
            .collect()
    }

    /// Installs the transaction state recovery rebuilt.
    pub(crate) fn set_txn_state(&self, state: TxnState) {
        self.lock().txn = state;
    }
}

impl Inner {
    /// Forgets producers whose last batch is below `log_start` (or who are known only by a
    /// marker), unless a transaction of theirs is open: as Kafka does when the log start moves,
    /// so producer state stays bounded by what the log still holds.
    pub(super) fn evict_producers_before(&mut self, log_start: i64) -> usize {
        let open: std::collections::HashSet<i64> = self
            .txn
            .open_transactions()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        self.producers.retain(|p| {
            open.contains(&p.producer_id) || p.last.is_some_and(|b| b.last_offset >= log_start)
        })
    }

    /// The producer-state snapshot of this partition now: every producer's epoch and last
    /// batch, and the first offset of its open transaction.
    pub(super) fn snapshot_entries(&self) -> Vec<SnapshotEntry> {
        let open: std::collections::HashMap<i64, i64> =
            self.txn.open_transactions().into_iter().collect();
        self.producers
            .summaries()
            .into_iter()
            .map(|p| SnapshotEntry {
                producer_id: p.producer_id,
                epoch: p.epoch,
                last_sequence: p.last.map_or(-1, |b| b.last_seq),
                last_offset: p.last.map_or(-1, |b| b.last_offset),
                offset_delta: p.last.map_or(0, |b| b.last_seq.wrapping_sub(b.first_seq)),
                timestamp: p.last_timestamp,
                coordinator_epoch: p.coordinator_epoch,
                current_txn_first_offset: open.get(&p.producer_id).copied().unwrap_or(-1),
            })
            .collect()
    }

    /// Transaction bookkeeping for a batch just written at `base_offset` (caller holds the
    /// lock). An abort marker's entry goes to the active segment's `.txnindex`; the flusher
    /// syncs it with the marker itself, so the lock is never held across an fsync.
    pub(super) fn track_txn(
        &mut self,
        io: &dyn FsIo,
        dir: &Path,
        batch: &Bytes,
        producer_id: i64,
        base_offset: i64,
    ) -> Result<(), LogError> {
        let Some(h) = BatchHeader::new(batch) else {
            return Ok(());
        };
        if !h.is_transactional() {
            return Ok(());
        }
        if !h.is_control() {
            self.txn.on_data(producer_id, base_offset);
            return Ok(());
        }
        let Some(Marker {
            kind,
            coordinator_epoch,
        }) = marker(batch)
        else {
            self.producers
                .observe_marker(producer_id, h.producer_epoch(), -1, h.max_timestamp());
            return Ok(());
        };
        self.producers.observe_marker(
            producer_id,
            h.producer_epoch(),
            coordinator_epoch,
            h.max_timestamp(),
        );
        let lso = self.txn.last_stable_offset(base_offset);
        if let Some(aborted) = self.txn.on_marker(producer_id, base_offset, kind) {
            let segment = self.segments.last().map_or(0, |s| s.base_offset());
            let file = append_txn_entry(io, dir, segment, &aborted, lso)?;
            self.txn_index_unsynced.push(file);
        }
        Ok(())
    }
}

/// Appends one entry to `<segment>.txnindex`; returns the file for the flusher to sync.
fn append_txn_entry(
    io: &dyn FsIo,
    dir: &Path,
    segment: i64,
    t: &AbortedTxn,
    last_stable_offset: i64,
) -> Result<File, LogError> {
    let mut e = Vec::with_capacity(TXN_ENTRY_LEN);
    e.put_i16(0);
    e.put_i64(t.producer_id);
    e.put_i64(t.first_offset);
    e.put_i64(t.last_offset);
    e.put_i64(last_stable_offset);
    let mut f = io.open(
        &dir.join(file_name(segment, "txnindex")),
        OpenOptions::new().create(true).append(true),
    )?;
    f.write_all(&e)?;
    Ok(f)
}

/// Drops the entries of `<segment>.txnindex` whose abort marker is at or past `end` (a
/// truncation removed it), replacing the file atomically and durably; a missing file is fine.
pub(super) fn truncate_txn_index(
    io: &dyn FsIo,
    dir: &Path,
    segment: i64,
    end: i64,
) -> Result<(), LogError> {
    let path = dir.join(file_name(segment, "txnindex"));
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let kept: Vec<u8> = bytes
        .chunks_exact(TXN_ENTRY_LEN)
        .filter(|e| {
            e.get(18..26)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes)
                .is_some_and(|last| last < end)
        })
        .flatten()
        .copied()
        .collect();
    if kept.len() != bytes.len() {
        super::super::io::write_atomic(io, &path, &kept)?;
    }
    Ok(())
}

/// Parses a `.txnindex` file; a torn trailing entry is ignored.
pub(crate) fn parse_txn_index(bytes: &[u8]) -> Vec<AbortedTxn> {
    bytes
        .chunks_exact(TXN_ENTRY_LEN)
        .filter_map(|e| {
            let i64_at = |at: usize| e.get(at..at + 8)?.try_into().ok().map(i64::from_be_bytes);
            Some(AbortedTxn {
                producer_id: i64_at(2)?,
                first_offset: i64_at(10)?,
                last_offset: i64_at(18)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::super::io::OsIo;
    use super::*;

    #[test]
    fn txn_index_entries_round_trip_and_ignore_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let a = AbortedTxn {
            producer_id: 5,
            first_offset: 10,
            last_offset: 20,
        };
        let b = AbortedTxn {
            producer_id: 6,
            first_offset: 12,
            last_offset: 30,
        };
        append_txn_entry(&OsIo, dir.path(), 0, &a, 10).unwrap();
        append_txn_entry(&OsIo, dir.path(), 0, &b, 12).unwrap();
        let mut bytes = std::fs::read(dir.path().join(file_name(0, "txnindex"))).unwrap();
        assert_eq!(bytes.len(), 2 * TXN_ENTRY_LEN);
        bytes.extend_from_slice(&[0, 0, 1]);
        assert_eq!(parse_txn_index(&bytes), vec![a, b]);
    }
}
