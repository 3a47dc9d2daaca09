//! Streams the whole batches of a segment file through a bounded buffer, so the log cleaner
//! never holds a whole segment (up to `segment.bytes`, 1 GiB by default) in memory: reads go
//! through `pread` in chunks of [`CHUNK`] bytes, and only a batch larger than that gets a
//! buffer of its own size (batches are bounded by `max.message.bytes`).

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::records::batch::{BatchHeader, HEADER_LEN};

use super::LogError;

/// Bytes read from the file at a time.
pub(crate) const CHUNK: usize = 1 << 20;

/// Reads the batches of `file[0..end)` in order. See the module docs.
pub(crate) struct BatchReader<'a> {
    file: &'a File,
    end: u64,
    /// File position of the next batch.
    pos: u64,
    /// `buf` holds `file[buf_start .. buf_start + buf.len())`.
    buf: Vec<u8>,
    buf_start: u64,
}

fn corrupt(pos: u64, what: &str) -> LogError {
    LogError::Corrupt(format!("batch at byte {pos}: {what}"))
}

impl<'a> BatchReader<'a> {
    /// A reader of the batches in the first `end` bytes of `file`.
    pub(crate) fn new(file: &'a File, end: u64) -> Self {
        BatchReader {
            file,
            end,
            pos: 0,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// Makes `buf` cover `file[at .. at + len)`, reading at least a chunk.
    fn fill(&mut self, at: u64, len: usize) -> Result<(), LogError> {
        let have =
            self.buf_start <= at && at + len as u64 <= self.buf_start + self.buf.len() as u64;
        if have {
            return Ok(());
        }
        let want = len
            .max(CHUNK)
            .min(usize::try_from(self.end - at).unwrap_or(usize::MAX));
        if want < len {
            return Err(corrupt(at, "runs past the end of the segment"));
        }
        self.buf.resize(want, 0);
        self.file.read_exact_at(&mut self.buf, at)?;
        self.buf_start = at;
        Ok(())
    }

    /// The next whole batch and its file position, or `None` at the end. A malformed length is
    /// an error: the segment was validated when written or recovered.
    pub(crate) fn next_batch(&mut self) -> Result<Option<(u64, &[u8])>, LogError> {
        let pos = self.pos;
        if pos + HEADER_LEN as u64 > self.end {
            return if pos == self.end {
                Ok(None)
            } else {
                Err(corrupt(pos, "trailing bytes shorter than a batch header"))
            };
        }
        self.fill(pos, HEADER_LEN)?;
        let at = (pos - self.buf_start) as usize;
        let total = BatchHeader::new(&self.buf[at..])
            .and_then(|h| h.total_size())
            .filter(|n| *n >= HEADER_LEN)
            .ok_or_else(|| corrupt(pos, "bad batch length"))?;
        self.fill(pos, total)?;
        let at = (pos - self.buf_start) as usize;
        self.pos = pos + total as u64;
        Ok(Some((pos, &self.buf[at..at + total])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake batch of `len` bytes: only the length field matters to the reader.
    fn batch(len: usize, fill: u8) -> Vec<u8> {
        let mut b = vec![fill; len];
        b[..8].copy_from_slice(&0i64.to_be_bytes());
        b[8..12].copy_from_slice(&((len - 12) as i32).to_be_bytes());
        b
    }

    #[test]
    fn streams_small_and_oversized_batches_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let sizes = [61, 4000, CHUNK + 12_345, 100, CHUNK - 50, 700];
        let mut all = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            all.extend(batch(*n, i as u8 + 1));
        }
        std::fs::write(&path, &all).unwrap();
        let f = File::open(&path).unwrap();
        let mut r = BatchReader::new(&f, all.len() as u64);
        let mut seen = Vec::new();
        while let Some((pos, b)) = r.next_batch().unwrap() {
            assert_eq!(&all[pos as usize..pos as usize + b.len()], b);
            seen.push(b.len());
        }
        assert_eq!(seen, sizes);
    }

    #[test]
    fn a_length_past_the_end_is_an_error_not_a_huge_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let mut b = batch(100, 1);
        b[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        std::fs::write(&path, &b).unwrap();
        let f = File::open(&path).unwrap();
        let mut r = BatchReader::new(&f, b.len() as u64);
        assert!(r.next_batch().is_err());
    }
}
