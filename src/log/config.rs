//! Per-partition log configuration (`LogConfig`): the topic-level settings the log honours on
//! every append, roll and retention pass, resolved from a topic's overrides over broker defaults.
//! Plain data; a partition keeps its current `LogConfig` under its own lock and the broker
//! replaces it whenever the topic's configs change.

use std::collections::BTreeMap;

use super::LogOptions;
use crate::records::Compression;

/// Which timestamp the log stores in a batch's `maxTimestamp` (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKind {
    /// Keep the producer's timestamps.
    CreateTime,
    /// Overwrite `maxTimestamp` with the broker's clock and set attribute bit 3.
    LogAppendTime,
}

/// The settings a partition log reads at run time. See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Roll when the active segment would exceed this size (`segment.bytes`).
    pub segment_bytes: u64,
    /// Roll when the incoming batch is this much newer than the active segment's first batch
    /// (`segment.ms`).
    pub segment_ms: i64,
    /// Bytes between two sparse index entries (`index.interval.bytes`).
    pub index_interval_bytes: u32,
    /// Delete sealed segments whose newest record is older than this; -1 = never (`retention.ms`).
    pub retention_ms: i64,
    /// Delete the oldest sealed segments while the log is larger; -1 = no limit
    /// (`retention.bytes`).
    pub retention_bytes: i64,
    /// `message.timestamp.type`.
    pub timestamp_kind: TimestampKind,
    /// `cleanup.policy` contains `delete` (time/size retention applies).
    pub delete: bool,
    /// `cleanup.policy` contains `compact`.
    pub compact: bool,
    /// How long tombstones survive compaction (`delete.retention.ms`).
    pub delete_retention_ms: i64,
    /// Codec batches are stored with; `None` keeps the producer's (`compression.type`).
    pub compression: Option<Compression>,
    /// CreateTime records may be at most this far in the future
    /// (`message.timestamp.after.max.ms`; Kafka 4's default is one hour).
    pub timestamp_after_max_ms: i64,
    /// CreateTime records may be at most this far in the past
    /// (`message.timestamp.before.max.ms`; unlimited by default).
    pub timestamp_before_max_ms: i64,
    /// Largest offset index file (`segment.index.bytes`): the active segment rolls when its
    /// offset index (8 bytes an entry) or time index (12 bytes an entry) would outgrow it.
    pub segment_index_bytes: u32,
    /// Force an fsync once this many messages are unflushed (`flush.messages`).
    pub flush_messages: i64,
    /// Force an fsync once data has been unflushed this long (`flush.ms`; Gregor's default is
    /// the broker's `log.flush.interval.ms`).
    pub flush_ms: i64,
    /// Records younger than this are never compacted (`min.compaction.lag.ms`).
    pub min_compaction_lag_ms: i64,
    /// A dirty record older than this makes the log eligible for cleaning whatever its dirty
    /// ratio, and bounds how long the active segment stays open (`max.compaction.lag.ms`).
    pub max_compaction_lag_ms: i64,
    /// Clean only once dirty bytes are more than this fraction of the cleanable log
    /// (`min.cleanable.dirty.ratio`).
    pub min_cleanable_dirty_ratio: f64,
    /// Each segment rolls up to this much before `segment.ms` (a random amount fixed per
    /// segment), so partitions created together do not all roll at once (`segment.jitter.ms`).
    pub segment_jitter_ms: i64,
    /// Level of broker-side gzip recompression, -1 for the default (`compression.gzip.level`).
    pub gzip_level: i32,
    /// Level of broker-side zstd recompression (`compression.zstd.level`).
    pub zstd_level: i32,
    /// Largest batch a producer may append (`max.message.bytes`); also what bounds the
    /// decompressed size of a batch the broker looks inside.
    pub max_message_bytes: usize,
    /// In-sync replicas an acks=all append needs (`min.insync.replicas`).
    pub min_insync_replicas: i32,
}

impl LogConfig {
    /// Kafka's defaults, with size and index interval from the manager's options.
    pub fn from_options(opts: &LogOptions) -> LogConfig {
        LogConfig {
            segment_bytes: opts.segment_bytes,
            segment_ms: 7 * 24 * 3_600_000,
            index_interval_bytes: opts.index_interval_bytes,
            retention_ms: 7 * 24 * 3_600_000,
            retention_bytes: -1,
            timestamp_kind: TimestampKind::CreateTime,
            delete: true,
            compact: false,
            delete_retention_ms: 86_400_000,
            compression: None,
            timestamp_after_max_ms: 3_600_000,
            timestamp_before_max_ms: i64::MAX,
            segment_index_bytes: 10 * 1024 * 1024,
            flush_messages: i64::MAX,
            flush_ms: i64::try_from(opts.flush_interval_ms).unwrap_or(i64::MAX),
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            segment_jitter_ms: 0,
            gzip_level: -1,
            zstd_level: 3,
            max_message_bytes: 1_048_588,
            min_insync_replicas: 1,
        }
    }

    /// The level broker-side recompression to `codec` runs at (`compression.<codec>.level`);
    /// `None` for the codec's default.
    pub fn compression_level(&self, codec: Compression) -> Option<i32> {
        match codec {
            Compression::Gzip if self.gzip_level != -1 => Some(self.gzip_level),
            Compression::Zstd => Some(self.zstd_level),
            _ => None,
        }
    }

    /// The most bytes one stored batch of this log may decompress to when the broker reads its
    /// records (compaction, ListOffsets by time): the topic's cap on produced batches, but never
    /// below `records::DEFAULT_DECOMPRESS_LIMIT`, so batches accepted before the topic lowered
    /// `max.message.bytes` stay readable.
    pub fn decompress_limit(&self) -> usize {
        crate::records::decompress_limit(self.max_message_bytes)
            .max(crate::records::DEFAULT_DECOMPRESS_LIMIT)
    }

    /// How much earlier than [`LogConfig::roll_ms`] a segment with random `seed` rolls:
    /// `seed` modulo `segment.jitter.ms` (capped at the roll time), as Kafka draws it.
    pub fn roll_jitter_ms(&self, seed: u64) -> i64 {
        let bound = self.segment_jitter_ms.min(self.roll_ms());
        match u64::try_from(bound) {
            Ok(b) if b > 0 => i64::try_from(seed % b).unwrap_or(0),
            _ => 0,
        }
    }

    /// The age at which the active segment rolls: `segment.ms`, or `max.compaction.lag.ms` if
    /// smaller on a compacted topic, since the cleaner never touches the active segment and a
    /// record must become cleanable within the maximum lag (Kafka does the same).
    pub fn roll_ms(&self) -> i64 {
        if self.compact && self.max_compaction_lag_ms > 0 {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }

    /// This config with a topic's overrides (Kafka topic config names) applied. Values are
    /// expected to be validated already; an unparsable one keeps the default.
    pub fn with_overrides(&self, topic: &BTreeMap<String, String>) -> LogConfig {
        let mut c = self.clone();
        for (name, value) in topic {
            c.apply(name, value);
        }
        c
    }

    /// Applies one `name = value` setting (topic-level names). Unknown names are ignored.
    pub fn apply(&mut self, name: &str, value: &str) {
        let v = value.trim();
        let int = || v.parse::<i64>().ok();
        match name {
            "segment.bytes" => {
                if let Some(n) = int().and_then(|n| u64::try_from(n).ok()).filter(|n| *n > 0) {
                    self.segment_bytes = n;
                }
            }
            "segment.ms" => {
                if let Some(n) = int().filter(|n| *n > 0) {
                    self.segment_ms = n;
                }
            }
            "index.interval.bytes" => {
                if let Some(n) = int().and_then(|n| u32::try_from(n).ok()) {
                    self.index_interval_bytes = n;
                }
            }
            "retention.ms" => {
                if let Some(n) = int() {
                    self.retention_ms = if n < 0 { -1 } else { n };
                }
            }
            "retention.bytes" => {
                if let Some(n) = int() {
                    self.retention_bytes = if n < 0 { -1 } else { n };
                }
            }
            "message.timestamp.type" => match v {
                "LogAppendTime" => self.timestamp_kind = TimestampKind::LogAppendTime,
                "CreateTime" => self.timestamp_kind = TimestampKind::CreateTime,
                _ => {}
            },
            "message.timestamp.after.max.ms" => {
                if let Some(n) = int().filter(|n| *n >= 0) {
                    self.timestamp_after_max_ms = n;
                }
            }
            "message.timestamp.before.max.ms" => {
                if let Some(n) = int().filter(|n| *n >= 0) {
                    self.timestamp_before_max_ms = n;
                }
            }
            "compression.type" => {
                self.compression = match v {
                    "producer" => None,
                    "uncompressed" => Some(Compression::None),
                    "gzip" => Some(Compression::Gzip),
                    "snappy" => Some(Compression::Snappy),
                    "lz4" => Some(Compression::Lz4),
                    "zstd" => Some(Compression::Zstd),
                    _ => self.compression,
                }
            }
            "delete.retention.ms" => {
                if let Some(n) = int().filter(|n| *n >= 0) {
                    self.delete_retention_ms = n;
                }
            }
            "segment.index.bytes" => {
                if let Some(n) = int()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n >= 4)
                {
                    self.segment_index_bytes = n;
                }
            }
            "flush.messages" => {
                if let Some(n) = int().filter(|n| *n > 0) {
                    self.flush_messages = n;
                }
            }
            "flush.ms" => {
                if let Some(n) = int().filter(|n| *n >= 0) {
                    self.flush_ms = n;
                }
            }
            "min.compaction.lag.ms" => {
                if let Some(n) = int().filter(|n| *n >= 0) {
                    self.min_compaction_lag_ms = n;
                }
            }
            "max.compaction.lag.ms" => {
                if let Some(n) = int().filter(|n| *n > 0) {
                    self.max_compaction_lag_ms = n;
                }
            }
            "segment.jitter.ms" => {
                if let Some(n) = int().filter(|n| *n >= 0) {
                    self.segment_jitter_ms = n;
                }
            }
            "compression.gzip.level" => {
                if let Some(n) = int().and_then(|n| i32::try_from(n).ok()) {
                    self.gzip_level = n;
                }
            }
            "compression.zstd.level" => {
                if let Some(n) = int().and_then(|n| i32::try_from(n).ok()) {
                    self.zstd_level = n;
                }
            }
            "max.message.bytes" => {
                if let Some(n) = int()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n > 0)
                {
                    self.max_message_bytes = n;
                }
            }
            "min.insync.replicas" => {
                if let Some(n) = int().and_then(|n| i32::try_from(n).ok()).filter(|n| *n > 0) {
                    self.min_insync_replicas = n;
                }
            }
            "min.cleanable.dirty.ratio" => {
                if let Some(r) = v.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)) {
                    self.min_cleanable_dirty_ratio = r;
                }
            }
            "cleanup.policy" => {
                let parts: Vec<&str> = v.split(',').map(str::trim).collect();
                self.delete = parts.contains(&"delete");
                self.compact = parts.contains(&"compact");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_over_defaults() {
        let base = LogConfig::from_options(&LogOptions::default());
        assert_eq!(base.retention_ms, 604_800_000);
        assert!(base.delete && !base.compact);
        let mut t = BTreeMap::new();
        t.insert("segment.bytes".to_string(), "1000".to_string());
        t.insert("retention.ms".to_string(), "-1".to_string());
        t.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        t.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        t.insert("index.interval.bytes".to_string(), "bogus".to_string());
        let c = base.with_overrides(&t);
        assert_eq!(c.segment_bytes, 1000);
        assert_eq!(c.retention_ms, -1);
        assert_eq!(c.timestamp_kind, TimestampKind::LogAppendTime);
        assert!(c.delete && c.compact);
        assert_eq!(c.index_interval_bytes, base.index_interval_bytes);
    }
}
