//! The sparse time index (`.timeindex`): 12-byte big-endian entries of (max timestamp so far,
//! relative last offset of the batch carrying it, as Kafka writes it). Timestamps only grow. Not
//! thread-safe by itself: owned by a segment under the partition lock. Raw file I/O lives in
//! `index.rs`.

use std::io;

use super::index::{write_entry_at, IndexFile};

/// Size of one time index entry.
pub const ENTRY_LEN: usize = 12;

/// Time index of one segment.
#[derive(Debug)]
pub struct TimeIndex {
    entries: Vec<(i64, i32)>,
    file: Option<IndexFile>,
}

impl TimeIndex {
    /// An index over `entries`, appending to `file` if given.
    pub(crate) fn new(entries: Vec<(i64, i32)>, file: Option<IndexFile>) -> Self {
        TimeIndex { entries, file }
    }

    /// Parses time index bytes; `None` if the size or monotonicity is wrong.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Vec<(i64, i32)>> {
        if !bytes.len().is_multiple_of(ENTRY_LEN) {
            return None;
        }
        let mut out: Vec<(i64, i32)> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
        for e in bytes.chunks_exact(ENTRY_LEN) {
            let mut t = [0u8; 8];
            t.copy_from_slice(&e[..8]);
            let ts = i64::from_be_bytes(t);
            let rel = i32::from_be_bytes([e[8], e[9], e[10], e[11]]);
            if rel < 0 {
                return None;
            }
            if let Some(&(t0, r0)) = out.last() {
                if ts <= t0 || rel < r0 {
                    return None;
                }
            }
            out.push((ts, rel));
        }
        Some(out)
    }

    /// Serialises entries in the on-disk format.
    pub(crate) fn encode(entries: &[(i64, i32)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN);
        for (ts, rel) in entries {
            out.extend_from_slice(&ts.to_be_bytes());
            out.extend_from_slice(&rel.to_be_bytes());
        }
        out
    }

    /// Appends (ts, rel) if `ts` is greater than the last entry's timestamp.
    pub(crate) fn maybe_append(&mut self, ts: i64, rel: i32) -> io::Result<()> {
        if let Some(&(t0, r0)) = self.entries.last() {
            if ts <= t0 || rel < r0 {
                return Ok(());
            }
        }
        if let Some(f) = &self.file {
            let at = (self.entries.len() * ENTRY_LEN) as u64;
            let mut e = [0u8; ENTRY_LEN];
            e[..8].copy_from_slice(&ts.to_be_bytes());
            e[8..].copy_from_slice(&rel.to_be_bytes());
            write_entry_at(f, &e, at)?;
        }
        self.entries.push((ts, rel));
        Ok(())
    }

    /// Relative offset of the last entry whose timestamp is < `ts`: no record before that
    /// entry's batch can have a timestamp ≥ `ts`. `None` if there is no such entry.
    pub fn last_below(&self, ts: i64) -> Option<i32> {
        let i = self.entries.partition_point(|&(t, _)| t < ts);
        if i == 0 {
            None
        } else {
            Some(self.entries[i - 1].1)
        }
    }

    /// Entries, for tests and checks.
    pub fn entries(&self) -> &[(i64, i32)] {
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
    fn parse_and_lookup() {
        let e = vec![(10, 0), (20, 3), (35, 9)];
        let b = TimeIndex::encode(&e);
        assert_eq!(TimeIndex::parse(&b), Some(e.clone()));
        assert_eq!(TimeIndex::parse(&b[..11]), None);
        assert_eq!(
            TimeIndex::parse(&TimeIndex::encode(&[(10, 0), (5, 1)])),
            None
        );
        let t = TimeIndex::new(e, None);
        assert_eq!(t.last_below(10), None);
        assert_eq!(t.last_below(11), Some(0));
        assert_eq!(t.last_below(36), Some(9));
    }
}
