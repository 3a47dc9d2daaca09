//! Broker configuration: defaults < TOML file < `GREGOR_*` environment < command-line flags.
//!
//! Settings carry Kafka's names (`log.dirs`, `num.partitions`, ...) so a Kafka operator finds them.
//! TOML may spell them as dotted keys (`log.dirs = "..."`, which TOML nests) or quoted keys
//! (`"log.dirs" = "..."`); the environment form is `GREGOR_LOG_DIRS`. Every source is flattened to
//! dotted names and checked against [`SETTINGS`]: an unknown name or a bad value stops start-up with
//! a message naming the setting and where it came from.

pub mod kafka_names;
mod properties;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;

/// One documented setting: its name, default (as written in TOML) and meaning.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

/// Every setting Gregor accepts. `etc/gregor.toml` documents the same list.
pub const SETTINGS: &[Setting] = &[
    Setting { name: "listeners", default: "PLAINTEXT://127.0.0.1:9092", doc: "Where to accept client connections (comma-separated; one PLAINTEXT listener today)." },
    Setting { name: "advertised.listeners", default: "", doc: "Address given to clients in Metadata; empty means the same as `listeners`." },
    Setting { name: "log.dirs", default: "./data", doc: "Directory holding partition logs and broker metadata (one directory today)." },
    Setting { name: "node.id", default: "1", doc: "This node's id: its broker id in Metadata and its voter id in the metadata quorum." },
    Setting { name: "process.roles", default: "broker,controller", doc: "`broker`, `controller` or both (combined mode, the default). A controller is a voter of the metadata quorum (listed in controller.quorum.voters); a broker serves clients and holds partitions. A broker-only node follows the metadata log as an observer: it also needs a controller listener, on which the leader sends it the log." },
    Setting { name: "controller.quorum.voters", default: "", doc: "The metadata quorum's voters as `id@host:port` (their controller listeners), comma-separated; every node of a cluster lists the same voters. Empty: a single-node cluster whose only voter is this node." },
    Setting { name: "controller.quorum.bootstrap.servers", default: "", doc: "Kafka's dynamic-quorum bootstrap list (KIP-853). Accepted for compatibility; Gregor forms its quorum from controller.quorum.voters." },
    Setting { name: "controller.listener.names", default: "CONTROLLER", doc: "Names of the listeners in `listeners` that carry the metadata quorum's traffic (Raft and forwarded writes) rather than clients." },
    Setting { name: "controller.quorum.election.timeout.ms", default: "1000", doc: "A voter that hears nothing from a leader for this long (plus a random part of as much again) starts an election." },
    Setting { name: "broker.rack", default: "", doc: "This broker's rack; partition replicas are spread over racks." },
    Setting { name: "inter.broker.listener.name", default: "", doc: "Listener brokers use to reach each other. Gregor has one client listener, which it is." },
    Setting { name: "broker.session.timeout.ms", default: "9000", doc: "A broker whose heartbeats stop for this long is fenced: its partitions show no leader until it returns." },
    Setting { name: "broker.heartbeat.interval.ms", default: "2000", doc: "How often a broker heartbeats to the active controller." },
    Setting { name: "replica.lag.time.max.ms", default: "30000", doc: "A follower that has not caught up with the leader's log end for this long is dropped from the ISR (and added back once it has caught up)." },
    Setting { name: "replica.fetch.wait.max.ms", default: "500", doc: "How long a follower's fetch waits at the leader for new data." },
    Setting { name: "replica.fetch.max.bytes", default: "1048576", doc: "Bytes a follower asks for per partition in one fetch (at least one batch is always returned)." },
    Setting { name: "replica.fetch.response.max.bytes", default: "10485760", doc: "Bytes a follower asks for in one fetch, over all partitions." },
    Setting { name: "unclean.leader.election.enable", default: "false", doc: "Let a replica that is not in sync become leader when no in-sync replica is live (acknowledged records may be lost). Topic config: unclean.leader.election.enable." },
    Setting { name: "auto.leader.rebalance.enable", default: "true", doc: "Move leadership back to each partition's preferred replica (its first) when a broker leads too few of the partitions it is preferred for." },
    Setting { name: "leader.imbalance.check.interval.seconds", default: "300", doc: "How often the active controller looks for leadership to move back to preferred replicas." },
    Setting { name: "leader.imbalance.per.broker.percentage", default: "10", doc: "Share of a broker's preferred partitions it may not lead before leadership is moved back to it." },
    Setting { name: "leader.replication.throttled.rate", default: "9223372036854775807", doc: "Bytes a second this broker serves to followers of the replicas listed in a topic's leader.replication.throttled.replicas (kafka-reassign-partitions --throttle). Dynamic." },
    Setting { name: "follower.replication.throttled.rate", default: "9223372036854775807", doc: "Bytes a second this broker fetches as a follower for the replicas listed in a topic's follower.replication.throttled.replicas. Dynamic." },
    Setting { name: "replica.alter.log.dirs.io.max.bytes.per.second", default: "9223372036854775807", doc: "Accepted for kafka-reassign-partitions, which clears it; Gregor has one log directory, so nothing moves between directories." },
    Setting { name: "cluster.id", default: "", doc: "Cluster id; empty means generate one on first start and keep it in meta.properties." },
    Setting { name: "num.partitions", default: "1", doc: "Partitions of an auto-created topic, or of CreateTopics with num_partitions = -1." },
    Setting { name: "default.replication.factor", default: "1", doc: "Replication factor used when a request says -1; at most the number of registered brokers." },
    Setting { name: "auto.create.topics.enable", default: "true", doc: "Create a topic when Metadata asks for an unknown one and allows it." },
    Setting { name: "message.max.bytes", default: "1048588", doc: "Largest record batch accepted (bytes); larger gets MESSAGE_TOO_LARGE." },
    Setting { name: "min.insync.replicas", default: "1", doc: "In-sync replicas an acks=all produce needs; with fewer it gets NOT_ENOUGH_REPLICAS and nothing is written. A single broker has one, so any value above 1 refuses acks=all, as Kafka does. Topic config: min.insync.replicas." },
    Setting { name: "socket.request.max.bytes", default: "104857600", doc: "Largest request frame accepted; a larger one closes the connection." },
    Setting { name: "queued.max.request.bytes", default: "536870912", doc: "Request bytes the broker holds in memory at once, across connections; past it, connections wait before reading the next request. -1 means no bound (Kafka's default); at least socket.request.max.bytes." },
    Setting { name: "log.segment.bytes", default: "1073741824", doc: "Roll to a new segment file beyond this size." },
    Setting { name: "log.index.interval.bytes", default: "4096", doc: "Bytes of log between two sparse offset/time index entries." },
    Setting { name: "log.flush.policy", default: "acks-all", doc: "`acks-all`: an acks=all produce is answered only after fdatasync (group commit). `interval`: Kafka's behaviour, answered after the write; data is synced every log.flush.interval.ms." },
    Setting { name: "log.flush.interval.ms", default: "1000", doc: "Background fdatasync period for data no producer is waiting on." },
    Setting { name: "log.flush.offset.checkpoint.interval.ms", default: "60000", doc: "How often the recovery-point checkpoint is written (bounds the tail scanned after a crash)." },
    Setting { name: "log.retention.ms", default: "604800000", doc: "Delete a sealed segment once its newest record is older than this (Kafka's log.retention.hours=168); -1 keeps data forever. Topic config: retention.ms." },
    Setting { name: "log.retention.bytes", default: "-1", doc: "Delete the oldest sealed segments while a partition is larger than this; -1 means no size limit. Topic config: retention.bytes." },
    Setting { name: "log.retention.check.interval.ms", default: "300000", doc: "How often the retention task looks for segments to delete." },
    Setting { name: "log.roll.ms", default: "604800000", doc: "Roll to a new segment when the incoming batch is this much newer than the active segment's first batch. Topic config: segment.ms." },
    Setting { name: "log.cleanup.policy", default: "delete", doc: "`delete`, `compact` or `delete,compact`. Topic config: cleanup.policy." },
    Setting { name: "log.index.size.max.bytes", default: "10485760", doc: "Largest offset index of a segment: the active segment rolls when its offset index (8 bytes an entry) or time index (12 bytes an entry) would outgrow it. Topic config: segment.index.bytes." },
    Setting { name: "log.flush.interval.messages", default: "9223372036854775807", doc: "Force an fsync once this many messages of a partition are unflushed; a produce that reaches it is answered after the fsync. Topic config: flush.messages." },
    Setting { name: "log.cleaner.enable", default: "true", doc: "Run the log cleaner, which compacts topics whose cleanup.policy includes `compact`." },
    Setting { name: "log.cleaner.backoff.ms", default: "15000", doc: "How long the log cleaner sleeps when no partition needs cleaning." },
    Setting { name: "log.cleaner.min.cleanable.ratio", default: "0.5", doc: "Clean a compacted partition once its dirty (not yet cleaned) bytes are more than this fraction of its cleanable bytes. Topic config: min.cleanable.dirty.ratio." },
    Setting { name: "log.cleaner.min.compaction.lag.ms", default: "0", doc: "Segments holding records younger than this are not compacted. Topic config: min.compaction.lag.ms." },
    Setting { name: "log.cleaner.max.compaction.lag.ms", default: "9223372036854775807", doc: "A partition with dirty records older than this is cleaned whatever its dirty ratio, and its active segment rolls at this age. Topic config: max.compaction.lag.ms." },
    Setting { name: "log.cleaner.delete.retention.ms", default: "86400000", doc: "How long compaction keeps tombstones (records with a null value). Topic config: delete.retention.ms." },
    Setting { name: "log.cleaner.dedupe.buffer.size", default: "134217728", doc: "Memory for the cleaner's key map (key bytes plus about 64 bytes a key); a partition with more distinct dirty keys is cleaned over several passes." },
    Setting { name: "log.message.timestamp.type", default: "CreateTime", doc: "`CreateTime` keeps producers' timestamps; `LogAppendTime` stamps batches with the broker's clock. Topic config: message.timestamp.type." },
    Setting { name: "compression.type", default: "producer", doc: "Codec of stored batches: `producer` keeps what the producer sent. Topic config: compression.type." },
    Setting { name: "log.segment.fd.cache.size", default: "1024", doc: "Open descriptors kept for sealed segment files (least recently used are closed). Active segments keep one descriptor each on top of this." },
    Setting { name: "max.connections", default: "1000", doc: "Connections served at once; further ones wait to be accepted." },
    Setting { name: "connection.max.inflight.requests", default: "500", doc: "Requests read from one connection and not yet answered before reading it pauses (responses still leave in order). Gregor's own setting: Kafka's `queued.max.requests` bounds a broker-wide queue between network and handler threads that Gregor does not have, and is ignored; queued.max.request.bytes bounds memory broker-wide." },
    Setting { name: "group.min.session.timeout.ms", default: "6000", doc: "Smallest session timeout a consumer group member may ask for; smaller gets INVALID_SESSION_TIMEOUT." },
    Setting { name: "group.max.session.timeout.ms", default: "1800000", doc: "Largest session timeout a consumer group member may ask for; larger gets INVALID_SESSION_TIMEOUT." },
    Setting { name: "group.initial.rebalance.delay.ms", default: "500", doc: "How long a new (Empty) group waits for more members before its first rebalance completes. Kafka defaults to 3000; Gregor to 500 so a single dev consumer starts quickly." },
    Setting { name: "group.consumer.heartbeat.interval.ms", default: "5000", doc: "Heartbeat interval the coordinator gives members of KIP-848 (group.protocol=consumer) groups." },
    Setting { name: "group.consumer.session.timeout.ms", default: "45000", doc: "A KIP-848 group member silent for this long is removed and its partitions reassigned." },
    Setting { name: "group.consumer.min.session.timeout.ms", default: "45000", doc: "Lowest consumer.session.timeout.ms a KIP-848 group may be given as a group config." },
    Setting { name: "group.consumer.max.session.timeout.ms", default: "60000", doc: "Highest consumer.session.timeout.ms a KIP-848 group may be given as a group config." },
    Setting { name: "group.consumer.min.heartbeat.interval.ms", default: "5000", doc: "Lowest consumer.heartbeat.interval.ms a KIP-848 group may be given as a group config." },
    Setting { name: "group.consumer.max.heartbeat.interval.ms", default: "15000", doc: "Highest consumer.heartbeat.interval.ms a KIP-848 group may be given as a group config." },
    Setting { name: "offsets.retention.minutes", default: "10080", doc: "Committed offsets of a group that has been Empty this long (and not committed to since) are deleted." },
    Setting { name: "offsets.topic.num.partitions", default: "50", doc: "Partitions of the internal __consumer_offsets topic when it is first created (it is created on first group use)." },
    Setting { name: "offsets.topic.replication.factor", default: "3", doc: "Replicas of each __consumer_offsets partition, so that groups and committed offsets survive a broker; fewer if fewer brokers are registered when the topic is created." },
    Setting { name: "transaction.state.log.replication.factor", default: "3", doc: "Replicas of each __transaction_state partition; fewer if fewer brokers are registered when the topic is created." },
    Setting { name: "transaction.state.log.num.partitions", default: "50", doc: "Partitions of the internal __transaction_state topic when it is first created (it is created on first transactional use)." },
    Setting { name: "transaction.max.timeout.ms", default: "900000", doc: "Largest transaction timeout a transactional producer may ask for; larger gets INVALID_TRANSACTION_TIMEOUT." },
    Setting { name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", default: "10000", doc: "How often the transaction coordinator aborts transactions that have been open longer than their timeout (fencing their producer)." },
    Setting { name: "producer.id.expiration.ms", default: "86400000", doc: "A producer id with no batch newer than this in a partition (by the batch timestamps) and no open transaction there is forgotten by that partition, checked on each retention round." },
    Setting { name: "transactional.id.expiration.ms", default: "604800000", doc: "A transactional id whose producer has sent no transactional request for this long (and has no transaction open) is forgotten." },
];

/// What this node does (`process.roles`): a broker serves clients and holds partitions; a
/// controller is a voter of the metadata quorum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

/// This node's place in the cluster (`process.roles`, the quorum, the controller listener).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `process.roles`.
    pub roles: Roles,
    /// Where the controller listener binds, if `listeners` has one.
    pub controller_listener: Option<SocketAddr>,
    /// The quorum's voters by node id, with their controller listener `host:port`. Empty means
    /// a single-node cluster of this node alone.
    pub voters: BTreeMap<crate::common::NodeId, String>,
    pub election_timeout_ms: u64,
    pub rack: Option<String>,
    pub broker_session_timeout_ms: u64,
    pub broker_heartbeat_interval_ms: u64,
    pub replica_lag_time_max_ms: u64,
    pub replica_fetch_wait_max_ms: u64,
    pub replica_fetch_max_bytes: u64,
    pub replica_fetch_response_max_bytes: u64,
    /// The broker default of the topic config `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: bool,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: u64,
    pub leader_imbalance_per_broker_percentage: u32,
}

/// How `acks=all` relates to fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// acks=all waits for fdatasync (Gregor's default).
    AcksAll,
    /// acks=all answered after the page-cache write, as in Kafka by default.
    Interval,
}

/// The typed, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listeners: SocketAddr,
    pub cluster: ClusterConfig,
    pub advertised_host: String,
    pub advertised_port: u16,
    pub log_dir: PathBuf,
    pub node_id: crate::common::NodeId,
    pub cluster_id: Option<String>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    /// Replication throttles (bytes a second; `u64::MAX` is none), dynamic.
    pub leader_replication_throttled_rate: u64,
    pub follower_replication_throttled_rate: u64,
    pub message_max_bytes: usize,
    pub socket_request_max_bytes: usize,
    /// Broker-wide bound on request bytes held at once; `None` is unbounded.
    pub queued_max_request_bytes: Option<usize>,
    pub log_segment_bytes: u64,
    pub log_index_interval_bytes: u32,
    pub flush_policy: FlushPolicy,
    pub flush_interval_ms: u64,
    pub checkpoint_interval_ms: u64,
    pub max_connections: usize,
    /// Requests read from one connection and not yet answered (`connection.max.inflight.requests`).
    pub connection_max_inflight_requests: usize,
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_retention_check_interval_ms: u64,
    pub log_segment_fd_cache_size: usize,
    pub log_roll_ms: i64,
    pub log_cleanup_policy: String,
    pub log_message_timestamp_type: String,
    pub compression_type: String,
    pub log_cleaner_enable: bool,
    pub log_cleaner_backoff_ms: u64,
    pub log_cleaner_dedupe_buffer_size: usize,
    /// Every setting's resolved text and whether it was given explicitly (DescribeConfigs).
    pub settings: SettingValues,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_initial_rebalance_delay_ms: u64,
    pub group_consumer_heartbeat_interval_ms: i32,
    pub group_consumer_session_timeout_ms: i32,
    /// Bounds of the per-group `consumer.session.timeout.ms` (group configs).
    pub group_consumer_session_timeout_bounds_ms: (i32, i32),
    /// Bounds of the per-group `consumer.heartbeat.interval.ms` (group configs).
    pub group_consumer_heartbeat_interval_bounds_ms: (i32, i32),
    pub offsets_retention_minutes: u64,
    pub offsets_topic_num_partitions: i32,
    pub transaction_state_log_num_partitions: i32,
    pub offsets_topic_replication_factor: i16,
    pub transaction_state_log_replication_factor: i16,
    pub transaction_max_timeout_ms: i32,
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    pub transactional_id_expiration_ms: i64,
    pub producer_id_expiration_ms: i64,
}

/// Every setting's value as text, and whether it was set explicitly (file, environment or
/// command line) rather than left at its default: DescribeConfigs reports the latter as
/// STATIC_BROKER_CONFIG vs DEFAULT_CONFIG. `Debug` shows the values only, so two configs with
/// the same values print alike wherever they came from.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SettingValues {
    values: BTreeMap<String, (String, bool)>,
}

impl SettingValues {
    /// The value of setting `name`, as text.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|(v, _)| v.as_str())
    }

    /// True if `name` was set explicitly.
    pub fn is_explicit(&self, name: &str) -> bool {
        self.values.get(name).is_some_and(|(_, e)| *e)
    }
}

impl std::fmt::Debug for SettingValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.values.iter().map(|(k, (v, _))| (k, v)))
            .finish()
    }
}

/// A configuration problem, always naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown setting `{name}` (from {origin}){hint}; `gregor --help` lists every setting")]
    Unknown {
        name: String,
        origin: String,
        /// "; did you mean `x`?" when a known name is close, else empty.
        hint: String,
    },
    #[error("bad value for `{name}` (from {origin}): {reason}")]
    BadValue {
        name: String,
        origin: String,
        reason: String,
    },
    #[error("cannot read configuration: {0}")]
    Read(String),
}

/// Where settings come from, lowest precedence first (the defaults are implied).
#[derive(Default, Clone, Debug)]
pub struct Sources {
    /// A TOML file; `None` means no file.
    pub file: Option<PathBuf>,
    /// Whether to read `GREGOR_*` environment variables.
    pub env: bool,
    /// `name=value` overrides from the command line, highest precedence.
    pub overrides: Vec<(String, String)>,
}

impl Config {
    /// The configuration with every setting at its default.
    pub fn defaults() -> Config {
        Config::load(&Sources::default())
            .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }

    /// Loads, layers and validates settings from `sources`.
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        let mut from_properties = BTreeMap::new();
        if let Some(path) = &sources.file {
            if !path.exists() {
                return Err(ConfigError::Read(format!(
                    "config file {} not found",
                    path.display()
                )));
            }
            if path.extension().is_some_and(|e| e == "properties") {
                // Kafka's own format (server.properties), read as Kafka reads it.
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(format!("{}: {e}", path.display())))?;
                let origin = format!("file {}", path.display());
                from_properties = properties::parse(&text)
                    .map_err(|e| ConfigError::Read(format!("{}: {e}", path.display())))?
                    .into_iter()
                    .map(|(k, v)| (k, (v.trim().to_string(), origin.clone())))
                    .collect();
            } else {
                figment = figment.merge(Toml::file(path));
            }
        }
        if sources.env {
            // `GREGOR_LOG_DIRS` -> `log.dirs` (nested by `_`, flattened below).
            figment = figment.merge(Env::prefixed("GREGOR_").split("_"));
        }
        let dict: Dict = figment
            .extract()
            .map_err(|e| ConfigError::Read(e.to_string()))?;
        let mut raw: BTreeMap<String, (String, String)> = BTreeMap::new();
        flatten(&figment, "", &dict, &mut raw);
        // The file is below the environment: its entries fill only what is not set yet.
        for (name, entry) in from_properties {
            raw.entry(name).or_insert(entry);
        }
        for (name, value) in &sources.overrides {
            raw.insert(name.clone(), (value.clone(), "command line".to_string()));
        }
        let (ignored, controller_listener) = kafka_compat(&mut raw)?;
        if !ignored.is_empty() {
            tracing::warn!(
                "Kafka settings that do not apply to Gregor were ignored: {}",
                ignored.join(", ")
            );
        }
        Resolver {
            raw,
            controller_listener,
        }
        .build()
    }

    /// This (static) configuration with dynamic broker configs layered on top — the cluster
    /// default first, then this broker's own — validated as a whole, as a fresh load would be.
    /// What start-up decided beyond the settings (the port bound when the listener asked for
    /// port 0) is kept. Each layer holds `name -> value` pairs of settings that may change at
    /// run time; the caller has checked the names.
    pub fn with_dynamic(
        &self,
        cluster_default: &BTreeMap<String, String>,
        per_broker: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut raw: BTreeMap<String, (String, String)> = self
            .settings
            .values
            .iter()
            .filter(|(_, (_, explicit))| *explicit)
            .map(|(name, (value, _))| (name.clone(), (value.clone(), "configuration".to_string())))
            .collect();
        for (layer, origin) in [
            (cluster_default, "dynamic default broker config"),
            (per_broker, "dynamic broker config"),
        ] {
            for (name, value) in layer {
                raw.insert(name.clone(), (value.clone(), origin.to_string()));
            }
        }
        let mut config = Resolver {
            raw,
            controller_listener: self.cluster.controller_listener.map(|a| a.to_string()),
        }
        .build()?;
        config.advertised_port = self.advertised_port;
        config.listeners = self.listeners;
        config.cluster = self.cluster.clone();
        Ok(config)
    }
}

/// Makes a configuration written for Apache Kafka load, as Kafka would read it:
/// - the hours and minutes forms of a time setting become its milliseconds form, with Kafka's
///   precedence (ms over minutes over hours);
/// - `listeners` and `advertised.listeners` drop the controller listeners
///   (`controller.listener.names`) and name each remaining listener by its security protocol
///   (`listener.security.protocol.map`);
/// - a Kafka broker setting Gregor has no use for is removed and returned, to be named in one
///   warning; any other unknown name is an error, with the closest known name as a hint.
///
/// Returns the ignored names and the controller listener taken out of `listeners`.
fn kafka_compat(
    raw: &mut BTreeMap<String, (String, String)>,
) -> Result<(Vec<String>, Option<String>), ConfigError> {
    const TIME_FORMS: [(&str, &str, i64); 3] = [
        ("log.retention.ms", "log.retention.minutes", 60_000),
        ("log.retention.ms", "log.retention.hours", 3_600_000),
        ("log.roll.ms", "log.roll.hours", 3_600_000),
    ];
    for (ms, coarse, factor) in TIME_FORMS {
        let Some((value, origin)) = raw.remove(coarse) else {
            continue;
        };
        if raw.contains_key(ms) {
            continue;
        }
        let n: i64 = value.trim().parse().map_err(|e| ConfigError::BadValue {
            name: coarse.to_string(),
            origin: origin.clone(),
            reason: format!("expected an integer, got `{value}` ({e})"),
        })?;
        // -1 (forever) stays -1 whatever the unit.
        let millis = if n < 0 { n } else { n.saturating_mul(factor) };
        raw.insert(
            ms.to_string(),
            (millis.to_string(), format!("{origin} as {coarse}")),
        );
    }
    let controllers: Vec<String> = raw
        .get("controller.listener.names")
        .map_or("CONTROLLER", |(v, _)| v.as_str())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let controller_listener = raw.get("listeners").and_then(|(value, _)| {
        value.split(',').map(str::trim).find_map(|l| {
            let (name, rest) = l.split_once("://")?;
            controllers
                .iter()
                .any(|c| c == name)
                .then(|| rest.to_string())
        })
    });
    let protocols: BTreeMap<String, String> = raw
        .get("listener.security.protocol.map")
        .map(|(v, _)| {
            v.split(',')
                .filter_map(|pair| pair.split_once(':'))
                .map(|(l, p)| (l.trim().to_string(), p.trim().to_string()))
                .collect()
        })
        .unwrap_or_default();
    for name in ["listeners", "advertised.listeners"] {
        if let Some((value, _)) = raw.get_mut(name) {
            *value = broker_listeners(value, &controllers, &protocols);
        }
    }
    let mut ignored = Vec::new();
    for (name, (_, origin)) in raw.iter() {
        if SETTINGS.iter().any(|s| s.name == name) {
            continue;
        }
        if kafka_names::is_kafka_setting(name) {
            ignored.push(name.clone());
            continue;
        }
        let known = SETTINGS
            .iter()
            .map(|s| s.name)
            .chain(kafka_names::KAFKA_BROKER_SETTINGS.iter().copied());
        return Err(ConfigError::Unknown {
            name: name.clone(),
            origin: origin.clone(),
            hint: kafka_names::closest(name, known)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default(),
        });
    }
    for name in &ignored {
        raw.remove(name);
    }
    Ok((ignored, controller_listener))
}

/// A Kafka listener list as Gregor serves it: without the controller listeners, each other
/// listener named by its security protocol (`BROKER://:9092` mapped to PLAINTEXT becomes
/// `PLAINTEXT://:9092`).
fn broker_listeners(
    value: &str,
    controllers: &[String],
    protocols: &BTreeMap<String, String>,
) -> String {
    value
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (listener, rest) = l.split_once("://")?;
            if controllers.iter().any(|c| c == listener) {
                return None;
            }
            let protocol = protocols.get(listener).map_or(listener, String::as_str);
            Some(format!("{protocol}://{rest}"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Flattens nested tables into `a.b.c` names, remembering each value's source for messages.
fn flatten(
    figment: &Figment,
    prefix: &str,
    dict: &Dict,
    out: &mut BTreeMap<String, (String, String)>,
) {
    for (key, value) in dict {
        let name = if prefix.is_empty() {
            key.to_lowercase()
        } else {
            format!("{prefix}.{}", key.to_lowercase())
        };
        match value {
            Value::Dict(_, inner) => flatten(figment, &name, inner, out),
            other => {
                let source = figment
                    .get_metadata(other.tag())
                    .map(|m| match &m.source {
                        Some(src) => format!("{} {src}", m.name),
                        None => m.name.to_string(),
                    })
                    .unwrap_or_else(|| "configuration".to_string());
                out.insert(name, (scalar_to_string(other), source));
            }
        }
    }
}

fn scalar_to_string(value: &Value) -> String {
    match value {
        Value::String(_, s) => s.clone(),
        Value::Char(_, c) => c.to_string(),
        Value::Bool(_, b) => b.to_string(),
        // Figment keeps the width and sign it parsed (an environment `3` is a u8): each
        // conversion answers only for its own kind.
        Value::Num(_, n) => n
            .to_i128()
            .map(|i| i.to_string())
            .or_else(|| n.to_u128().map(|u| u.to_string()))
            .or_else(|| n.to_f64().map(|f| f.to_string()))
            .unwrap_or_default(),
        Value::Array(_, items) => items
            .iter()
            .map(scalar_to_string)
            .collect::<Vec<_>>()
            .join(","),
        Value::Empty(_, _) => String::new(),
        Value::Dict(..) => String::new(),
    }
}

/// Turns raw strings into typed values, falling back to each setting's default.
struct Resolver {
    raw: BTreeMap<String, (String, String)>,
    /// `host:port` of the controller listener found in `listeners`.
    controller_listener: Option<String>,
}

impl Resolver {
    fn get(&self, name: &str) -> (String, String) {
        if let Some((value, source)) = self.raw.get(name) {
            return (value.clone(), source.clone());
        }
        let default = SETTINGS
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.default)
            .unwrap_or("");
        (default.to_string(), "default".to_string())
    }

    fn parse<T: std::str::FromStr>(&self, name: &str, what: &str) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let (value, source) = self.get(name);
        value
            .trim()
            .parse::<T>()
            .map_err(|e| ConfigError::BadValue {
                name: name.to_string(),
                origin: source,
                reason: format!("expected {what}, got `{value}` ({e})"),
            })
    }

    fn bad(&self, name: &str, reason: String) -> ConfigError {
        ConfigError::BadValue {
            name: name.to_string(),
            origin: self.get(name).1,
            reason,
        }
    }

    /// A (min, max) pair of positive settings, max not below min.
    fn bounds(&self, min: &str, max: &str) -> Result<(i32, i32), ConfigError> {
        let lo: i32 = self.positive(min)?;
        let hi: i32 = self.positive(max)?;
        if hi < lo {
            return Err(self.bad(max, format!("must not be below {min}")));
        }
        Ok((lo, hi))
    }

    fn positive<T: std::str::FromStr + PartialOrd + Default>(
        &self,
        name: &str,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let v: T = self.parse(name, "a positive integer")?;
        if v <= T::default() {
            return Err(self.bad(name, "must be greater than 0".to_string()));
        }
        Ok(v)
    }

    /// A retention limit: an integer, where any negative value means "no limit" (-1).
    fn retention(&self, name: &str) -> Result<i64, ConfigError> {
        let v: i64 = self.parse(name, "an integer (-1 for no limit)")?;
        Ok(v.max(-1))
    }

    /// A broker default for a topic config, validated by the topic config's rules.
    fn topic_level(&self, name: &str, topic_name: &str) -> Result<String, ConfigError> {
        let (value, _) = self.get(name);
        let value = value.trim().to_string();
        crate::metadata::topic_config::validate(topic_name, Some(&value))
            .map_err(|reason| self.bad(name, reason))?;
        Ok(value)
    }

    fn setting_values(&self) -> SettingValues {
        SettingValues {
            values: SETTINGS
                .iter()
                .map(|s| {
                    let (value, _) = self.get(s.name);
                    (s.name.to_string(), (value, self.raw.contains_key(s.name)))
                })
                .collect(),
        }
    }

    fn build(self) -> Result<Config, ConfigError> {
        let (listeners, _) = self.get("listeners");
        let (roles, _) = self.get("process.roles");
        let controller_only = roles.split(',').all(|r| r.trim() == "controller");
        let listener = match (&self.controller_listener, controller_only, listeners.trim()) {
            // A controller-only node serves no clients: `listeners` may hold only its
            // controller listener, which then stands in as its address.
            (Some(controller), true, "") => parse_listener(&format!("PLAINTEXT://{controller}")),
            _ => parse_listener(&listeners),
        }
        .map_err(|r| self.bad("listeners", r))?;
        let (advertised, _) = self.get("advertised.listeners");
        let (advertised_host, advertised_port) = if advertised.trim().is_empty() {
            (listener.ip().to_string(), listener.port())
        } else {
            parse_advertised(&advertised).map_err(|r| self.bad("advertised.listeners", r))?
        };
        let (dirs, _) = self.get("log.dirs");
        let dirs: Vec<&str> = dirs
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        let log_dir = match dirs.as_slice() {
            [one] => PathBuf::from(one),
            [] => return Err(self.bad("log.dirs", "must name a directory".to_string())),
            _ => {
                return Err(self.bad(
                    "log.dirs",
                    "only one log directory is supported today".to_string(),
                ))
            }
        };
        let node_id: i32 = self.parse("node.id", "an integer")?;
        if node_id < 0 {
            return Err(self.bad("node.id", "must be 0 or more".to_string()));
        }
        let cluster = self.cluster(node_id)?;
        let (cluster_id, _) = self.get("cluster.id");
        let cluster_id = Some(cluster_id.trim().to_string()).filter(|c| !c.is_empty());
        let default_replication_factor: i16 = self.positive("default.replication.factor")?;
        let message_max_bytes: usize = self.positive("message.max.bytes")?;
        let socket_request_max_bytes: usize = self.positive("socket.request.max.bytes")?;
        if socket_request_max_bytes > i32::MAX as usize {
            return Err(self.bad(
                "socket.request.max.bytes",
                "must fit in an int32".to_string(),
            ));
        }
        let queued: i64 = self.parse("queued.max.request.bytes", "an integer")?;
        let queued_max_request_bytes =
            match queued {
                -1 => None,
                n if n >= socket_request_max_bytes as i64 => usize::try_from(n).ok(),
                _ => return Err(self.bad(
                    "queued.max.request.bytes",
                    "must be -1 or at least socket.request.max.bytes (a largest request must fit)"
                        .to_string(),
                )),
            };
        let log_segment_bytes: u64 = self.positive("log.segment.bytes")?;
        if log_segment_bytes < 14 {
            return Err(self.bad("log.segment.bytes", "must be at least 14".to_string()));
        }
        for (name, topic_name) in [
            ("log.index.size.max.bytes", "segment.index.bytes"),
            ("log.flush.interval.messages", "flush.messages"),
            (
                "log.cleaner.min.cleanable.ratio",
                "min.cleanable.dirty.ratio",
            ),
            ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
            ("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms"),
            ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
            ("min.insync.replicas", "min.insync.replicas"),
        ] {
            self.topic_level(name, topic_name)?;
        }
        let (policy, _) = self.get("log.flush.policy");
        let flush_policy = match policy.trim() {
            "acks-all" => FlushPolicy::AcksAll,
            "interval" => FlushPolicy::Interval,
            other => {
                return Err(self.bad(
                    "log.flush.policy",
                    format!("expected `acks-all` or `interval`, got `{other}`"),
                ))
            }
        };
        let group_min_session_timeout_ms: i32 = self.positive("group.min.session.timeout.ms")?;
        let group_max_session_timeout_ms: i32 = self.positive("group.max.session.timeout.ms")?;
        if group_max_session_timeout_ms < group_min_session_timeout_ms {
            return Err(self.bad(
                "group.max.session.timeout.ms",
                "must not be below group.min.session.timeout.ms".to_string(),
            ));
        }
        let group_consumer_heartbeat_interval_ms: i32 =
            self.positive("group.consumer.heartbeat.interval.ms")?;
        let group_consumer_session_timeout_ms: i32 =
            self.positive("group.consumer.session.timeout.ms")?;
        if group_consumer_heartbeat_interval_ms >= group_consumer_session_timeout_ms {
            return Err(self.bad(
                "group.consumer.heartbeat.interval.ms",
                "must be below group.consumer.session.timeout.ms".to_string(),
            ));
        }
        let group_consumer_session_timeout_bounds_ms = self.bounds(
            "group.consumer.min.session.timeout.ms",
            "group.consumer.max.session.timeout.ms",
        )?;
        let group_consumer_heartbeat_interval_bounds_ms = self.bounds(
            "group.consumer.min.heartbeat.interval.ms",
            "group.consumer.max.heartbeat.interval.ms",
        )?;
        Ok(Config {
            listeners: listener,
            cluster,
            advertised_host,
            advertised_port,
            log_dir,
            node_id: crate::common::NodeId(node_id),
            cluster_id,
            num_partitions: self.positive("num.partitions")?,
            default_replication_factor,
            auto_create_topics_enable: self.parse("auto.create.topics.enable", "true or false")?,
            leader_replication_throttled_rate: self
                .positive("leader.replication.throttled.rate")?,
            follower_replication_throttled_rate: self
                .positive("follower.replication.throttled.rate")?,
            message_max_bytes,
            socket_request_max_bytes,
            queued_max_request_bytes,
            log_segment_bytes,
            log_index_interval_bytes: self.positive("log.index.interval.bytes")?,
            flush_policy,
            flush_interval_ms: self.positive("log.flush.interval.ms")?,
            checkpoint_interval_ms: self.positive("log.flush.offset.checkpoint.interval.ms")?,
            max_connections: self.positive("max.connections")?,
            connection_max_inflight_requests: self.positive("connection.max.inflight.requests")?,
            log_retention_ms: self.retention("log.retention.ms")?,
            log_retention_bytes: self.retention("log.retention.bytes")?,
            log_retention_check_interval_ms: self.positive("log.retention.check.interval.ms")?,
            log_segment_fd_cache_size: self.positive("log.segment.fd.cache.size")?,
            log_roll_ms: self.positive("log.roll.ms")?,
            log_cleanup_policy: self.topic_level("log.cleanup.policy", "cleanup.policy")?,
            log_message_timestamp_type: self
                .topic_level("log.message.timestamp.type", "message.timestamp.type")?,
            compression_type: self.topic_level("compression.type", "compression.type")?,
            log_cleaner_enable: self.parse("log.cleaner.enable", "true or false")?,
            log_cleaner_backoff_ms: self.positive("log.cleaner.backoff.ms")?,
            log_cleaner_dedupe_buffer_size: self.positive("log.cleaner.dedupe.buffer.size")?,
            settings: self.setting_values(),
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            group_initial_rebalance_delay_ms: self.parse(
                "group.initial.rebalance.delay.ms",
                "milliseconds (0 or more)",
            )?,
            group_consumer_heartbeat_interval_ms,
            group_consumer_session_timeout_ms,
            group_consumer_session_timeout_bounds_ms,
            group_consumer_heartbeat_interval_bounds_ms,
            offsets_retention_minutes: self.positive("offsets.retention.minutes")?,
            offsets_topic_num_partitions: self.positive("offsets.topic.num.partitions")?,
            transaction_state_log_num_partitions: self
                .positive("transaction.state.log.num.partitions")?,
            offsets_topic_replication_factor: self.positive("offsets.topic.replication.factor")?,
            transaction_state_log_replication_factor: self
                .positive("transaction.state.log.replication.factor")?,
            transaction_max_timeout_ms: self.positive("transaction.max.timeout.ms")?,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: self
                .positive("transaction.abort.timed.out.transaction.cleanup.interval.ms")?,
            transactional_id_expiration_ms: self.positive("transactional.id.expiration.ms")?,
            producer_id_expiration_ms: self.positive("producer.id.expiration.ms")?,
        })
    }
}

impl Resolver {
    /// The cluster settings: roles, voters, the controller listener.
    fn cluster(&self, node_id: i32) -> Result<ClusterConfig, ConfigError> {
        let (roles_text, _) = self.get("process.roles");
        let mut listed: Vec<&str> = roles_text.split(',').map(str::trim).collect();
        listed.sort_unstable();
        listed.dedup();
        let roles = match listed.as_slice() {
            ["broker", "controller"] => Roles {
                broker: true,
                controller: true,
            },
            ["broker"] => Roles {
                broker: true,
                controller: false,
            },
            ["controller"] => Roles {
                broker: false,
                controller: true,
            },
            _ => {
                return Err(self.bad(
                    "process.roles",
                    format!("`{roles_text}`: expected broker, controller, or broker,controller"),
                ))
            }
        };
        let controller_listener = match &self.controller_listener {
            Some(l) => Some(
                parse_listener(&format!("PLAINTEXT://{l}"))
                    .map_err(|r| self.bad("listeners", format!("controller listener: {r}")))?,
            ),
            None => None,
        };
        let (voters_text, _) = self.get("controller.quorum.voters");
        let mut voters = BTreeMap::new();
        for voter in voters_text
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            let bad = || {
                self.bad(
                    "controller.quorum.voters",
                    format!("`{voter}`: expected id@host:port"),
                )
            };
            let (id, addr) = voter.split_once('@').ok_or_else(bad)?;
            let id: i32 = id.trim().parse().map_err(|_| bad())?;
            if id < 0 || !addr.contains(':') {
                return Err(bad());
            }
            voters.insert(crate::common::NodeId(id), addr.trim().to_string());
        }
        let is_voter = voters.contains_key(&crate::common::NodeId(node_id));
        if roles.controller && !voters.is_empty() && !is_voter {
            return Err(self.bad(
                "controller.quorum.voters",
                format!("node.id {node_id} has the controller role but is not among the voters"),
            ));
        }
        if !roles.controller && (voters.is_empty() || is_voter) {
            return Err(self.bad(
                "controller.quorum.voters",
                format!("a broker-only node must name the controllers, and node.id {node_id} must not be one of them"),
            ));
        }
        let needs_listener = !roles.controller || !roles.broker || voters.len() > 1;
        if needs_listener && controller_listener.is_none() {
            return Err(self.bad(
                "listeners",
                "this node needs a listener named in controller.listener.names (e.g. CONTROLLER://127.0.0.1:9093): controllers talk Raft on it, and a broker-only node receives the metadata log on it".to_string(),
            ));
        }
        let (rack, _) = self.get("broker.rack");
        Ok(ClusterConfig {
            roles,
            controller_listener,
            voters,
            election_timeout_ms: self.positive("controller.quorum.election.timeout.ms")?,
            rack: Some(rack.trim().to_string()).filter(|r| !r.is_empty()),
            broker_session_timeout_ms: self.positive("broker.session.timeout.ms")?,
            broker_heartbeat_interval_ms: self.positive("broker.heartbeat.interval.ms")?,
            replica_lag_time_max_ms: self.positive("replica.lag.time.max.ms")?,
            replica_fetch_wait_max_ms: self.positive("replica.fetch.wait.max.ms")?,
            replica_fetch_max_bytes: self.positive("replica.fetch.max.bytes")?,
            replica_fetch_response_max_bytes: self.positive("replica.fetch.response.max.bytes")?,
            unclean_leader_election_enable: self
                .parse("unclean.leader.election.enable", "true or false")?,
            auto_leader_rebalance_enable: self
                .parse("auto.leader.rebalance.enable", "true or false")?,
            leader_imbalance_check_interval_seconds: self
                .positive("leader.imbalance.check.interval.seconds")?,
            leader_imbalance_per_broker_percentage: self
                .parse("leader.imbalance.per.broker.percentage", "a percentage")?,
        })
    }
}

/// Parses `PLAINTEXT://host:port` (one listener) into a socket address to bind.
fn parse_listener(text: &str) -> Result<SocketAddr, String> {
    let (host, port) = parse_advertised(text)?;
    let host = if host.is_empty() {
        "0.0.0.0".to_string()
    } else {
        host
    };
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    addr.parse::<SocketAddr>().map_err(|_| {
        format!("`{text}`: the host must be an IP address (e.g. PLAINTEXT://127.0.0.1:9092)")
    })
}

/// Parses `PLAINTEXT://host:port` into (host, port); the host may be a name.
fn parse_advertised(text: &str) -> Result<(String, u16), String> {
    let items: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [one] = items.as_slice() else {
        return Err(format!("`{text}`: exactly one listener is supported today"));
    };
    let rest = one.strip_prefix("PLAINTEXT://").ok_or_else(|| {
        format!("`{one}`: only PLAINTEXT://host:port listeners are supported today")
    })?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("`{one}`: missing :port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{one}`: bad port `{port}`"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(&Sources {
            file: None,
            env: false,
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let c = Config::defaults();
        assert_eq!(c.listeners.to_string(), "127.0.0.1:9092");
        assert_eq!(c.log_dir, PathBuf::from("./data"));
        assert_eq!(c.message_max_bytes, 1_048_588);
        assert_eq!(c.flush_policy, FlushPolicy::AcksAll);
        assert!(c.auto_create_topics_enable);
    }

    /// Kafka's `queued.max.requests` bounds a broker-wide queue Gregor does not have: it is
    /// accepted as a Kafka setting and ignored, and the per-connection depth Gregor has goes by
    /// its own name.
    #[test]
    fn queued_max_requests_is_kafkas_and_the_connection_depth_is_gregors() {
        let c = with(&[("queued.max.requests", "1")]).unwrap();
        assert_eq!(c.connection_max_inflight_requests, 500);
        assert!(c.settings.get("queued.max.requests").is_none());
        let c = with(&[("connection.max.inflight.requests", "7")]).unwrap();
        assert_eq!(c.connection_max_inflight_requests, 7);
        assert!(with(&[("connection.max.inflight.requests", "0")]).is_err());
        // min.insync.replicas is validated as the topic config is.
        assert!(with(&[("min.insync.replicas", "0")]).is_err());
        assert_eq!(
            with(&[("min.insync.replicas", "2")])
                .unwrap()
                .settings
                .get("min.insync.replicas"),
            Some("2")
        );
    }

    #[test]
    fn roles_voters_and_controller_listener_are_checked_together() {
        let both = "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093";
        let voters = "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293";
        let c = with(&[("listeners", both), ("controller.quorum.voters", voters)]).unwrap();
        assert_eq!(c.cluster.voters.len(), 3);
        assert_eq!(c.cluster.controller_listener.map(|a| a.port()), Some(9093));
        assert_eq!(
            c.listeners.port(),
            9092,
            "the client listener is the other one"
        );
        assert!(c.cluster.roles.broker && c.cluster.roles.controller);
        let err = |o: &[(&str, &str)]| with(o).unwrap_err().to_string();
        // Several voters need a controller listener.
        assert!(err(&[("controller.quorum.voters", voters)]).contains("listeners"));
        // A controller must be a voter; a broker-only node must not be one, and needs voters.
        assert!(err(&[
            ("listeners", both),
            ("node.id", "4"),
            ("controller.quorum.voters", voters)
        ])
        .contains("voters"));
        assert!(err(&[
            ("listeners", both),
            ("process.roles", "broker"),
            ("controller.quorum.voters", voters)
        ])
        .contains("must not be one of them"));
        assert!(err(&[("listeners", both), ("process.roles", "broker")])
            .contains("must name the controllers"));
        assert!(err(&[("process.roles", "observer")]).contains("process.roles"));
        // A controller-only node may list only its controller listener.
        let c = with(&[
            ("listeners", "CONTROLLER://127.0.0.1:9093"),
            ("process.roles", "controller"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
        ])
        .unwrap();
        assert!(!c.cluster.roles.broker);
    }

    #[test]
    fn unknown_and_bad_settings_are_named() {
        let err = with(&[("num.partitionz", "3")]).unwrap_err().to_string();
        assert!(err.contains("num.partitionz"), "{err}");
        let err = with(&[("num.partitions", "zero")]).unwrap_err().to_string();
        assert!(
            err.contains("num.partitions") && err.contains("zero"),
            "{err}"
        );
        let err = with(&[("listeners", "SSL://1.2.3.4:9")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("listeners"), "{err}");
    }

    #[test]
    fn shipped_example_file_documents_every_setting_with_its_default() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("etc/gregor.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        for s in SETTINGS {
            assert!(
                text.contains(&format!("\"{}\" = ", s.name)),
                "etc/gregor.toml lacks {}",
                s.name
            );
        }
        let from_file = Config::load(&Sources {
            file: Some(path),
            env: false,
            overrides: vec![],
        })
        .unwrap();
        let defaults = Config::defaults();
        assert_eq!(
            format!("{from_file:?}"),
            format!("{defaults:?}"),
            "the file states the defaults"
        );
    }

    #[test]
    fn toml_dotted_and_quoted_keys_both_work() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, "\"num.partitions\" = 4\nlog.segment.bytes = 1000\n").unwrap();
        let c = Config::load(&Sources {
            file: Some(path.clone()),
            env: false,
            overrides: vec![],
        })
        .unwrap();
        assert_eq!(c.num_partitions, 4);
        assert_eq!(c.log_segment_bytes, 1000);
        std::fs::write(&path, "log.segmnt.bytes = 1000\n").unwrap();
        let err = Config::load(&Sources {
            file: Some(path),
            env: false,
            overrides: vec![],
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("log.segmnt.bytes"), "{err}");
    }
}
