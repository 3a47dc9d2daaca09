//! The encoding of the broker's internal record keys and values (`__consumer_offsets`,
//! `__transaction_state`): Kafka's classic big-endian layout — int16-length strings (-1 =
//! null), int32-length bytes and arrays. Decoding is bounds-checked and never panics; an array
//! count larger than the bytes left could hold is truncation, never an allocation.

use bytes::{BufMut, Bytes};

/// Why bytes read back from an internal topic could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record truncated")]
    Truncated,
    #[error("unsupported {what} version {version}")]
    Version { what: &'static str, version: i16 },
    #[error("string is not UTF-8")]
    Utf8,
}

/// Writes an int16-length string (ids and names are far below 32 KiB; clamped, never wrapped).
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len().min(i16::MAX as usize);
    out.put_i16(len as i16);
    out.extend_from_slice(&s.as_bytes()[..len]);
}

/// Writes a nullable int16-length string.
pub fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.put_i16(-1),
    }
}

/// Writes int32-length bytes.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.put_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
    out.extend_from_slice(b);
}

/// Bounds-checked reader over a key or value.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    pub fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes([self.take(1)?[0]]))
    }
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    pub fn nullable_str(&mut self) -> Result<Option<String>, DecodeError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let b = self.take(len as usize)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| DecodeError::Utf8)
    }
    /// A string; null reads as empty.
    pub fn str(&mut self) -> Result<String, DecodeError> {
        Ok(self.nullable_str()?.unwrap_or_default())
    }
    /// Int32-length bytes; null reads as empty.
    pub fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
    /// An array length (`None` = null); a count of items of at least `min_item` bytes that the
    /// bytes left cannot hold is truncation.
    pub fn count(&mut self, min_item: usize) -> Result<Option<usize>, DecodeError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        let n = n as usize;
        if n.saturating_mul(min_item) > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut out = Vec::new();
        put_str(&mut out, "abc");
        put_nullable_str(&mut out, None);
        put_bytes(&mut out, b"xy");
        out.put_i32(1_000_000); // an array count far beyond the bytes left
        let mut r = Reader::new(&out);
        assert_eq!(r.str().unwrap(), "abc");
        assert_eq!(r.nullable_str().unwrap(), None);
        assert_eq!(&r.bytes().unwrap()[..], b"xy");
        assert_eq!(r.count(4), Err(DecodeError::Truncated));
        assert_eq!(
            Reader::new(&[0, 5, b'a']).str(),
            Err(DecodeError::Truncated)
        );
    }
}
