//! Read-only view over the 61-byte magic-2 record batch header (Kafka `DefaultRecordBatch` layout).

/// Length of the magic-2 batch header in bytes.
pub const HEADER_LEN: usize = 61;
/// Size of the `baseOffset` + `batchLength` prefix; `batchLength` counts the bytes after it.
pub const LOG_OVERHEAD: usize = 12;
/// Byte offset where the CRC-covered region starts (the attributes field).
pub const CRC_START: usize = 21;
/// The attribute bits (0–2) holding the codec id.
pub const CODEC_MASK: i16 = 0x07;

pub(crate) const OFF_BASE_OFFSET: usize = 0;
pub(crate) const OFF_BATCH_LENGTH: usize = 8;
pub(crate) const OFF_LEADER_EPOCH: usize = 12;
pub(crate) const OFF_MAGIC: usize = 16;
pub(crate) const OFF_CRC: usize = 17;
pub(crate) const OFF_ATTRIBUTES: usize = 21;
pub(crate) const OFF_LAST_OFFSET_DELTA: usize = 23;
pub(crate) const OFF_BASE_TIMESTAMP: usize = 27;
pub(crate) const OFF_MAX_TIMESTAMP: usize = 35;
pub(crate) const OFF_PRODUCER_ID: usize = 43;
pub(crate) const OFF_PRODUCER_EPOCH: usize = 51;
pub(crate) const OFF_BASE_SEQUENCE: usize = 53;
pub(crate) const OFF_RECORD_COUNT: usize = 57;

/// Compression codec, from attribute bits 0–2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// No compression (0).
    None,
    /// gzip (1).
    Gzip,
    /// Snappy (2), raw or xerial-framed.
    Snappy,
    /// LZ4 frame format (3).
    Lz4,
    /// Zstandard (4).
    Zstd,
}

impl Compression {
    /// Maps a codec id to a codec; `None` for ids outside 0..=4.
    pub fn from_id(id: u8) -> Option<Compression> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The codec id written in attribute bits 0–2.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// Timestamp type, from attribute bit 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Timestamps set by the producer.
    CreateTime,
    /// Timestamps set by the broker on append.
    LogAppendTime,
}

/// A borrowed view over a batch header. Construction checks only that 61 bytes are present;
/// the accessors never panic. Plain data, so `Send + Sync`.
#[derive(Debug, Clone, Copy)]
pub struct BatchHeader<'a> {
    buf: &'a [u8],
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl<'a> BatchHeader<'a> {
    /// Wraps `buf` (the batch header, optionally followed by the rest of the batch).
    /// Returns `None` if `buf` is shorter than [`HEADER_LEN`].
    pub fn new(buf: &'a [u8]) -> Option<BatchHeader<'a>> {
        if buf.len() < HEADER_LEN {
            None
        } else {
            Some(BatchHeader { buf })
        }
    }

    /// The underlying bytes given to [`BatchHeader::new`].
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        be_i64(self.buf, OFF_BASE_OFFSET)
    }
    /// Bytes after the 12-byte offset+length prefix.
    pub fn batch_length(&self) -> i32 {
        be_i32(self.buf, OFF_BATCH_LENGTH)
    }
    /// Total batch size claimed by the header (`batchLength + 12`), or `None` if negative.
    pub fn total_size(&self) -> Option<usize> {
        usize::try_from(self.batch_length())
            .ok()
            .map(|l| l + LOG_OVERHEAD)
    }
    /// Leader epoch stamped by the broker.
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.buf, OFF_LEADER_EPOCH)
    }
    /// Magic byte; 2 for the format handled here.
    pub fn magic(&self) -> i8 {
        self.buf[OFF_MAGIC] as i8
    }
    /// Stored CRC-32C of bytes 21..end.
    pub fn crc(&self) -> u32 {
        be_i32(self.buf, OFF_CRC) as u32
    }
    /// Raw attributes.
    pub fn attributes(&self) -> i16 {
        be_i16(self.buf, OFF_ATTRIBUTES)
    }
    /// Codec id from attribute bits 0–2 (may be an unsupported 5..=7).
    pub fn compression_id(&self) -> u8 {
        (self.attributes() & CODEC_MASK) as u8
    }
    /// Codec, or `None` for ids 5..=7.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id(self.compression_id())
    }
    /// Timestamp type from attribute bit 3.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & 0x08 != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    /// Attribute bit 4.
    pub fn is_transactional(&self) -> bool {
        self.attributes() & 0x10 != 0
    }
    /// Attribute bit 5.
    pub fn is_control(&self) -> bool {
        self.attributes() & 0x20 != 0
    }
    /// Offset delta of the last record.
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.buf, OFF_LAST_OFFSET_DELTA)
    }
    /// Offset of the last record (`base_offset + last_offset_delta`), saturating: the base
    /// offset lies outside the CRC, so a flipped bit on disk can put it anywhere, and a corrupt
    /// header must not wrap around. Scans reject such batches with [`Self::offsets_valid`].
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }
    /// True if the header's offsets are in range: base and delta not negative, and the offset
    /// after the batch (`base + delta + 1`, where the next batch starts) representable.
    pub fn offsets_valid(&self) -> bool {
        self.base_offset() >= 0 && self.last_offset_delta() >= 0 && self.next_offset().is_some()
    }
    /// The offset after the batch's last (`base + last_offset_delta + 1`), or `None` if it
    /// does not fit in an i64.
    pub fn next_offset(&self) -> Option<i64> {
        self.base_offset()
            .checked_add(i64::from(self.last_offset_delta()))?
            .checked_add(1)
    }
    /// Timestamp of the first record.
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.buf, OFF_BASE_TIMESTAMP)
    }
    /// Greatest record timestamp in the batch.
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.buf, OFF_MAX_TIMESTAMP)
    }
    /// Producer id, -1 if none.
    pub fn producer_id(&self) -> i64 {
        be_i64(self.buf, OFF_PRODUCER_ID)
    }
    /// Producer epoch, -1 if none.
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.buf, OFF_PRODUCER_EPOCH)
    }
    /// Sequence of the first record, -1 if none.
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.buf, OFF_BASE_SEQUENCE)
    }
    /// Number of records claimed by the header.
    pub fn record_count(&self) -> i32 {
        be_i32(self.buf, OFF_RECORD_COUNT)
    }
}

/// CRC-32C (Castagnoli) of `buf[21..]`; `buf` must be at least [`HEADER_LEN`] long, else 0.
pub fn compute_crc(buf: &[u8]) -> u32 {
    buf.get(CRC_START..).map_or(0, crc32c::crc32c)
}
