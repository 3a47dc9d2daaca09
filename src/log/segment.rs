//! One log segment: the `.log` file of whole batches plus its offset and time indexes, and all
//! raw `.log` file I/O (append, pread, header scans, truncation). A `Segment` is not thread-safe
//! by itself: it is owned by a partition under the partition lock. Its log file is shared as an
//! `Arc<File>` so reads can `pread` outside that lock.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::records::batch::{BatchHeader, CRC_START, HEADER_LEN};

use super::index::{rewrite_index_file, IndexFile, OffsetIndex};
use super::io::{create_truncated, remove_if_exists, FsIo};
use super::time_index::TimeIndex;

/// File name of a segment file: 20-digit zero-padded base offset plus extension.
pub fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Builds sparse index entries as batches are appended or scanned, so append and recovery
/// produce identical indexes.
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    base_offset: i64,
    interval: u64,
    bytes_since_index: u64,
    pub(crate) max_timestamp: i64,
    /// Last offset of the batch carrying `max_timestamp` (Kafka's "shallow" offset), -1 if none.
    pub(crate) offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch, the base of `segment.ms` rolls; `None` while empty.
    pub(crate) first_batch_timestamp: Option<i64>,
}

/// Entries to add after one batch, if any.
pub(crate) struct IndexAdd {
    pub(crate) offset: Option<(i32, u32)>,
    pub(crate) time: Option<(i64, i32)>,
}

impl IndexBuilder {
    pub(crate) fn new(base_offset: i64, interval: u32) -> Self {
        IndexBuilder {
            base_offset,
            interval: u64::from(interval),
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            first_batch_timestamp: None,
        }
    }

    /// Changes the index interval for batches added from now on (`index.interval.bytes`).
    pub(crate) fn set_interval(&mut self, interval: u32) {
        self.interval = u64::from(interval);
    }

    fn rel(&self, offset: i64) -> i32 {
        i32::try_from(offset - self.base_offset).unwrap_or(i32::MAX)
    }

    /// Accounts for a batch at `pos` whose last offset is `last` and says which index entries
    /// to write. As in Kafka, entries are keyed by the batch's last offset.
    /// The builder as it stood right after adding an index entry for a batch of `size` bytes:
    /// used when recovery resumes scanning after the last durable index entry.
    pub(crate) fn resumed(
        base_offset: i64,
        interval: u32,
        last_entry_batch_size: u64,
        max_timestamp: Option<(i64, i64)>,
        first_batch_timestamp: i64,
    ) -> Self {
        let mut b = IndexBuilder::new(base_offset, interval);
        b.bytes_since_index = last_entry_batch_size;
        if let Some((ts, offset)) = max_timestamp {
            b.max_timestamp = ts;
            b.offset_of_max_timestamp = offset;
        }
        b.first_batch_timestamp = Some(first_batch_timestamp);
        b
    }

    pub(crate) fn add(&mut self, pos: u64, last: i64, max_ts: i64, size: u64) -> IndexAdd {
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(max_ts);
        }
        if max_ts > self.max_timestamp {
            self.max_timestamp = max_ts;
            self.offset_of_max_timestamp = last;
        }
        let mut add = IndexAdd {
            offset: None,
            time: None,
        };
        if self.bytes_since_index >= self.interval && pos > 0 {
            add.offset = u32::try_from(pos).ok().map(|p| (self.rel(last), p));
            if self.offset_of_max_timestamp >= 0 {
                add.time = Some((self.max_timestamp, self.rel(self.offset_of_max_timestamp)));
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += size;
        add
    }

    /// The final time index entry written when the segment is sealed.
    pub(crate) fn final_time_entry(&self) -> Option<(i64, i32)> {
        (self.offset_of_max_timestamp >= 0)
            .then(|| (self.max_timestamp, self.rel(self.offset_of_max_timestamp)))
    }
}

/// Files of a segment that was just sealed by a roll; the flusher fsyncs and then drops them.
#[derive(Debug)]
pub(crate) struct SealedFiles {
    base_offset: i64,
    /// Set when retention deleted the segment before the flusher got to it: its files need no
    /// sync any more (the index files are synced by path, which is gone), only the snapshot.
    deleted: bool,
    log: Arc<File>,
    index: Option<IndexFile>,
    time_index: Option<IndexFile>,
    /// The producer-state snapshot taken at the roll, written with the sealed files: the
    /// base offset it describes (the new segment's), its path and bytes.
    snapshot: Option<(i64, PathBuf, Vec<u8>)>,
}

/// Why [`Segment::append`] failed.
#[derive(Debug)]
pub(crate) enum AppendFailure {
    /// Writing the batch failed: nothing in memory advanced, but a prefix of the batch may sit
    /// past the segment's size in the file (the caller truncates it away).
    Write(io::Error),
    /// The batch was written but an index write failed.
    Index(io::Error),
}

impl SealedFiles {
    /// fdatasyncs the log (through `io`) and both index files.
    /// Attaches the producer-state snapshot as of offset `base` to write at `path` when these
    /// files are synced.
    pub(crate) fn with_snapshot(mut self, base: i64, path: PathBuf, bytes: Vec<u8>) -> Self {
        self.snapshot = Some((base, path, bytes));
        self
    }

    /// Forgets the pending snapshot if it describes an offset past `end` (a truncation removed
    /// the history it was taken from).
    pub(crate) fn drop_snapshot_past(&mut self, end: i64) {
        if self
            .snapshot
            .as_ref()
            .is_some_and(|(base, _, _)| *base > end)
        {
            self.snapshot = None;
        }
    }

    /// The sealed segment's base offset.
    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Records that the segment's files were deleted (retention) before they were synced.
    pub(crate) fn mark_deleted(&mut self) {
        self.deleted = true;
    }

    pub(crate) fn sync(&self, io: &dyn FsIo) -> io::Result<()> {
        if !self.deleted {
            io.sync_data(&self.log)?;
            if let Some(f) = &self.index {
                f.sync(io)?;
            }
            if let Some(f) = &self.time_index {
                f.sync(io)?;
            }
        }
        if let Some((_, path, bytes)) = &self.snapshot {
            // After the data it describes is durable, off the append path; the caller then
            // syncs the directory. A crash before this only makes recovery start from an older
            // snapshot and scan more batch headers.
            let mut f = create_truncated(io, path)?;
            io::Write::write_all(&mut f, bytes)?;
            io.sync_data(&f)?;
        }
        Ok(())
    }
}

/// The `.log` file of a segment: held open while the segment is active, looked up in the
/// bounded descriptor cache ([`super::fd_cache`]) once sealed.
#[derive(Debug)]
enum LogHandle {
    Open(Arc<File>),
    Cached(PathBuf),
}

/// A segment. See the module docs for its thread-safety contract.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    dir: PathBuf,
    log: LogHandle,
    writable: bool,
    pub(crate) index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    pub(crate) builder: IndexBuilder,
    size: u64,
    next_offset: i64,
    /// Random per segment: picks its `segment.jitter.ms` (see `LogConfig::roll_jitter_ms`).
    pub(crate) roll_seed: u64,
}

/// Parameters for [`Segment::open`], as established by recovery.
pub(crate) struct SegmentState {
    pub(crate) index: Vec<(i32, u32)>,
    pub(crate) time_index: Vec<(i64, i32)>,
    pub(crate) builder: IndexBuilder,
    pub(crate) size: u64,
    pub(crate) next_offset: i64,
}

impl Segment {
    /// Creates an empty active segment (truncating leftovers with the same name).
    pub(crate) fn create(
        io: &dyn FsIo,
        dir: &Path,
        base_offset: i64,
        interval: u32,
    ) -> io::Result<Segment> {
        // A producer snapshot left by an earlier incarnation of this offset describes another
        // history; the roll writes the right one once the sealed segment is synced.
        remove_if_exists(io, &dir.join(file_name(base_offset, "snapshot")))?;
        let log = create_truncated(io, &dir.join(file_name(base_offset, "log")))?;
        let ipath = dir.join(file_name(base_offset, "index"));
        let tpath = dir.join(file_name(base_offset, "timeindex"));
        rewrite_index_file(io, &ipath, &[])?;
        rewrite_index_file(io, &tpath, &[])?;
        let index = IndexFile::open(io, &ipath)?;
        let time = IndexFile::open(io, &tpath)?;
        Ok(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log: LogHandle::Open(Arc::new(log)),
            writable: true,
            index: OffsetIndex::new(Vec::new(), Some(index)),
            time_index: TimeIndex::new(Vec::new(), Some(time)),
            builder: IndexBuilder::new(base_offset, interval),
            size: 0,
            next_offset: base_offset,
            roll_seed: crate::common::clock::random_u64(),
        })
    }

    /// Opens an existing segment with state from recovery. `writable` for the active one: the
    /// index files are then reopened for appending at their current ends.
    pub(crate) fn open(
        io: &dyn FsIo,
        dir: &Path,
        base_offset: i64,
        writable: bool,
        st: SegmentState,
    ) -> io::Result<Segment> {
        let path = dir.join(file_name(base_offset, "log"));
        let log = if writable {
            LogHandle::Open(Arc::new(
                OpenOptions::new().read(true).write(true).open(&path)?,
            ))
        } else {
            // Sealed: opened on demand through the descriptor cache.
            if !path.is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} is missing", path.display()),
                ));
            }
            LogHandle::Cached(path)
        };
        let (ifile, tfile) = if writable {
            (
                Some(IndexFile::open(
                    io,
                    &dir.join(file_name(base_offset, "index")),
                )?),
                Some(IndexFile::open(
                    io,
                    &dir.join(file_name(base_offset, "timeindex")),
                )?),
            )
        } else {
            (None, None)
        };
        Ok(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log,
            writable,
            index: OffsetIndex::new(st.index, ifile),
            time_index: TimeIndex::new(st.time_index, tfile),
            builder: st.builder,
            size: st.size,
            next_offset: st.next_offset,
            roll_seed: crate::common::clock::random_u64(),
        })
    }

    /// Base offset (first offset this segment may hold).
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    /// Bytes of whole batches in the `.log` file.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Last offset + 1, or the base offset if empty.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    /// Greatest batch max timestamp and the last offset of that batch; -1s if empty.
    pub fn max_timestamp(&self) -> (i64, i64) {
        (
            self.builder.max_timestamp,
            self.builder.offset_of_max_timestamp,
        )
    }
    /// True when the offset index (8 bytes an entry) or the time index (12 bytes an entry, one
    /// kept free for the entry written at seal) has no room left under `max_index_bytes`
    /// (`segment.index.bytes`): the segment must roll before the next append.
    pub(crate) fn index_full(&self, max_index_bytes: u32) -> bool {
        let max = max_index_bytes as usize;
        self.index.len() >= max / super::index::ENTRY_LEN
            || self.time_index.entries().len() + 1 >= max / super::time_index::ENTRY_LEN
    }

    /// A shared read handle of the `.log` file (from the descriptor cache once sealed).
    pub(crate) fn log_file(&self) -> io::Result<Arc<File>> {
        match &self.log {
            LogHandle::Open(f) => Ok(Arc::clone(f)),
            LogHandle::Cached(path) => super::fd_cache::global().get(path),
        }
    }

    /// Writes one batch at the end: the stamped copy of its first bytes (`head`, 16 bytes, or
    /// the whole 61-byte header when the broker rewrote timestamps), then the rest of the batch
    /// unchanged; updates indexes. On error nothing in memory advances (the caller poisons).
    pub(crate) fn append(
        &mut self,
        io: &dyn FsIo,
        head: &[u8],
        rest: &[u8],
        last_offset: i64,
        max_timestamp: i64,
    ) -> Result<(), AppendFailure> {
        if !self.writable {
            return Err(AppendFailure::Index(io::Error::other(
                "append to a sealed segment",
            )));
        }
        let LogHandle::Open(log) = &self.log else {
            return Err(AppendFailure::Index(io::Error::other(
                "append to a sealed segment",
            )));
        };
        let pos = self.size;
        io.write_at(log, head, rest, pos)
            .map_err(AppendFailure::Write)?;
        let len = (head.len() + rest.len()) as u64;
        let add = self.builder.add(pos, last_offset, max_timestamp, len);
        if let Some((rel, p)) = add.offset {
            self.index.append(rel, p).map_err(AppendFailure::Index)?;
        }
        if let Some((ts, rel)) = add.time {
            self.time_index
                .maybe_append(ts, rel)
                .map_err(AppendFailure::Index)?;
        }
        self.size += len;
        self.next_offset = last_offset + 1;
        Ok(())
    }

    /// Seals the active segment on roll: writes the final time index entry, reopens the log
    /// read-only and hands the writable handles back for the flusher to sync.
    pub(crate) fn seal(&mut self) -> io::Result<SealedFiles> {
        if let Some((ts, rel)) = self.builder.final_time_entry() {
            self.time_index.maybe_append(ts, rel)?;
        }
        let path = self.dir.join(file_name(self.base_offset, "log"));
        let old = match std::mem::replace(&mut self.log, LogHandle::Cached(path.clone())) {
            LogHandle::Open(f) => f,
            LogHandle::Cached(_) => super::fd_cache::global().get(&path)?,
        };
        self.writable = false;
        Ok(SealedFiles {
            base_offset: self.base_offset,
            deleted: false,
            log: old,
            index: self.index.take_file(),
            time_index: self.time_index.take_file(),
            snapshot: None,
        })
    }

    /// Cuts the active segment's `.log` to `len` bytes (a batch boundary) and makes that
    /// durable, then brings the indexes and the index builder to what appending the remaining
    /// batches would have made: index entries pointing at or past the cut go, and the batches
    /// after the last kept entry (about `index.interval.bytes` of them) are rescanned, as
    /// recovery does when it resumes. Both index files are rewritten and fsynced. Returns the
    /// segment's new next offset. The caller holds the partition lock.
    pub(crate) fn truncate_to(
        &mut self,
        io: &dyn FsIo,
        len: u64,
        interval: u32,
    ) -> io::Result<i64> {
        let LogHandle::Open(log) = &self.log else {
            return Err(io::Error::other("truncation of a sealed segment"));
        };
        let log = Arc::clone(log);
        io.set_len(&log, len)?;
        io.sync_all(&log)?;
        let base = self.base_offset;
        let mut index: Vec<(i32, u32)> = self
            .index
            .entries()
            .iter()
            .copied()
            .take_while(|&(_, p)| u64::from(p) < len)
            .collect();
        let (mut builder, start, next) = match index.last().copied() {
            Some((rel, p)) => {
                let size = read_header(&log, u64::from(p), len)?
                    .and_then(|hb| BatchHeader::new(&hb).and_then(|h| h.total_size()))
                    .ok_or_else(|| io::Error::other("index entry past the cut"))?
                    as u64;
                // Time entries made at or before the kept index point name batches at or
                // before it (recovery's resume rule).
                let max = self
                    .time_index
                    .entries()
                    .iter()
                    .take_while(|&&(_, r)| r <= rel)
                    .last()
                    .map(|&(ts, r)| (ts, base + i64::from(r)));
                let first = read_header(&log, 0, len)?
                    .and_then(|hb| BatchHeader::new(&hb).map(|h| h.max_timestamp()))
                    .unwrap_or(-1);
                (
                    IndexBuilder::resumed(base, interval, size, max, first),
                    u64::from(p) + size,
                    base + i64::from(rel) + 1,
                )
            }
            None => (IndexBuilder::new(base, interval), 0, base),
        };
        let last_rel = index.last().map(|&(r, _)| r);
        let mut time: Vec<(i64, i32)> = self
            .time_index
            .entries()
            .iter()
            .copied()
            .take_while(|&(_, r)| last_rel.is_some_and(|l| r <= l))
            .collect();
        let mut next_offset = next;
        let valid = scan_valid_from(&log, base, start, next, |pos, h| {
            let size = h.total_size().unwrap_or(0) as u64;
            let add = builder.add(pos, h.last_offset(), h.max_timestamp(), size);
            if let Some(e) = add.offset {
                index.push(e);
            }
            if let Some((ts, rel)) = add.time {
                if time.last().is_none_or(|&(t0, r0)| ts > t0 && rel >= r0) {
                    time.push((ts, rel));
                }
            }
            next_offset = h.next_offset().unwrap_or(next_offset);
        })?;
        if valid != len {
            return Err(io::Error::other(format!(
                "segment {base}: batches end at byte {valid}, not at the cut {len}"
            )));
        }
        let ipath = self.dir.join(file_name(base, "index"));
        let tpath = self.dir.join(file_name(base, "timeindex"));
        let f = rewrite_index_file(io, &ipath, &OffsetIndex::encode(&index))?;
        io.sync_data(&f)?;
        let t = rewrite_index_file(io, &tpath, &TimeIndex::encode(&time))?;
        io.sync_data(&t)?;
        self.index = OffsetIndex::new(index, Some(IndexFile::open(io, &ipath)?));
        self.time_index = TimeIndex::new(time, Some(IndexFile::open(io, &tpath)?));
        if len == 0 {
            builder = IndexBuilder::new(base, interval);
        }
        self.builder = builder;
        self.size = len;
        self.next_offset = next_offset;
        Ok(next_offset)
    }

    /// Reopens a sealed segment for appending (recovery, when later segments were dropped).
    /// Its in-memory indexes must match the index files, which are appended to at their ends.
    pub(crate) fn make_writable(&mut self, io: &dyn FsIo) -> io::Result<()> {
        if self.writable {
            return Ok(());
        }
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(file_name(self.base_offset, "log")))?;
        let ifile = IndexFile::open(io, &self.dir.join(file_name(self.base_offset, "index")))?;
        let tfile = IndexFile::open(io, &self.dir.join(file_name(self.base_offset, "timeindex")))?;
        self.index = OffsetIndex::new(self.index.entries().to_vec(), Some(ifile));
        self.time_index = TimeIndex::new(self.time_index.entries().to_vec(), Some(tfile));
        self.log = LogHandle::Open(Arc::new(log));
        self.writable = true;
        Ok(())
    }
}

/// Writes `a` then `b` at `pos` with one `pwritev(2)` in the common case, finishing a short
/// write with plain `pwrite`s.
#[allow(unsafe_code, reason = "pwritev has no safe std wrapper")]
pub(crate) fn write_two_at(file: &File, a: &[u8], b: &[u8], pos: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let off = libc::off_t::try_from(pos).map_err(|_| io::Error::other("file offset overflow"))?;
    let iov = [
        libc::iovec {
            iov_base: a.as_ptr() as *mut libc::c_void,
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        },
    ];
    let written = loop {
        // SAFETY: both iovecs point into slices that outlive the call and are only read by the
        // kernel; the descriptor is owned by `file`, which is borrowed for the call.
        let r = unsafe { libc::pwritev(file.as_raw_fd(), iov.as_ptr(), 2, off) };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    if written < a.len() {
        file.write_all_at(&a[written..], pos + written as u64)?;
        file.write_all_at(b, pos + a.len() as u64)?;
    } else if written < a.len() + b.len() {
        file.write_all_at(&b[written - a.len()..], pos + written as u64)?;
    }
    Ok(())
}

/// Reads the 61-byte batch header at `pos` if one fits below `end`.
pub(crate) fn read_header(file: &File, pos: u64, end: u64) -> io::Result<Option<[u8; HEADER_LEN]>> {
    if pos.saturating_add(HEADER_LEN as u64) > end {
        return Ok(None);
    }
    let mut h = [0u8; HEADER_LEN];
    file.read_exact_at(&mut h, pos)?;
    Ok(Some(h))
}

/// Reads `[start, end)` of a file into a new buffer.
pub(crate) fn read_range(file: &File, start: u64, end: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(end.saturating_sub(start))
        .map_err(|_| io::Error::other("read range too large"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, start)?;
    Ok(buf)
}

/// Current length of a file.
pub(crate) fn file_len(file: &File) -> io::Result<u64> {
    Ok(file.metadata()?.len())
}

/// Opens a segment's `.log` read-only (for recovery scans).
pub(crate) fn open_log_read(dir: &Path, base_offset: i64) -> io::Result<File> {
    File::open(dir.join(file_name(base_offset, "log")))
}

/// CRC-32C of `file[pos+21 .. pos+total)`, streamed in 64 KiB chunks.
fn crc_of(file: &File, pos: u64, total: u64, buf: &mut [u8]) -> io::Result<u32> {
    let mut crc = 0u32;
    let mut at = pos + CRC_START as u64;
    let end = pos + total;
    while at < end {
        let n = usize::try_from((end - at).min(buf.len() as u64)).unwrap_or(buf.len());
        file.read_exact_at(&mut buf[..n], at)?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        at += n as u64;
    }
    Ok(crc)
}

/// Scans batches, checking framing, magic, record count, offsets (≥ segment base,
/// increasing, relative offset fits i32) and CRC. Calls `on_batch(pos, header)` for every valid
/// batch and returns the byte length of the valid prefix. Never panics on garbage.
///
/// Starts at byte `start`, where the next batch must begin at or after offset `expected_next`
/// (0 and the segment's base for a whole segment; recovery resumes after the last batch known to
/// be durable).
pub(crate) fn scan_valid_from(
    file: &File,
    seg_base: i64,
    start: u64,
    expected_next: i64,
    mut on_batch: impl FnMut(u64, &BatchHeader<'_>),
) -> io::Result<u64> {
    let len = file_len(file)?;
    let mut pos = start;
    let mut expected_next = expected_next;
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(hbuf) = read_header(file, pos, len)? {
        let h = match BatchHeader::new(&hbuf) {
            Some(h) => h,
            None => break,
        };
        let total = match h.total_size() {
            Some(t) if t >= HEADER_LEN && pos + t as u64 <= len => t as u64,
            _ => break,
        };
        let lod = h.last_offset_delta();
        // Compaction leaves batches with fewer records than offsets (even none).
        let ok = h.magic() == 2
            && h.offsets_valid()
            && h.record_count() >= 0
            && i64::from(h.record_count()) <= i64::from(lod) + 1
            && h.base_offset() >= expected_next
            && h.last_offset() - seg_base <= i64::from(i32::MAX);
        if !ok || crc_of(file, pos, total, &mut buf)? != h.crc() {
            break;
        }
        on_batch(pos, &h);
        expected_next = h.last_offset() + 1;
        pos += total;
    }
    Ok(pos)
}

/// Truncates a segment's `.log` to `len` bytes and fsyncs it.
pub(crate) fn truncate_log(
    io: &dyn FsIo,
    dir: &Path,
    base_offset: i64,
    len: u64,
) -> io::Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(dir.join(file_name(base_offset, "log")))?;
    io.set_len(&f, len)?;
    io.sync_all(&f)
}

/// Removes a segment's `.log`, `.index` and `.timeindex` (missing files are fine).
pub(crate) fn delete_segment_files(io: &dyn FsIo, dir: &Path, base_offset: i64) -> io::Result<()> {
    super::fd_cache::global().forget(&dir.join(file_name(base_offset, "log")));
    for ext in ["log", "index", "timeindex", "txnindex", "snapshot"] {
        remove_if_exists(io, &dir.join(file_name(base_offset, ext)))?;
    }
    Ok(())
}

/// Writes rebuilt index files for a segment; fsyncs them if `sync`.
pub(crate) fn write_indexes(
    io: &dyn FsIo,
    dir: &Path,
    base_offset: i64,
    index: &[(i32, u32)],
    time_index: &[(i64, i32)],
    sync: bool,
) -> io::Result<()> {
    let f = rewrite_index_file(
        io,
        &dir.join(file_name(base_offset, "index")),
        &OffsetIndex::encode(index),
    )?;
    let t = rewrite_index_file(
        io,
        &dir.join(file_name(base_offset, "timeindex")),
        &TimeIndex::encode(time_index),
    )?;
    if sync {
        io.sync_data(&f)?;
        io.sync_data(&t)?;
    }
    Ok(())
}
