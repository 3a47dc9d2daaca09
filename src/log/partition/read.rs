//! Reads of one partition log: Fetch's copies and file regions, the start-up replays, the
//! timestamp lookups of ListOffsets, and the batch-header scans they share.
//!
//! A read holds the partition lock only to pick a segment file and a start position; the
//! bytes are then read with `pread` outside the lock (sealed bytes never change, and an
//! unlinked file stays readable through its handle).

use crate::common::Offset;
use std::sync::Arc;

use bytes::Bytes;

use crate::records::batch::{BatchHeader, HEADER_LEN};
use crate::records::record_iter::records;

use super::super::segment::{read_header, read_range, Segment};
use super::super::LogError;
use super::{Inner, PartitionLog};

/// Result of [`PartitionLog::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, as stored (offsets and leader epoch stamped).
    pub records: Bytes,
    /// High watermark at the time of the read (== log end offset on a single node).
    pub high_watermark: Offset,
    /// Log start offset at the time of the read.
    pub log_start_offset: Offset,
}

/// Result of [`PartitionLog::read_region`]: where the batches are, not the bytes themselves,
/// so the connection can `sendfile(2)` them to the socket.
#[derive(Debug, Clone)]
pub struct ReadRegion {
    /// The segment file holding the batches; `None` when there is nothing to send.
    pub file: Option<Arc<std::fs::File>>,
    /// Start of the first batch in `file`.
    pub position: u64,
    /// Bytes of whole batches from `position` (0 when there is nothing to send).
    pub len: u64,
    /// High watermark at the time of the read.
    pub high_watermark: Offset,
    /// Last stable offset at the time of the read (read_committed reads stop there).
    pub last_stable_offset: Offset,
    /// Log start offset at the time of the read.
    pub log_start_offset: Offset,
}

/// Where a read stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// Consumers (read_uncommitted): the high watermark.
    HighWatermark,
    /// read_committed consumers: the last stable offset.
    Stable,
    /// Followers and the broker's own replays: the log end offset.
    LogEnd,
}

/// Where a read starts, captured under the lock.
struct ReadStart {
    file: Arc<std::fs::File>,
    pos: u64,
    end: u64,
}

impl PartitionLog {
    pub(super) fn out_of_range(&self, offset: i64, g: &Inner) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start_offset: g.log_start_offset,
            log_end_offset: g.leo,
        }
    }

    /// Under the lock: the segment at `idx`, as a file + start position for `offset` + end.
    fn read_start(g: &Inner, idx: usize, offset: i64) -> Result<Option<ReadStart>, LogError> {
        let Some(seg) = g.segments.get(idx) else {
            return Ok(None);
        };
        Ok(Some(ReadStart {
            file: seg.log_file()?,
            pos: u64::from(seg.index.lookup(offset - seg.base_offset())),
            end: seg.size(),
        }))
    }

    /// Reads whole batches starting with the batch containing `offset`, up to `max_bytes`, but
    /// at least one whole batch if `min_one_batch` (KIP-74); never past the high watermark and
    /// within one segment. `offset == log_end_offset` gives empty records.
    /// Errors: `OffsetOutOfRange` if `offset` is below the log start or above the end offset.
    /// Holds the partition lock only to locate the start; the bytes are read with `pread`.
    pub fn read(
        &self,
        offset: Offset,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, LogError> {
        self.read_to(offset, max_bytes, min_one_batch, Limit::HighWatermark)
    }

    /// [`PartitionLog::read`] up to `limit` (the high watermark or the log end offset).
    fn read_to(
        &self,
        offset: Offset,
        max_bytes: usize,
        min_one_batch: bool,
        limit: Limit,
    ) -> Result<ReadResult, LogError> {
        let offset = offset.get();
        let (mut idx, hw, upper, lso, nsegs) = {
            let g = self.lock();
            if offset < g.log_start_offset || offset > g.leo {
                return Err(self.out_of_range(offset, &g));
            }
            let idx = g
                .segments
                .partition_point(|s| s.base_offset() <= offset)
                .saturating_sub(1);
            let hw = g.high_watermark();
            let upper = if limit == Limit::LogEnd { g.leo } else { hw };
            (idx, hw, upper, g.log_start_offset, g.segments.len())
        };
        let empty = ReadResult {
            records: Bytes::new(),
            high_watermark: Offset(hw),
            log_start_offset: Offset(lso),
        };
        if offset >= upper {
            return Ok(empty);
        }
        while idx < nsegs {
            let start = {
                let g = self.lock();
                Self::read_start(&g, idx, offset)?
            };
            let Some(st) = start else { break };
            if let Some(pos) = find_batch(&st, |h| h.last_offset() >= offset)? {
                let records = collect_batches(&st, pos, upper, max_bytes, min_one_batch)?;
                return Ok(ReadResult {
                    records,
                    high_watermark: Offset(hw),
                    log_start_offset: Offset(lso),
                });
            }
            idx += 1;
        }
        Ok(empty)
    }

    /// Calls `f` with every batch from the log start to the log end (not only the high
    /// watermark), in order: the start-up replays of the internal topics. Stops, with a
    /// warning, if a read makes no progress (recovery validated every batch, so that would be a
    /// framing surprise).
    pub fn for_each_batch(
        &self,
        mut f: impl FnMut(&BatchHeader<'_>, &[u8]),
    ) -> Result<(), LogError> {
        let mut offset = self.log_start_offset();
        loop {
            let read = self.read_to(offset, 1 << 20, true, Limit::LogEnd)?;
            if read.records.is_empty() {
                return Ok(());
            }
            let before = offset;
            let mut rest: &[u8] = &read.records;
            while let Some(h) = BatchHeader::new(rest) {
                let Some(size) = h.total_size().filter(|s| *s <= rest.len() && *s > 0) else {
                    break;
                };
                f(&h, &rest[..size]);
                offset = Offset(h.last_offset()).next();
                rest = &rest[size..];
            }
            if offset <= before {
                tracing::warn!(partition = %self.tp, %offset, "replay made no progress");
                return Ok(());
            }
            if offset >= self.log_end_offset() {
                return Ok(());
            }
        }
    }

    /// Like [`PartitionLog::read`], but returns the file region of the batches instead of
    /// copying them: whole batches from the one containing `offset`, within one segment, up to
    /// `max_bytes` (at least one batch if `min_one_batch`), never past the high watermark — nor
    /// past the last stable offset if `read_committed`.
    /// Only batch headers are read. Segments are found by base offset, so a segment deleted
    /// by retention meanwhile yields `OffsetOutOfRange` rather than a later segment's data.
    /// The region stays valid: sealed bytes never change, and an unlinked file stays readable
    /// through the returned handle.
    pub fn read_region(
        &self,
        offset: Offset,
        max_bytes: usize,
        min_one_batch: bool,
        read_committed: bool,
    ) -> Result<ReadRegion, LogError> {
        let limit = if read_committed {
            Limit::Stable
        } else {
            Limit::HighWatermark
        };
        self.read_region_to(offset, max_bytes, min_one_batch, limit)
    }

    /// [`PartitionLog::read_region`] for a follower's Fetch: stops at the log end offset, not
    /// at the high watermark or the last stable offset (which are still reported).
    pub fn read_region_to_log_end(
        &self,
        offset: Offset,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadRegion, LogError> {
        self.read_region_to(offset, max_bytes, min_one_batch, Limit::LogEnd)
    }

    fn read_region_to(
        &self,
        offset: Offset,
        max_bytes: usize,
        min_one_batch: bool,
        limit: Limit,
    ) -> Result<ReadRegion, LogError> {
        let offset = offset.get();
        let (mut base, hw, lso, stable, leo) = {
            let g = self.lock();
            if offset < g.log_start_offset || offset > g.leo {
                return Err(self.out_of_range(offset, &g));
            }
            let idx = g
                .segments
                .partition_point(|s| s.base_offset() <= offset)
                .saturating_sub(1);
            let base = g.segments.get(idx).map_or(0, Segment::base_offset);
            let hw = g.high_watermark();
            (
                base,
                hw,
                g.log_start_offset,
                g.txn.last_stable_offset(hw),
                g.leo,
            )
        };
        let mut region = ReadRegion {
            file: None,
            position: 0,
            len: 0,
            high_watermark: Offset(hw),
            last_stable_offset: Offset(stable),
            log_start_offset: Offset(lso),
        };
        let upper = match limit {
            Limit::HighWatermark => hw,
            Limit::Stable => stable,
            Limit::LogEnd => leo,
        };
        if offset >= upper {
            return Ok(region);
        }
        loop {
            let (st, next) = {
                let g = self.lock();
                let Some(idx) = g.segments.iter().position(|s| s.base_offset() == base) else {
                    return Err(self.out_of_range(offset, &g));
                };
                let st = Self::read_start(&g, idx, offset)?;
                (st, g.segments.get(idx + 1).map(Segment::base_offset))
            };
            if let Some(st) = st {
                if let Some(pos) = find_batch(&st, |h| h.last_offset() >= offset)? {
                    let len = region_len(&st, pos, upper, max_bytes as u64, min_one_batch)?;
                    if len > 0 {
                        region.file = Some(st.file);
                        region.position = pos;
                        region.len = len;
                    }
                    return Ok(region);
                }
            }
            match next {
                Some(b) => base = b,
                None => return Ok(region),
            }
        }
    }

    /// First offset whose record timestamp is ≥ `ts`, with that timestamp; `None` if none
    /// below the high watermark (as Kafka answers ListOffsets).
    /// Uses the time index to skip to the right batch, then decodes only that batch's records.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let found = self.offset_for_timestamp_in_log(ts)?;
        let hw = self.high_watermark().get();
        Ok(found.filter(|(offset, _)| *offset < hw))
    }

    fn offset_for_timestamp_in_log(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let (first, nsegs, lso) = {
            let g = self.lock();
            let first = g.segments.iter().position(|s| s.max_timestamp().0 >= ts);
            (first, g.segments.len(), g.log_start_offset)
        };
        let Some(mut idx) = first else {
            return Ok(None);
        };
        while idx < nsegs {
            let start = {
                let g = self.lock();
                match g.segments.get(idx) {
                    Some(seg) if seg.max_timestamp().0 >= ts => {
                        let rel = seg.time_index.last_below(ts).unwrap_or(0);
                        Some(ReadStart {
                            file: seg.log_file()?,
                            pos: u64::from(seg.index.lookup(i64::from(rel))),
                            end: seg.size(),
                        })
                    }
                    _ => None,
                }
            };
            if let Some(mut st) = start {
                while let Some(pos) =
                    find_batch(&st, |h| h.max_timestamp() >= ts && h.last_offset() >= lso)?
                {
                    let (batch, next) = read_batch_at(&st, pos)?;
                    let recs = records(&batch, self.config().decompress_limit())
                        .map_err(|e| LogError::Corrupt(e.to_string()))?;
                    for r in recs.iter() {
                        let r = r.map_err(|e| LogError::Corrupt(e.to_string()))?;
                        if r.timestamp >= ts && r.offset >= lso {
                            return Ok(Some((r.offset, r.timestamp)));
                        }
                    }
                    st.pos = next;
                }
            }
            idx += 1;
        }
        Ok(None)
    }

    /// (max timestamp, offset of the record carrying it), or `None` on an empty log or when
    /// that record is not yet below the high watermark. Decodes only the batch holding the
    /// maximum.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let found = self.max_timestamp_in_log()?;
        let hw = self.high_watermark().get();
        Ok(found.filter(|(_, offset)| *offset < hw))
    }

    fn max_timestamp_in_log(&self) -> Result<Option<(i64, i64)>, LogError> {
        let found = {
            let g = self.lock();
            let mut best: Option<(usize, i64, i64)> = None;
            for (i, s) in g.segments.iter().enumerate() {
                let (ts, off) = s.max_timestamp();
                if off >= 0 && best.is_none_or(|(_, bts, _)| ts > bts) {
                    best = Some((i, ts, off));
                }
            }
            match best {
                Some((i, ts, off)) => Self::read_start(&g, i, off)?.map(|st| (st, ts, off)),
                None => None,
            }
        };
        let Some((st, ts, batch_last)) = found else {
            return Ok(None);
        };
        let Some(pos) = find_batch(&st, |h| h.last_offset() >= batch_last)? else {
            return Ok(None);
        };
        let (batch, _) = read_batch_at(&st, pos)?;
        let last = BatchHeader::new(&batch).map_or(batch_last, |h| h.last_offset());
        let recs = records(&batch, self.config().decompress_limit())
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        for r in recs.iter() {
            let r = r.map_err(|e| LogError::Corrupt(e.to_string()))?;
            if r.timestamp == ts {
                return Ok(Some((ts, r.offset)));
            }
        }
        Ok(Some((ts, last)))
    }
}

fn corrupt_at(pos: u64) -> LogError {
    LogError::Corrupt(format!("bad batch header at position {pos}"))
}

fn header_total(h: &BatchHeader<'_>, pos: u64, end: u64) -> Result<u64, LogError> {
    match h.total_size() {
        Some(t) if t >= HEADER_LEN && pos + t as u64 <= end => Ok(t as u64),
        _ => Err(corrupt_at(pos)),
    }
}

/// Scans batch headers from `st.pos` and returns the position of the first batch matching `pred`.
fn find_batch(
    st: &ReadStart,
    pred: impl Fn(&BatchHeader<'_>) -> bool,
) -> Result<Option<u64>, LogError> {
    let mut pos = st.pos;
    while let Some(hb) = read_header(&st.file, pos, st.end)? {
        let h = BatchHeader::new(&hb).ok_or_else(|| corrupt_at(pos))?;
        if pred(&h) {
            return Ok(Some(pos));
        }
        pos += header_total(&h, pos, st.end)?;
    }
    Ok(None)
}

/// Reads the whole batches from `pos` that fit in `max_bytes` (at least one if `min_one_batch`),
/// stopping at the high watermark and the segment end. One `pread` of up to `max_bytes`, whose
/// buffer becomes the result, so batches are not copied again.
fn collect_batches(
    st: &ReadStart,
    pos: u64,
    hw: i64,
    max_bytes: usize,
    min_one_batch: bool,
) -> Result<Bytes, LogError> {
    let want = (max_bytes as u64).min(st.end.saturating_sub(pos));
    let mut buf = read_range(&st.file, pos, pos + want)?;
    let mut used = 0usize;
    while let Some(h) = buf.get(used..).and_then(BatchHeader::new) {
        if h.base_offset() >= hw {
            break;
        }
        let total = header_total(&h, pos + used as u64, st.end)? as usize;
        if used + total > buf.len() {
            break;
        }
        used += total;
    }
    if used == 0 && min_one_batch {
        // KIP-74: the first batch is larger than max_bytes; return it whole.
        if let Some(hb) = read_header(&st.file, pos, st.end)? {
            let h = BatchHeader::new(&hb).ok_or_else(|| corrupt_at(pos))?;
            if h.base_offset() < hw {
                let total = header_total(&h, pos, st.end)?;
                buf = read_range(&st.file, pos, pos + total)?;
                used = buf.len();
            }
        }
    }
    buf.truncate(used);
    Ok(Bytes::from(buf))
}

/// Bytes of the whole batches from `pos` below the high watermark that fit in `max_bytes` (the
/// first one regardless if `min_one_batch`), scanning headers only.
fn region_len(
    st: &ReadStart,
    pos: u64,
    hw: i64,
    max_bytes: u64,
    min_one_batch: bool,
) -> Result<u64, LogError> {
    // Headers are read through a 64 KiB window, so small batches cost one pread per window
    // rather than one per batch.
    const WINDOW: u64 = 64 * 1024;
    let mut window: Vec<u8> = Vec::new();
    let mut window_at = 0u64;
    let mut used = 0u64;
    loop {
        let at = pos + used;
        if at + HEADER_LEN as u64 > st.end {
            break;
        }
        let in_window =
            at >= window_at && at + HEADER_LEN as u64 <= window_at + window.len() as u64;
        if !in_window {
            let len = WINDOW.min(st.end - at).max(HEADER_LEN as u64);
            window = read_range(&st.file, at, at + len)?;
            window_at = at;
        }
        let off = usize::try_from(at - window_at).map_err(|_| corrupt_at(at))?;
        let h = window
            .get(off..)
            .and_then(BatchHeader::new)
            .ok_or_else(|| corrupt_at(at))?;
        if h.base_offset() >= hw {
            break;
        }
        let total = header_total(&h, pos + used, st.end)?;
        if used + total > max_bytes {
            if used == 0 && min_one_batch {
                used = total;
            }
            break;
        }
        used += total;
    }
    Ok(used)
}

/// Reads the whole batch at `pos`; returns it and the position after it.
fn read_batch_at(st: &ReadStart, pos: u64) -> Result<(Vec<u8>, u64), LogError> {
    let hb = read_header(&st.file, pos, st.end)?.ok_or_else(|| corrupt_at(pos))?;
    let h = BatchHeader::new(&hb).ok_or_else(|| corrupt_at(pos))?;
    let total = header_total(&h, pos, st.end)?;
    Ok((read_range(&st.file, pos, pos + total)?, pos + total))
}
