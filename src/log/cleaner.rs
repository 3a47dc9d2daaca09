//! Log compaction (`cleanup.policy=compact`): the pure part. Builds the map of each key's
//! latest offset over the sealed segments, then rewrites each sealed segment keeping only the
//! latest record per key (records without a key are kept), dropping tombstones whose batch is
//! older than `delete.retention.ms`. Offsets never change: batches keep their base and last
//! offsets, and a segment's last batch is kept (possibly emptied) so every segment still ends
//! where the next begins. The active segment is never touched. The swap of a cleaned segment
//! into the log (`.cleaned` → `.swap` → `.log`, crash-safe) is `PartitionLog::compact`.

use std::collections::HashMap;

use crate::records::batch::{BatchHeader, HEADER_LEN};
use crate::records::rebuild::{empty_batch, retain_records, Rebuilt};
use crate::records::{records, DEFAULT_DECOMPRESS_LIMIT};

use super::LogError;

/// Each key's latest offset.
pub(crate) type OffsetMap = HashMap<Vec<u8>, i64>;

fn corrupt(e: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(format!("compaction: {e}"))
}

/// Calls `f` with every whole batch of a segment's bytes.
fn for_each_batch<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(&'a [u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut pos = 0usize;
    while pos + HEADER_LEN <= bytes.len() {
        let h = BatchHeader::new(&bytes[pos..]).ok_or_else(|| corrupt("short header"))?;
        let n = h
            .total_size()
            .filter(|n| *n >= HEADER_LEN && pos + n <= bytes.len())
            .ok_or_else(|| corrupt("bad batch length"))?;
        f(&bytes[pos..pos + n])?;
        pos += n;
    }
    Ok(())
}

/// Adds the keys of one segment's batches to `map` (later offsets win).
pub(crate) fn index_keys(bytes: &[u8], map: &mut OffsetMap) -> Result<(), LogError> {
    for_each_batch(bytes, |batch| {
        let h = BatchHeader::new(batch).ok_or_else(|| corrupt("short header"))?;
        if h.is_control() {
            return Ok(());
        }
        let recs = records(batch, DEFAULT_DECOMPRESS_LIMIT).map_err(corrupt)?;
        for r in recs.iter() {
            let r = r.map_err(corrupt)?;
            if let Some(k) = r.key {
                map.insert(k.to_vec(), r.offset);
            }
        }
        Ok(())
    })
}

/// The cleaned bytes of one segment, or `None` if cleaning would change nothing.
pub(crate) fn clean_segment(
    bytes: &[u8],
    map: &OffsetMap,
    tombstones_before_ms: i64,
) -> Result<Option<Vec<u8>>, LogError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut batches = Vec::new();
    for_each_batch(bytes, |b| {
        batches.push(b);
        Ok(())
    })?;
    let last = batches.len().saturating_sub(1);
    for (i, batch) in batches.into_iter().enumerate() {
        let h = BatchHeader::new(batch).ok_or_else(|| corrupt("short header"))?;
        if h.is_control() {
            out.extend_from_slice(batch);
            continue;
        }
        let expired = h.max_timestamp() < tombstones_before_ms;
        let rebuilt = retain_records(batch, DEFAULT_DECOMPRESS_LIMIT, |r| match r.key {
            None => true,
            Some(k) => map.get(k) == Some(&r.offset) && !(r.value.is_none() && expired),
        })
        .map_err(corrupt)?;
        match rebuilt {
            Rebuilt::Unchanged => out.extend_from_slice(batch),
            Rebuilt::Batch(b) => {
                changed = true;
                out.extend_from_slice(&b);
            }
            Rebuilt::Empty if i == last => {
                // Keep the segment's end offset where the next segment begins.
                let empty = empty_batch(batch).map_err(corrupt)?;
                changed |= empty.len() != batch.len();
                out.extend_from_slice(&empty);
            }
            Rebuilt::Empty => changed = true,
        }
    }
    Ok(changed.then_some(out))
}
