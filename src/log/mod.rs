//! Partition logs on local disk in Kafka's layout: segments, sparse offset and time indexes,
//! recovery, the group-commit flusher, checkpoints, idempotent-producer state, per-topic
//! settings (`LogConfig`), retention and compaction, the fault-injectable file I/O seam and
//! the descriptor cache for sealed segments.
//! Knows nothing of Kafka requests: it appends validated batches and returns offsets.

pub(crate) mod batch_reader;
pub mod checkpoint;
pub(crate) mod cleaner;
pub(crate) mod cleaner_thread;
pub mod config;
pub mod fd_cache;
pub mod flusher;
pub mod index;
pub mod io;
pub mod leader_epoch;
pub mod manager;
pub mod offload;
pub mod partition;
pub mod producer_snapshot;
pub mod producer_state;
pub mod recovery;
pub mod segment;
pub mod time_index;
pub mod txn_state;

#[cfg(test)]
mod bounds_tests;
#[cfg(test)]
mod cleaner_tests;
#[cfg(test)]
mod compaction_tests;
#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod durability_tests;
#[cfg(test)]
mod flush_tests;
#[cfg(test)]
mod integration_tests;
#[cfg(test)]
mod replication_tests;
#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod scale_tests;
#[cfg(test)]
mod txn_tests;

use std::fmt;

pub use config::{LogConfig, TimestampKind};
pub use leader_epoch::{EpochEntry, LeaderEpochCache};
pub use manager::LogManager;
pub use partition::{
    AppendOutcome, Cleanability, PartitionLog, ReadRegion, ReadResult, ReplicaAppend,
};
pub use recovery::RecoveryReport;
pub use txn_state::AbortedTxn;

/// Tunables for every partition log of a [`LogManager`]. Plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Roll to a new segment when the active one would exceed this size (`log.segment.bytes`).
    pub segment_bytes: u64,
    /// Bytes appended between two sparse index entries (`index.interval.bytes`).
    pub index_interval_bytes: u32,
    /// Background flush period for data nobody waits on (acks=1 producers).
    pub flush_interval_ms: u64,
    /// Period of the recovery-point and log-start-offset checkpoints.
    pub checkpoint_interval_ms: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 1 << 30,
            index_interval_bytes: 4096,
            flush_interval_ms: 1000,
            checkpoint_interval_ms: 60_000,
        }
    }
}

/// A topic partition. Ordered by topic, then partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: crate::common::PartitionIndex,
}

impl TopicPartition {
    /// Builds a `TopicPartition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition: crate::common::PartitionIndex(partition),
        }
    }

    /// The partition directory name, `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Errors of the log layer. The handler maps them to Kafka codes (OffsetOutOfRange → 1,
/// OutOfOrderSequence → 45, InvalidProducerEpoch → 47, StorageOffline → KAFKA_STORAGE_ERROR 56,
/// FencedLeaderEpoch → FENCED_LEADER_EPOCH 74 or NOT_LEADER_OR_FOLLOWER 6, others →
/// UNKNOWN_SERVER_ERROR or KAFKA_STORAGE_ERROR).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// An I/O error from the file system.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The requested offset is outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// Current log start offset.
        log_start_offset: i64,
        /// Current log end offset.
        log_end_offset: i64,
    },
    /// Sequence gap or reordering for a known producer.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// Producer id.
        producer_id: i64,
        /// The sequence the log expected next.
        expected: i32,
        /// The batch's base sequence.
        got: i32,
    },
    /// The producer epoch is older than the one the log knows (fenced producer).
    #[error("producer {producer_id} epoch {got} is older than current epoch {current}")]
    InvalidProducerEpoch {
        /// Producer id.
        producer_id: i64,
        /// Epoch known to the log.
        current: i16,
        /// Epoch in the batch.
        got: i16,
    },
    /// A previous write or fsync failed; the partition refuses further work until reopened
    /// (the "fsyncgate" rule).
    #[error("partition {0} is offline after an earlier storage error")]
    StorageOffline(String),
    /// The log manager has been shut down.
    #[error("log manager is shut down")]
    ShutDown,
    /// The partition exists with another topic id.
    #[error("partition {tp} exists with a different topic id")]
    TopicIdMismatch {
        /// The partition.
        tp: String,
    },
    /// The partition does not exist.
    #[error("unknown partition {0}")]
    UnknownPartition(String),
    /// On-disk data is inconsistent in a way recovery cannot repair, or replicated bytes
    /// failed their checks (framing, magic, CRC).
    #[error("corrupt log: {0}")]
    Corrupt(String),
    /// A leader append in an epoch older than the newest one that wrote to this log: the
    /// caller has been deposed and must not append.
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    FencedLeaderEpoch {
        /// The epoch of the append.
        epoch: i32,
        /// The newest epoch in the log's leader epoch cache.
        latest: i32,
    },
    /// A replicated batch overlaps the log: it starts below the log end offset but ends at or
    /// past it (Kafka's UnexpectedAppendOffsetException). Nothing from it on was written.
    #[error("replicated batch at {base_offset} overlaps the log end offset {log_end_offset}")]
    UnexpectedAppendOffset {
        /// The batch's base offset.
        base_offset: i64,
        /// The log end offset.
        log_end_offset: i64,
    },
}
