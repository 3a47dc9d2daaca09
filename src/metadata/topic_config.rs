//! Topic-level configuration names Kafka defines. CreateTopics stores them; values a topic has
//! not set fall back to the broker's settings. Unknown names are rejected with INVALID_CONFIG, as
//! Kafka does, so typos do not pass silently.

/// Every topic config name Kafka 4.x accepts.
pub const KNOWN: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// Checks one name/value pair; the error text names the key.
pub fn validate(name: &str, value: Option<&str>) -> Result<(), String> {
    if !KNOWN.contains(&name) {
        return Err(format!("unknown topic config `{name}`"));
    }
    let Some(value) = value else {
        return Ok(());
    };
    let numeric = |min: i64| -> Result<(), String> {
        match value.trim().parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            _ => Err(format!(
                "invalid value `{value}` for `{name}`: expected an integer >= {min}"
            )),
        }
    };
    match name {
        "max.message.bytes" | "segment.bytes" | "min.insync.replicas" | "flush.messages"
        | "max.compaction.lag.ms" => numeric(1),
        "segment.index.bytes" => numeric(4),
        "retention.ms" | "retention.bytes" | "local.retention.ms" | "local.retention.bytes" => {
            numeric(-2)
        }
        "index.interval.bytes"
        | "delete.retention.ms"
        | "min.compaction.lag.ms"
        | "segment.ms"
        | "segment.jitter.ms"
        | "file.delete.delay.ms"
        | "flush.ms" => numeric(0),
        "compression.gzip.level" => match value.trim().parse::<i64>() {
            Ok(-1 | 1..=9) => Ok(()),
            _ => Err(format!(
                "invalid value `{value}` for `compression.gzip.level`: expected -1 or 1 to 9"
            )),
        },
        "compression.lz4.level" => match value.trim().parse::<i64>() {
            Ok(1..=17) => Ok(()),
            _ => Err(format!(
                "invalid value `{value}` for `compression.lz4.level`: expected 1 to 17"
            )),
        },
        "compression.zstd.level" => match value.trim().parse::<i64>() {
            Ok(-131_072..=22) => Ok(()),
            _ => Err(format!(
                "invalid value `{value}` for `compression.zstd.level`: expected -131072 to 22"
            )),
        },
        "min.cleanable.dirty.ratio" => match value.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
            _ => Err(format!(
                "invalid value `{value}` for `min.cleanable.dirty.ratio`: expected a number between 0 and 1"
            )),
        },
        // An empty list is valid, as in Kafka 4.x: neither retention nor compaction removes data.
        "cleanup.policy" => {
            let ok = value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .all(|p| p == "delete" || p == "compact");
            if ok {
                Ok(())
            } else {
                Err(format!("invalid value `{value}` for `cleanup.policy`: expected delete, compact or both"))
            }
        }
        "compression.type" => match value {
            "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd" => Ok(()),
            _ => Err(format!("invalid value `{value}` for `compression.type`")),
        },
        // Kafka parses booleans without regard to case.
        "preallocate" => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err(format!("invalid value `{value}` for `preallocate`: expected true or false")),
        },
        // Tiered storage needs a remote log store, which Gregor does not have: Kafka refuses
        // `true` too when its broker runs without one (remote.log.storage.system.enable=false),
        // and a topic that silently kept everything local would break its retention promise.
        "remote.storage.enable" => match value.trim().to_ascii_lowercase().as_str() {
            "false" => Ok(()),
            "true" => Err(
                "`remote.storage.enable` cannot be true: Gregor has no tiered (remote) storage"
                    .to_string(),
            ),
            _ => Err(format!(
                "invalid value `{value}` for `remote.storage.enable`: expected true or false"
            )),
        },
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err(format!(
                "invalid value `{value}` for `message.timestamp.type`"
            )),
        },
        _ => Ok(()),
    }
}
