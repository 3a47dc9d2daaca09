//! Opening a partition directory after a clean or unclean shutdown. Segments wholly below the
//! recovery point trust their (sanity-checked) index files; the segment holding the recovery
//! point and every later one are scanned batch by batch (framing, magic, offsets, CRC), the log is
//! truncated at the first invalid byte, later segments are deleted and indexes rebuilt. Producer
//! and transaction state is rebuilt from the newest producer snapshot and the batch headers
//! after it (every segment when there is none). Never panics on garbage.
//! Runs single-threaded at open, before the partition is shared.

use std::path::Path;
use std::sync::Arc;

use crate::records::batch::{BatchHeader, HEADER_LEN};
use crate::records::build::marker;

use super::checkpoint::{list_dir, read_partition_metadata};
use super::flusher::FlushSignal;
use super::index::{read_index_file, OffsetIndex};
use super::io::{remove_if_exists, FsIo};
use super::leader_epoch::LeaderEpochCache;
use super::partition::{parse_txn_index, PartitionLog};
use super::producer_snapshot::{self, SnapshotEntry};
use super::producer_state::{BatchMeta, ProducerState, ProducerSummary};
use super::segment::{
    delete_segment_files, file_len, file_name, open_log_read, read_header, read_range,
    scan_valid_from, truncate_log, write_indexes, IndexBuilder, Segment, SegmentState,
};
use super::time_index::TimeIndex;
use super::txn_state::{AbortedTxn, TxnState};
use super::{LogError, LogOptions, TopicPartition};

/// Parses `00000000000000000042.log` style names into (base offset, extension).
fn parse_segment_name(name: &str) -> Option<(i64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

/// What recovery found, for logging and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments whose index files were trusted.
    pub trusted_segments: usize,
    /// Segments scanned batch by batch.
    pub scanned_segments: usize,
    /// Bytes cut from the tail of the log.
    pub truncated_bytes: u64,
    /// Bytes read batch by batch (CRC-checked) to recover: only the tail after the recovery
    /// point when the segment holding it has durable index entries.
    pub scanned_bytes: u64,
    /// Segments deleted because they followed the truncation point.
    pub deleted_segments: usize,
}

/// Loads a trusted (below the recovery point) segment from its index files; `None` if they are
/// missing or fail the sanity checks.
fn load_trusted(
    io: &dyn FsIo,
    dir: &Path,
    base: i64,
    next_base: i64,
    opts: &LogOptions,
) -> Result<Option<Segment>, LogError> {
    let log_len = file_len(&open_log_read(dir, base)?)?;
    let idx_bytes = read_index_file(&dir.join(file_name(base, "index")))?;
    let time_bytes = read_index_file(&dir.join(file_name(base, "timeindex")))?;
    let (Some(ib), Some(tb)) = (idx_bytes, time_bytes) else {
        return Ok(None);
    };
    let Some(index) = OffsetIndex::parse(&ib, log_len) else {
        return Ok(None);
    };
    let Some(time_index) = TimeIndex::parse(&tb) else {
        return Ok(None);
    };
    let span = next_base - base;
    if index.iter().any(|&(r, _)| i64::from(r) >= span)
        || time_index.iter().any(|&(_, r)| i64::from(r) >= span)
    {
        return Ok(None);
    }
    // Every entry must point at the start of the batch it names (keyed by last offset): a
    // well-shaped but wrong index would otherwise send reads into the middle of a batch.
    // One 61-byte read per entry, i.e. about 1.5% of the segment at the default interval.
    let file = open_log_read(dir, base)?;
    for &(rel, pos) in &index {
        let ok = read_header(&file, u64::from(pos), log_len)?.is_some_and(|hb| {
            BatchHeader::new(&hb)
                .is_some_and(|h| h.magic() == 2 && h.last_offset() == base + i64::from(rel))
        });
        if !ok {
            return Ok(None);
        }
    }
    let mut builder = IndexBuilder::new(base, opts.index_interval_bytes);
    if let Some(&(ts, rel)) = time_index.last() {
        builder.max_timestamp = ts;
        builder.offset_of_max_timestamp = base + i64::from(rel);
    }
    let seg = Segment::open(
        io,
        dir,
        base,
        false,
        SegmentState {
            index,
            time_index,
            builder,
            size: log_len,
            next_offset: next_base,
        },
    )?;
    Ok(Some(seg))
}

/// Where scanning can start in the segment holding the recovery point.
struct Resume {
    index: Vec<(i32, u32)>,
    time: Vec<(i64, i32)>,
    builder: IndexBuilder,
    position: u64,
    next_offset: i64,
}

/// Everything below the recovery point was fdatasync'ed, and the index files were synced before
/// the checkpoint naming it was written; so the index entries for batches wholly below it are
/// durable. Keeps those entries (each checked against the batch header it points at) and
/// returns the state to resume scanning right after the last of them — recovery then reads only
/// the unflushed tail. `None` (scan the whole segment) when the index files are missing or any
/// entry fails its check.
fn resume_point(
    dir: &Path,
    file: &std::fs::File,
    base: i64,
    recovery_point: i64,
    log_len: u64,
    opts: &LogOptions,
) -> Result<Option<Resume>, LogError> {
    let idx_bytes = read_index_file(&dir.join(file_name(base, "index")))?;
    let time_bytes = read_index_file(&dir.join(file_name(base, "timeindex")))?;
    let (Some(ib), Some(tb)) = (idx_bytes, time_bytes) else {
        return Ok(None);
    };
    let (Some(index), Some(time)) = (OffsetIndex::parse(&ib, log_len), TimeIndex::parse(&tb))
    else {
        return Ok(None);
    };
    // Entries come from disk: an offset past i64::MAX means the files do not belong together
    // (scan the whole segment), not a wrap.
    let absolute = |rel: i32| base.checked_add(i64::from(rel));
    let below: Vec<(i32, u32)> = index
        .into_iter()
        .take_while(|&(rel, _)| absolute(rel).is_some_and(|o| o < recovery_point))
        .collect();
    let Some(&(last_rel, last_pos)) = below.last() else {
        return Ok(None);
    };
    let mut last_size = 0u64;
    for &(rel, pos) in &below {
        let Some(hb) = read_header(file, u64::from(pos), log_len)? else {
            return Ok(None);
        };
        match BatchHeader::new(&hb) {
            Some(h) if h.magic() == 2 && Some(h.last_offset()) == absolute(rel) => {
                last_size = h.total_size().unwrap_or(0) as u64;
            }
            _ => return Ok(None),
        }
    }
    let Some(first) = read_header(file, 0, log_len)?
        .and_then(|hb| BatchHeader::new(&hb).map(|h| h.max_timestamp()))
    else {
        return Ok(None);
    };
    // Time entries made at or before the last kept index point are exactly those whose offset
    // is at most its batch's: a later entry always names a later batch.
    let time: Vec<(i64, i32)> = time
        .into_iter()
        .take_while(|&(_, rel)| rel <= last_rel)
        .collect();
    let max = match time.last() {
        Some(&(ts, rel)) => match absolute(rel) {
            Some(offset) => Some((ts, offset)),
            None => return Ok(None),
        },
        None => None,
    };
    let position = u64::from(last_pos) + last_size;
    if last_size < HEADER_LEN as u64 || position > log_len {
        return Ok(None);
    }
    // Below the recovery point, so the offset after it fits.
    let Some(next_offset) = absolute(last_rel).and_then(|o| o.checked_add(1)) else {
        return Ok(None);
    };
    Ok(Some(Resume {
        index: below,
        time,
        builder: IndexBuilder::resumed(base, opts.index_interval_bytes, last_size, max, first),
        position,
        next_offset,
    }))
}

/// Scans one segment, truncating it at the first invalid byte; rebuilds and writes its indexes.
/// Returns the segment and whether it was truncated.
fn scan_segment(
    io: &dyn FsIo,
    dir: &Path,
    base: i64,
    is_last: bool,
    recovery_point: Option<i64>,
    opts: &LogOptions,
    report: &mut RecoveryReport,
) -> Result<(Segment, bool), LogError> {
    let file = open_log_read(dir, base)?;
    let len = file_len(&file)?;
    let resume = match recovery_point {
        Some(rp) => resume_point(dir, &file, base, rp, len, opts)?,
        None => None,
    };
    let Resume {
        index,
        time,
        mut builder,
        position: start,
        mut next_offset,
    } = resume.unwrap_or_else(|| Resume {
        index: Vec::new(),
        time: Vec::new(),
        builder: IndexBuilder::new(base, opts.index_interval_bytes),
        position: 0,
        next_offset: base,
    });
    let mut index = OffsetIndex::new(index, None);
    let mut time = TimeIndex::new(time, None);
    let mut io_err = None;
    let valid = scan_valid_from(&file, base, start, next_offset, |pos, h| {
        let size = h.total_size().unwrap_or(0) as u64;
        let add = builder.add(pos, h.last_offset(), h.max_timestamp(), size);
        let r = (|| {
            if let Some((rel, p)) = add.offset {
                index.append(rel, p)?;
            }
            if let Some((ts, rel)) = add.time {
                time.maybe_append(ts, rel)?;
            }
            Ok::<(), std::io::Error>(())
        })();
        if let Err(e) = r {
            io_err = Some(e);
        }
        // The scan accepted `h` only with offsets_valid, so the next offset fits.
        next_offset = h.next_offset().unwrap_or(next_offset);
    })?;
    if let Some(e) = io_err {
        return Err(e.into());
    }
    report.scanned_bytes += valid - start;
    let truncated = valid < len;
    if truncated {
        tracing::warn!(dir = %dir.display(), base, valid, len, "truncating torn or corrupt log tail");
        truncate_log(io, dir, base, valid)?;
        report.truncated_bytes += len - valid;
    }
    let writable = is_last || truncated;
    if !writable {
        if let Some((ts, rel)) = builder.final_time_entry() {
            time.maybe_append(ts, rel)?;
        }
    }
    write_indexes(io, dir, base, index.entries(), time.entries(), !writable)?;
    report.scanned_segments += 1;
    let seg = Segment::open(
        io,
        dir,
        base,
        writable,
        SegmentState {
            index: index.entries().to_vec(),
            time_index: time.entries().to_vec(),
            builder,
            size: valid,
            next_offset,
        },
    )?;
    Ok((seg, truncated))
}

/// The newest producer-state snapshot among `segments` (the state at that segment's base), as
/// the index of its segment and its entries. Unreadable or damaged snapshots are skipped.
fn newest_snapshot(dir: &Path, segments: &[Segment]) -> Option<(usize, Vec<SnapshotEntry>)> {
    segments.iter().enumerate().rev().find_map(|(i, seg)| {
        let path = dir.join(file_name(seg.base_offset(), "snapshot"));
        let bytes = std::fs::read(&path).ok()?;
        match producer_snapshot::decode(&bytes) {
            Some(entries) => Some((i, entries)),
            None => {
                tracing::warn!(file = %path.display(), "ignoring a damaged producer snapshot");
                None
            }
        }
    })
}

/// Rebuilds producer state and open transactions: from the newest producer snapshot, then the
/// batch headers of the segments after it; without a snapshot, from the headers of every
/// segment. No decompression; only control batches, a few dozen bytes, are read whole.
pub(crate) fn rebuild_producers(
    dir: &Path,
    segments: &[Segment],
) -> Result<(ProducerState, TxnState), LogError> {
    let mut state = ProducerState::default();
    let mut txn = TxnState::default();
    let first = match newest_snapshot(dir, segments) {
        Some((i, entries)) => {
            for e in entries {
                // Snapshot fields come from disk: a base offset that does not fit is no
                // batch to remember (the producer's next batch then starts afresh).
                let base_offset = e.last_offset.checked_sub(i64::from(e.offset_delta));
                let last = match base_offset {
                    Some(base_offset) if e.last_sequence >= 0 && e.last_offset >= 0 => {
                        Some(BatchMeta {
                            first_seq: e.last_sequence.wrapping_sub(e.offset_delta),
                            last_seq: e.last_sequence,
                            base_offset,
                            last_offset: e.last_offset,
                        })
                    }
                    _ => None,
                };
                state.restore(ProducerSummary {
                    producer_id: e.producer_id,
                    epoch: e.epoch,
                    last,
                    last_timestamp: e.timestamp,
                    coordinator_epoch: e.coordinator_epoch,
                });
                if e.current_txn_first_offset >= 0 {
                    txn.on_data(e.producer_id, e.current_txn_first_offset);
                }
            }
            i
        }
        // No usable snapshot: every segment. Snapshots are written after the rolls they
        // describe, so a crash can leave later segments durable without one (a directory fsync
        // by DeleteRecords or another roll makes their entries durable first); the last two
        // segments would then miss producers whose batches sit earlier, and acknowledged
        // idempotent batches could be accepted twice.
        None => 0,
    };
    for seg in &segments[first..] {
        let file = seg.log_file()?;
        let end = seg.size();
        let mut pos = 0u64;
        while let Some(hb) = read_header(&file, pos, end)? {
            let Some(h) = BatchHeader::new(&hb) else {
                break;
            };
            let Some(total) = h.total_size().filter(|t| *t >= HEADER_LEN) else {
                break;
            };
            if h.is_transactional() && !h.is_control() {
                txn.on_data(h.producer_id(), h.base_offset());
            } else if h.is_transactional() {
                let batch = read_range(&file, pos, pos + total as u64)?;
                let marker = marker(&batch);
                state.observe_marker(
                    h.producer_id(),
                    h.producer_epoch(),
                    marker.map_or(-1, |m| m.coordinator_epoch),
                    h.max_timestamp(),
                );
                if let Some(m) = marker {
                    txn.on_marker(h.producer_id(), h.base_offset(), m.kind);
                }
            }
            if h.producer_id() >= 0 && h.base_sequence() >= 0 {
                let info = crate::records::BatchInfo::from_header(&h);
                state.update(
                    h.producer_id(),
                    h.producer_epoch(),
                    BatchMeta {
                        first_seq: h.base_sequence(),
                        last_seq: info.last_sequence(),
                        base_offset: h.base_offset(),
                        last_offset: h.last_offset(),
                    },
                    h.max_timestamp(),
                );
            }
            pos += total as u64;
        }
    }
    Ok((state, txn))
}

/// The transaction state of a recovered log: aborted transactions from every segment's
/// `.txnindex` (entries whose marker did not survive the crash are dropped), merged with what
/// `rebuild_producers` found (a marker whose entry was not yet written), and the transactions
/// it found open (from the producer snapshot and the scan after it).
pub(crate) fn rebuild_txn_state(
    dir: &Path,
    segments: &[Segment],
    end_offset: i64,
    scanned: TxnState,
) -> Result<TxnState, LogError> {
    let mut aborted: Vec<AbortedTxn> = Vec::new();
    for seg in segments {
        match std::fs::read(dir.join(file_name(seg.base_offset(), "txnindex"))) {
            Ok(bytes) => aborted.extend(
                parse_txn_index(&bytes)
                    .into_iter()
                    .filter(|t| t.last_offset < end_offset),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    aborted.extend(scanned.aborted_between(i64::MIN, i64::MAX));
    aborted.sort_by_key(|t| t.last_offset);
    aborted.dedup_by_key(|t| t.last_offset);
    let mut state = TxnState::default();
    for t in aborted {
        state.restore_aborted(t);
    }
    for (producer_id, first_offset) in scanned.open_transactions() {
        state.on_data(producer_id, first_offset);
    }
    Ok(state)
}

/// Opens and recovers the partition in `dir`. `recovery_point`/`log_start` come from the log
/// dir's checkpoints (`None` if absent: everything is scanned).
pub(crate) fn load_partition(
    dir: &Path,
    tp: TopicPartition,
    recovery_point: Option<i64>,
    log_start: Option<i64>,
    opts: &LogOptions,
    flush: Arc<FlushSignal>,
    io: Arc<dyn FsIo>,
) -> Result<(PartitionLog, RecoveryReport), LogError> {
    let fs = io.as_ref();
    let mut report = RecoveryReport::default();
    let topic_id = read_partition_metadata(dir)?.unwrap_or_else(|| {
        tracing::warn!(dir = %dir.display(), "missing or malformed partition.metadata");
        crate::common::TopicId::NIL
    });
    let entries = list_dir(dir)?;
    let mut bases: Vec<i64> = Vec::new();
    for (name, is_dir) in &entries {
        if *is_dir {
            continue;
        }
        if let Some(log) = name.strip_suffix(".swap") {
            if let Some((base, "log")) = parse_segment_name(log) {
                // A compaction got as far as the swap: complete it. The old indexes describe
                // the old bytes, so they go and the segment is scanned.
                tracing::info!(dir = %dir.display(), base, "completing an interrupted compaction swap");
                fs.rename(&dir.join(name), &dir.join(log))?;
                for ext in ["index", "timeindex"] {
                    let p = dir.join(file_name(base, ext));
                    if p.exists() {
                        remove_if_exists(fs, &p)?;
                    }
                }
                fs.sync_dir(dir)?;
                bases.push(base);
                continue;
            }
        }
        if name.ends_with(".deleted") || name.ends_with(".cleaned") || name.ends_with(".swap") {
            remove_if_exists(fs, &dir.join(name))?;
            continue;
        }
        if let Some((base, "log")) = parse_segment_name(name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    bases.dedup();
    // Index files without a log are leftovers of a deletion.
    for (name, _) in &entries {
        if let Some((base, "index" | "timeindex" | "txnindex" | "snapshot")) =
            parse_segment_name(name)
        {
            if bases.binary_search(&base).is_err() {
                remove_if_exists(fs, &dir.join(name))?;
            }
        }
    }
    let rp = recovery_point.unwrap_or(0);
    let mut segments: Vec<Segment> = Vec::new();
    let mut scanning = false;
    let mut i = 0;
    while i < bases.len() {
        let base = bases[i];
        let next_base = bases.get(i + 1).copied();
        if segments
            .last()
            .is_some_and(|prev| base < prev.next_offset())
        {
            // Overlaps the previous segment: not something we wrote. Drop it and what follows.
            tracing::warn!(dir = %dir.display(), base, "segment overlaps its predecessor; deleting it and later segments");
            for &later in &bases[i..] {
                delete_segment_files(fs, dir, later)?;
                report.deleted_segments += 1;
            }
            fs.sync_dir(dir)?;
            break;
        }
        let trusted = !scanning && next_base.is_some_and(|n| n < rp);
        if trusted {
            if let Some(n) = next_base {
                if let Some(seg) = load_trusted(fs, dir, base, n, opts)? {
                    report.trusted_segments += 1;
                    segments.push(seg);
                    i += 1;
                    continue;
                }
                tracing::warn!(dir = %dir.display(), base, "bad index files below the recovery point; rescanning");
            }
        }
        scanning = true;
        let is_last = next_base.is_none();
        // Only the first scanned segment holds the recovery point; after it, everything is scanned.
        let resume_below = (report.scanned_segments == 0).then_some(rp);
        let (seg, truncated) =
            scan_segment(fs, dir, base, is_last, resume_below, opts, &mut report)?;
        // A scanned segment that ends before the next one begins lost its tail in the crash
        // (cut at a batch boundary, so nothing looked torn): the later segments hold data
        // written after records that are gone, and would leave a hole below the end offset.
        // Nothing makes such gaps on purpose while there is no compaction.
        let gap = next_base.is_some_and(|n| n > seg.next_offset());
        if gap {
            tracing::warn!(dir = %dir.display(), base, next = seg.next_offset(), "segment ends before the next one starts; deleting later segments");
        }
        segments.push(seg);
        if truncated || gap {
            for &later in &bases[i + 1..] {
                delete_segment_files(fs, dir, later)?;
                report.deleted_segments += 1;
            }
            fs.sync_dir(dir)?;
            break;
        }
        i += 1;
    }
    let end = segments.last().map_or(0, Segment::next_offset);
    if log_start.is_some_and(|start| start > end) {
        // The checkpointed log start is past what survived (DeleteRecords up to offsets not
        // yet flushed, then a crash). Offsets below it were reported deleted, so they must not
        // be handed out again: start an empty log at the log start, as Kafka does.
        tracing::warn!(dir = %dir.display(), end, ?log_start, "log start is past the recovered end; starting an empty log there");
        for seg in segments.drain(..) {
            delete_segment_files(fs, dir, seg.base_offset())?;
            report.deleted_segments += 1;
        }
    }
    if let Some(last) = segments.last_mut() {
        last.make_writable(fs)?;
    }
    if segments.is_empty() {
        let base = log_start.unwrap_or(0).max(0);
        segments.push(Segment::create(fs, dir, base, opts.index_interval_bytes)?);
        fs.sync_dir(dir)?;
    }
    let first_base = segments.first().map_or(0, Segment::base_offset);
    let log_start_offset = log_start.unwrap_or(first_base).max(first_base);
    let (producers, scanned_txns) = rebuild_producers(dir, &segments)?;
    let end_offset = segments.last().map_or(0, Segment::next_offset);
    let txns = rebuild_txn_state(dir, &segments, end_offset, scanned_txns)?;
    if report.truncated_bytes > 0 || report.deleted_segments > 0 {
        tracing::info!(partition = %tp, ?report, "recovered partition log");
    }
    let log = PartitionLog::from_parts(
        tp,
        dir,
        topic_id,
        opts.clone(),
        segments,
        log_start_offset,
        producers,
        rp,
        flush,
        io,
    )?;
    log.set_recovery_report(report.clone());
    log.set_txn_state(txns);
    log.set_epoch_cache(LeaderEpochCache::load(
        dir,
        log_start_offset.min(end_offset),
        end_offset,
    )?);
    Ok((log, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names() {
        assert_eq!(
            parse_segment_name("00000000000000000042.log"),
            Some((42, "log"))
        );
        assert_eq!(
            parse_segment_name("00000000000000000042.index"),
            Some((42, "index"))
        );
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.log"), None);
        assert_eq!(parse_segment_name("partition.metadata"), None);
    }
}
