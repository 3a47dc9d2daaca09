//! Log compaction (`cleanup.policy=compact`), the record-level part: the map of each key's
//! latest offset over the dirty section of a log, bounded by `log.cleaner.dedupe.buffer.size`,
//! and the rewrite of one batch keeping only what compaction keeps.
//!
//! A record is dropped when the map holds a later offset for its key (it was superseded), or
//! when it is a tombstone (null value) that is the latest for its key and its batch is older
//! than `delete.retention.ms`. Records without a key are kept. Offsets never change: batches keep
//! their base and last offsets, and a segment's last batch is kept (emptied if need be) so every
//! segment still ends where the next begins. Choosing what to clean and swapping cleaned
//! segments in (crash-safe) is `PartitionLog::compact`; scheduling is `cleaner_thread`.

use std::collections::HashMap;

use crate::records::batch::BatchHeader;
use crate::records::rebuild::{empty_batch, retain_records, Rebuilt};
use crate::records::records;

use super::LogError;

/// The aborted transactions of the range being cleaned, by producer: their records are
/// neither indexed nor kept (read_committed consumers never see them, and they must not
/// supersede committed values), as Kafka's cleaner does.
#[derive(Debug, Default)]
pub(crate) struct AbortedSet {
    by_producer: HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedSet {
    /// The set of `txns`.
    pub(crate) fn new(txns: &[super::txn_state::AbortedTxn]) -> Self {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in txns {
            by_producer
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        AbortedSet { by_producer }
    }

    /// True if `batch` holds records of an aborted transaction.
    fn holds(&self, h: &BatchHeader<'_>) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self
                .by_producer
                .get(&h.producer_id())
                .is_some_and(|ranges| {
                    ranges
                        .iter()
                        .any(|(first, last)| (*first..=*last).contains(&h.base_offset()))
                })
    }
}

/// Memory charged per key on top of its bytes: the offset, the hash table slot and the
/// key's heap allocation header, rounded up.
const ENTRY_OVERHEAD: usize = 64;

/// Each key's latest offset, within a memory budget. Keys are kept whole (not hashed), so a
/// collision can never drop a live record.
#[derive(Debug)]
pub(crate) struct OffsetMap {
    latest: HashMap<Vec<u8>, i64>,
    bytes: usize,
    budget: usize,
    /// One past the last offset of the last batch indexed (-1 before any).
    end_offset: i64,
}

impl OffsetMap {
    /// An empty map that reports full once its keys use about `budget` bytes.
    pub(crate) fn with_budget(budget: usize) -> Self {
        OffsetMap {
            latest: HashMap::new(),
            bytes: 0,
            budget,
            end_offset: -1,
        }
    }

    /// One past the last offset indexed: the cleaner's next first dirty offset.
    pub(crate) fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// True once the budget is used up: the caller stops indexing at a batch boundary.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes >= self.budget
    }

    /// Records that `key` was written at `offset` (offsets arrive in increasing order).
    fn insert(&mut self, key: &[u8], offset: i64) {
        match self.latest.get_mut(key) {
            Some(o) => *o = offset,
            None => {
                self.bytes += key.len() + ENTRY_OVERHEAD;
                self.latest.insert(key.to_vec(), offset);
            }
        }
    }

    /// The latest offset of `key`, if it was indexed.
    pub(crate) fn get(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    /// Number of distinct keys.
    pub(crate) fn len(&self) -> usize {
        self.latest.len()
    }
}

fn corrupt(e: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(format!("compaction: {e}"))
}

/// Adds the keys of one batch to `map`. Control batches and aborted records carry no keys to
/// compact. Records decompress to at most `limit` bytes (`LogConfig::decompress_limit`).
pub(crate) fn index_batch(
    batch: &[u8],
    map: &mut OffsetMap,
    aborted: &AbortedSet,
    limit: usize,
) -> Result<(), LogError> {
    let h = BatchHeader::new(batch).ok_or_else(|| corrupt("short header"))?;
    map.end_offset = map.end_offset.max(h.last_offset() + 1);
    if h.is_control() || aborted.holds(&h) {
        return Ok(());
    }
    let recs = records(batch, limit).map_err(corrupt)?;
    for r in recs.iter() {
        let r = r.map_err(corrupt)?;
        if let Some(k) = r.key {
            map.insert(k, r.offset);
        }
    }
    Ok(())
}

/// What cleaning one batch gives.
#[derive(Debug)]
pub(crate) enum CleanedBatch {
    /// Keep the batch byte for byte.
    Unchanged,
    /// Write these bytes instead (same base and last offset, same codec).
    Rewritten(Vec<u8>),
    /// Drop the batch.
    Dropped,
}

/// Cleans one batch against `map`. `is_last` marks a segment's last batch, which is emptied
/// rather than dropped so the segment keeps its end offset. Tombstones are dropped if their
/// batch's max timestamp is below `tombstones_before_ms` and they were indexed: a tombstone past
/// the map's end may still hide an older value the map holds as latest. Records decompress to
/// at most `limit` bytes.
pub(crate) fn clean_batch(
    batch: &[u8],
    map: &OffsetMap,
    aborted: &AbortedSet,
    tombstones_before_ms: i64,
    is_last: bool,
    limit: usize,
) -> Result<CleanedBatch, LogError> {
    let h = BatchHeader::new(batch).ok_or_else(|| corrupt("short header"))?;
    if h.is_control() {
        return Ok(CleanedBatch::Unchanged);
    }
    let expired = h.max_timestamp() < tombstones_before_ms;
    let dead = aborted.holds(&h);
    let rebuilt = retain_records(batch, limit, |r| match r.key {
        _ if dead => false,
        None => true,
        Some(k) => {
            let superseded = map.get(k).is_some_and(|latest| latest > r.offset);
            let dead_tombstone = r.value.is_none() && expired && r.offset < map.end_offset;
            !superseded && !dead_tombstone
        }
    })
    .map_err(corrupt)?;
    Ok(match rebuilt {
        Rebuilt::Unchanged => CleanedBatch::Unchanged,
        Rebuilt::Batch(b) => CleanedBatch::Rewritten(b),
        Rebuilt::Empty if is_last => {
            let empty = empty_batch(batch).map_err(corrupt)?;
            if empty.len() == batch.len() {
                CleanedBatch::Unchanged
            } else {
                CleanedBatch::Rewritten(empty)
            }
        }
        Rebuilt::Empty => CleanedBatch::Dropped,
    })
}

/// Calls `f` with every whole batch of in-memory segment bytes (tests build segments by hand).
#[cfg(test)]
fn for_each_batch<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(&'a [u8], bool) -> Result<(), LogError>,
) -> Result<(), LogError> {
    use crate::records::batch::HEADER_LEN;
    let mut pos = 0usize;
    while pos + HEADER_LEN <= bytes.len() {
        let h = BatchHeader::new(&bytes[pos..]).ok_or_else(|| corrupt("short header"))?;
        let n = h
            .total_size()
            .filter(|n| *n >= HEADER_LEN && pos + n <= bytes.len())
            .ok_or_else(|| corrupt("bad batch length"))?;
        f(&bytes[pos..pos + n], pos + n == bytes.len())?;
        pos += n;
    }
    Ok(())
}

/// Adds the keys of a whole in-memory segment to `map`.
#[cfg(test)]
pub(crate) fn index_keys(bytes: &[u8], map: &mut OffsetMap) -> Result<(), LogError> {
    for_each_batch(bytes, |b, _| {
        index_batch(
            b,
            map,
            &AbortedSet::default(),
            crate::records::DEFAULT_DECOMPRESS_LIMIT,
        )
    })
}

/// The cleaned bytes of a whole in-memory segment, or `None` if cleaning changes nothing.
#[cfg(test)]
pub(crate) fn clean_segment(
    bytes: &[u8],
    map: &OffsetMap,
    tombstones_before_ms: i64,
) -> Result<Option<Vec<u8>>, LogError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    for_each_batch(bytes, |b, is_last| {
        match clean_batch(
            b,
            map,
            &AbortedSet::default(),
            tombstones_before_ms,
            is_last,
            crate::records::DEFAULT_DECOMPRESS_LIMIT,
        )? {
            CleanedBatch::Unchanged => out.extend_from_slice(b),
            CleanedBatch::Rewritten(n) => {
                changed = true;
                out.extend_from_slice(&n);
            }
            CleanedBatch::Dropped => changed = true,
        }
        Ok(())
    })?;
    Ok(changed.then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_counts_each_key_once_and_fills_at_its_budget() {
        let mut m = OffsetMap::with_budget(3 * (ENTRY_OVERHEAD + 3));
        m.insert(b"abc", 1);
        m.insert(b"abc", 7);
        m.insert(b"def", 2);
        assert_eq!((m.len(), m.get(b"abc")), (2, Some(7)));
        assert!(!m.is_full());
        m.insert(b"ghi", 3);
        assert!(m.is_full());
    }
}
