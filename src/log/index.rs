//! The sparse offset index (`.index`): 8-byte big-endian entries of (relative offset, file
//! position), append-only on disk and mirrored in memory. Also the raw index-file I/O shared
//! with the time index. Not thread-safe by itself: owned by a segment under the partition lock.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::io::{create_truncated, FsIo};

/// Size of one offset index entry.
pub const ENTRY_LEN: usize = 8;

/// Reads a whole index file; a missing file reads as `None`.
pub(crate) fn read_index_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match File::open(path) {
        Ok(mut f) => {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            Ok(Some(buf))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the content of an index file with `bytes` and returns a writable handle to it.
pub(crate) fn rewrite_index_file(io: &dyn FsIo, path: &Path, bytes: &[u8]) -> io::Result<File> {
    let f = create_truncated(io, path)?;
    f.write_all_at(bytes, 0)?;
    Ok(f)
}

/// An index file of the active segment, appended to by path: opened for each (sparse) entry
/// write and closed again, so a partition holds one descriptor (its active `.log`), not three.
/// That keeps ten thousand partitions well inside a process's descriptor limit.
#[derive(Debug, Clone)]
pub(crate) struct IndexFile {
    path: std::path::PathBuf,
}

impl IndexFile {
    /// Makes sure the file exists (creating it empty if not) and returns its handle.
    pub(crate) fn open(io: &dyn FsIo, path: &Path) -> io::Result<IndexFile> {
        open_index_for_append(io, path)?;
        Ok(IndexFile {
            path: path.to_path_buf(),
        })
    }

    /// Writes one entry at byte `at`.
    pub(crate) fn write_at(&self, entry: &[u8], at: u64) -> io::Result<()> {
        OpenOptions::new()
            .write(true)
            .open(&self.path)?
            .write_all_at(entry, at)
    }

    /// fdatasyncs the file (through a fresh descriptor: fsync flushes the file, not the fd).
    pub(crate) fn sync(&self, io: &dyn FsIo) -> io::Result<()> {
        io.sync_data(&OpenOptions::new().write(true).open(&self.path)?)
    }
}

/// Writes one index entry at byte `at`.
pub(crate) fn write_entry_at(f: &IndexFile, entry: &[u8], at: u64) -> io::Result<()> {
    f.write_at(entry, at)
}

/// Opens an existing index file for appending at its current end.
pub(crate) fn open_index_for_append(io: &dyn FsIo, path: &Path) -> io::Result<File> {
    io.open(
        path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
}

/// Offset index of one segment. As in Kafka, entries map a batch's last offset (relative to the
/// segment base) to the batch's byte position. A lookup returns the position of the greatest entry
/// at or below the target: the batch containing the target starts there or later.
#[derive(Debug)]
pub struct OffsetIndex {
    entries: Vec<(i32, u32)>,
    /// Present only while the segment is active (appendable).
    file: Option<IndexFile>,
}

impl OffsetIndex {
    /// An index over `entries`, appending to `file` if given.
    pub(crate) fn new(entries: Vec<(i32, u32)>, file: Option<IndexFile>) -> Self {
        OffsetIndex { entries, file }
    }

    /// Parses index bytes, checking size and strict monotonicity of both columns and that every
    /// position lies below `log_len`. Returns `None` if the file is unusable (then rebuild it).
    pub(crate) fn parse(bytes: &[u8], log_len: u64) -> Option<Vec<(i32, u32)>> {
        if !bytes.len().is_multiple_of(ENTRY_LEN) {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len() / ENTRY_LEN);
        for e in bytes.chunks_exact(ENTRY_LEN) {
            let rel = i32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            if rel < 0 || u64::from(pos) >= log_len {
                return None;
            }
            if let Some(&(r0, p0)) = out.last() {
                if rel <= r0 || pos <= p0 {
                    return None;
                }
            }
            out.push((rel, pos));
        }
        Some(out)
    }

    /// Serialises entries in the on-disk format.
    pub(crate) fn encode(entries: &[(i32, u32)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN);
        for (rel, pos) in entries {
            out.extend_from_slice(&rel.to_be_bytes());
            out.extend_from_slice(&pos.to_be_bytes());
        }
        out
    }

    /// Appends an entry in memory and, for an active segment, on disk.
    pub(crate) fn append(&mut self, rel: i32, pos: u32) -> io::Result<()> {
        if let Some(&(r0, _)) = self.entries.last() {
            if rel <= r0 {
                return Ok(());
            }
        }
        if let Some(f) = &self.file {
            let at = (self.entries.len() * ENTRY_LEN) as u64;
            let mut e = [0u8; ENTRY_LEN];
            e[..4].copy_from_slice(&rel.to_be_bytes());
            e[4..].copy_from_slice(&pos.to_be_bytes());
            write_entry_at(f, &e, at)?;
        }
        self.entries.push((rel, pos));
        Ok(())
    }

    /// Position to start scanning for relative offset `rel`: that of the greatest entry ≤ `rel`, or 0.
    pub fn lookup(&self, rel: i64) -> u32 {
        let i = self.entries.partition_point(|&(r, _)| i64::from(r) <= rel);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries, for tests and checks.
    pub fn entries(&self) -> &[(i32, u32)] {
        &self.entries
    }

    /// Detaches the writable file (on roll) so the caller can fsync and close it.
    pub(crate) fn take_file(&mut self) -> Option<IndexFile> {
        self.file.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_checks_shape() {
        let e = vec![(1, 100), (5, 4200), (9, 9000)];
        let b = OffsetIndex::encode(&e);
        assert_eq!(OffsetIndex::parse(&b, 10_000), Some(e.clone()));
        assert_eq!(OffsetIndex::parse(&b, 9000), None);
        assert_eq!(OffsetIndex::parse(&b[..7], 10_000), None);
        let bad = OffsetIndex::encode(&[(5, 100), (4, 200)]);
        assert_eq!(OffsetIndex::parse(&bad, 10_000), None);
        let idx = OffsetIndex::new(e, None);
        assert_eq!(idx.lookup(0), 0);
        assert_eq!(idx.lookup(1), 100);
        assert_eq!(idx.lookup(8), 4200);
        assert_eq!(idx.lookup(100), 9000);
    }
}
