//! Pure functions over Kafka record-batch bytes: header view, validation, stamping, codecs and
//! record iteration. Nothing here does I/O, so everything is safe to call from any thread and to
//! fuzz.

pub mod batch;
pub mod build;
pub mod compression;
pub mod internal;
pub mod rebuild;
pub mod record_iter;
pub mod stamp;
#[cfg(any(test, feature = "test-util"))]
pub mod testutil;
pub mod validate;
pub mod varint;

pub use batch::{BatchHeader, Compression, TimestampType, HEADER_LEN};
pub use compression::{compress, decompress_bounded, decompress_limit, DEFAULT_DECOMPRESS_LIMIT};
pub use record_iter::{records, RecordInfo};
pub use stamp::{set_max_timestamp, stamp_base_offset_and_epoch};
pub use validate::{validate_produce_batch, BatchInfo};

/// Errors found in record bytes. The handler maps them to Kafka error codes:
/// `CorruptMessage` → CORRUPT_MESSAGE (2), `MessageTooLarge` → MESSAGE_TOO_LARGE (10),
/// `InvalidRecord` → INVALID_RECORD (87), `UnsupportedCompression` → UNSUPPORTED_COMPRESSION_TYPE (76).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// Framing, magic or CRC is wrong: the bytes are not a well-formed batch.
    #[error("corrupt message: {0}")]
    CorruptMessage(String),
    /// The batch is larger than `max.message.bytes`.
    #[error("message too large: {size} bytes > max {max}")]
    MessageTooLarge {
        /// Size of the batch in bytes.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// The batch is well-formed but its contents break a rule (record count, record layout).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The records section decompresses to more than the cap for its topic (a multiple of
    /// `max.message.bytes`): decoding stopped there.
    #[error("records decompress to more than {limit} bytes")]
    DecompressedTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// Compression codec id outside 0..=4.
    #[error("unsupported compression codec {0}")]
    UnsupportedCompression(u8),
}
