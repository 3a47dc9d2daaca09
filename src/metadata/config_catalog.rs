//! The catalogue of topic configs as DescribeConfigs shows them: each Kafka topic config with its
//! type, documentation, broker-level synonym and default, and the resolution of a topic's
//! effective value and source (TOPIC_CONFIG over STATIC_BROKER_CONFIG over DEFAULT_CONFIG).
//! Pure functions over the broker `Config` and a topic's overrides; thread-safe.

use std::collections::BTreeMap;

use crate::config::{Config, SETTINGS};

/// DescribeConfigs `config_source`: set on the topic.
pub const SOURCE_TOPIC_CONFIG: i8 = 1;
/// DescribeConfigs `config_source`: a dynamic config of this broker.
pub const SOURCE_DYNAMIC_BROKER_CONFIG: i8 = 2;
/// DescribeConfigs `config_source`: a dynamic cluster-wide default broker config.
pub const SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
/// DescribeConfigs `config_source`: set in the broker's static configuration (file, env, flag).
pub const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
/// DescribeConfigs `config_source`: the built-in default.
pub const SOURCE_DEFAULT_CONFIG: i8 = 5;
/// DescribeConfigs `config_source`: set on the consumer group (KIP-848 group configs).
pub const SOURCE_DYNAMIC_GROUP_CONFIG: i8 = 8;

/// DescribeConfigs `config_type` codes (v3+).
pub mod config_type {
    /// BOOLEAN.
    pub const BOOLEAN: i8 = 1;
    /// STRING.
    pub const STRING: i8 = 2;
    /// INT.
    pub const INT: i8 = 3;
    /// LONG.
    pub const LONG: i8 = 5;
    /// DOUBLE.
    pub const DOUBLE: i8 = 6;
    /// LIST.
    pub const LIST: i8 = 7;
}

/// One topic config as described to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfigDef {
    /// Topic-level name.
    pub name: &'static str,
    /// `config_type` code.
    pub config_type: i8,
    /// The broker setting that supplies the default, if any (Kafka's synonym).
    pub broker_synonym: Option<&'static str>,
    /// Kafka's default, used when the synonym is not a Gregor setting.
    pub kafka_default: &'static str,
    /// One-line documentation.
    pub doc: &'static str,
}

const MAX_LONG: &str = "9223372036854775807";

macro_rules! def {
    ($name:expr, $ty:ident, $syn:expr, $default:expr, $doc:expr) => {
        TopicConfigDef {
            name: $name,
            config_type: config_type::$ty,
            broker_synonym: $syn,
            kafka_default: $default,
            doc: $doc,
        }
    };
}

/// Every topic config DescribeConfigs lists, in name order (Kafka 4.x; configs Kafka 4 removed,
/// such as `message.format.version`, are accepted for compatibility but not listed).
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!(
        "cleanup.policy",
        LIST,
        Some("log.cleanup.policy"),
        "delete",
        "`delete` (time/size retention), `compact` (keep the latest record per key) or both."
    ),
    def!(
        "compression.gzip.level",
        INT,
        Some("compression.gzip.level"),
        "-1",
        "Compression level when compression.type is gzip."
    ),
    def!(
        "compression.lz4.level",
        INT,
        Some("compression.lz4.level"),
        "9",
        "Not applied by Gregor: its lz4 encoder has a single (fast) level; the level is accepted so configs written for Kafka load, and the lz4 batches written are valid whatever it says."
    ),
    def!(
        "compression.type",
        STRING,
        Some("compression.type"),
        "producer",
        "Final codec of stored batches; `producer` keeps the producer's codec."
    ),
    def!(
        "compression.zstd.level",
        INT,
        Some("compression.zstd.level"),
        "3",
        "Compression level when compression.type is zstd."
    ),
    def!(
        "delete.retention.ms",
        LONG,
        Some("log.cleaner.delete.retention.ms"),
        "86400000",
        "How long tombstones are kept on compacted topics."
    ),
    def!(
        "file.delete.delay.ms",
        LONG,
        Some("log.segment.delete.delay.ms"),
        "60000",
        "Not applicable to Gregor: a deleted segment's files are unlinked at once, since readers already reading it keep their open descriptor (what Kafka's delay protects); accepted so configs written for Kafka load."
    ),
    def!(
        "flush.messages",
        LONG,
        Some("log.flush.interval.messages"),
        MAX_LONG,
        "Messages between forced fsyncs."
    ),
    def!(
        "flush.ms",
        LONG,
        Some("log.flush.interval.ms"),
        MAX_LONG,
        "Time between background fsyncs."
    ),
    def!(
        "follower.replication.throttled.replicas",
        LIST,
        None,
        "",
        "Replicas whose follower replication is throttled."
    ),
    def!(
        "index.interval.bytes",
        INT,
        Some("log.index.interval.bytes"),
        "4096",
        "Bytes of log between two sparse offset index entries."
    ),
    def!(
        "leader.replication.throttled.replicas",
        LIST,
        None,
        "",
        "Replicas whose leader replication is throttled."
    ),
    def!(
        "local.retention.bytes",
        LONG,
        Some("log.local.retention.bytes"),
        "-2",
        "Local retention size with tiered storage; -2 means retention.bytes."
    ),
    def!(
        "local.retention.ms",
        LONG,
        Some("log.local.retention.ms"),
        "-2",
        "Local retention time with tiered storage; -2 means retention.ms."
    ),
    def!(
        "max.compaction.lag.ms",
        LONG,
        Some("log.cleaner.max.compaction.lag.ms"),
        MAX_LONG,
        "Longest a record stays ineligible for compaction."
    ),
    def!(
        "max.message.bytes",
        INT,
        Some("message.max.bytes"),
        "1048588",
        "Largest record batch the topic accepts."
    ),
    def!(
        "message.timestamp.after.max.ms",
        LONG,
        Some("log.message.timestamp.after.max.ms"),
        "3600000",
        "How far in the future a CreateTime timestamp may be."
    ),
    def!(
        "message.timestamp.before.max.ms",
        LONG,
        Some("log.message.timestamp.before.max.ms"),
        MAX_LONG,
        "How far in the past a CreateTime timestamp may be."
    ),
    def!(
        "message.timestamp.type",
        STRING,
        Some("log.message.timestamp.type"),
        "CreateTime",
        "`CreateTime` or `LogAppendTime`."
    ),
    def!(
        "min.cleanable.dirty.ratio",
        DOUBLE,
        Some("log.cleaner.min.cleanable.ratio"),
        "0.5",
        "Dirty fraction of the log that triggers compaction."
    ),
    def!(
        "min.compaction.lag.ms",
        LONG,
        Some("log.cleaner.min.compaction.lag.ms"),
        "0",
        "Shortest time a record stays uncompacted."
    ),
    def!(
        "min.insync.replicas",
        INT,
        Some("min.insync.replicas"),
        "1",
        "In-sync replicas an acks=all produce needs; with fewer it gets NOT_ENOUGH_REPLICAS. A single Gregor broker has one in-sync replica."
    ),
    def!(
        "preallocate",
        BOOLEAN,
        Some("log.preallocate"),
        "false",
        "Not applicable to Gregor: segment files grow as they are written and indexes are written at their exact size; accepted so configs written for Kafka load."
    ),
    def!(
        "remote.storage.enable",
        BOOLEAN,
        None,
        "false",
        "Tiered storage for the topic. Gregor has no remote storage: only false is accepted (true gets INVALID_CONFIG)."
    ),
    def!(
        "retention.bytes",
        LONG,
        Some("log.retention.bytes"),
        "-1",
        "Largest size of a partition before old segments are deleted; -1 = no limit."
    ),
    def!(
        "retention.ms",
        LONG,
        Some("log.retention.ms"),
        "604800000",
        "Age after which segments are deleted; -1 = forever."
    ),
    def!(
        "segment.bytes",
        INT,
        Some("log.segment.bytes"),
        "1073741824",
        "Segment file size."
    ),
    def!(
        "segment.index.bytes",
        INT,
        Some("log.index.size.max.bytes"),
        "10485760",
        "Largest offset index file."
    ),
    def!(
        "segment.jitter.ms",
        LONG,
        Some("log.roll.jitter.ms"),
        "0",
        "Random jitter subtracted from segment.ms."
    ),
    def!(
        "segment.ms",
        LONG,
        Some("log.roll.ms"),
        "604800000",
        "Roll a segment this long after its first batch."
    ),
    def!(
        "unclean.leader.election.enable",
        BOOLEAN,
        Some("unclean.leader.election.enable"),
        "false",
        "Allow out-of-sync replicas to become leader."
    ),
];

/// Topic configs Gregor accepts but does not act on, because what they tune does not exist in
/// Gregor (each one's documentation says why). Start-up names the topics that set them.
pub const NOT_APPLIED: &[&str] = &[
    "compression.lz4.level",
    "file.delete.delay.ms",
    "preallocate",
];

/// The definition of topic config `name`, if it is listed.
pub fn topic_config(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// True if broker setting `name` may change at run time (a BROKER resource in
/// IncrementalAlterConfigs / AlterConfigs). As in Kafka, these are the broker-level defaults of
/// topic configs: a change is re-applied at once to every partition log whose topic does not
/// override it. Every other setting is static (Kafka answers INVALID_REQUEST for those too).
pub fn is_dynamic_broker_setting(name: &str) -> bool {
    (TOPIC_CONFIGS.iter().any(|d| d.broker_synonym == Some(name))
        || BROKER_ONLY_DYNAMIC.contains(&name))
        && SETTINGS.iter().any(|s| s.name == name)
}

/// Dynamic broker settings that are not the default of a topic config (Kafka's
/// DynamicConfig.Broker): the replication throttles `kafka-reassign-partitions` sets and clears.
const BROKER_ONLY_DYNAMIC: &[&str] = &[
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
];

/// The group configs Gregor honours (Kafka's GroupConfig), each defaulting to its broker
/// setting. Kafka's `share.*` and `streams.*` group configs belong to group types Gregor does not
/// serve, so they are refused rather than stored and ignored.
pub static GROUP_CONFIGS: [TopicConfigDef; 2] = [
    def!(
        "consumer.session.timeout.ms",
        INT,
        Some("group.consumer.session.timeout.ms"),
        "45000",
        "The timeout to detect client failures when using the consumer group protocol."
    ),
    def!(
        "consumer.heartbeat.interval.ms",
        INT,
        Some("group.consumer.heartbeat.interval.ms"),
        "5000",
        "The heartbeat interval given to the members of a consumer group."
    ),
];

/// The definition of group config `name`, if Gregor has it.
pub fn group_config(name: &str) -> Option<&'static TopicConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// One (name, value, source) entry: a described value or one of its synonyms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    /// Config name (topic or broker level).
    pub name: String,
    /// Value as text.
    pub value: String,
    /// DescribeConfigs source code.
    pub source: i8,
}

/// A topic config resolved for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The definition.
    pub def: &'static TopicConfigDef,
    /// Effective value and where it comes from.
    pub value: Sourced,
    /// Every level that defines it, highest precedence first (Kafka's synonyms).
    pub synonyms: Vec<Sourced>,
}

/// Where a broker setting's value can come from, highest precedence first: this broker's
/// dynamic configs, the cluster-wide dynamic default, the static configuration, the default.
pub struct BrokerLayers<'a> {
    /// The static configuration (file, environment, flags).
    pub config: &'a Config,
    pub per_broker: BTreeMap<String, String>,
    pub cluster_default: BTreeMap<String, String>,
}

impl<'a> From<&'a Config> for BrokerLayers<'a> {
    /// A configuration's own values, with no dynamic layer (enough where only the value counts:
    /// a configuration in force already has its dynamic values in it).
    fn from(config: &'a Config) -> BrokerLayers<'a> {
        BrokerLayers {
            config,
            per_broker: BTreeMap::new(),
            cluster_default: BTreeMap::new(),
        }
    }
}

impl BrokerLayers<'_> {
    /// Setting `name`'s value in each layer that has one, highest first, ending with its
    /// default: DescribeConfigs' synonyms.
    pub fn synonyms(&self, name: &str, default: &str) -> Vec<Sourced> {
        let mut out = Vec::new();
        let mut push = |value: &str, source: i8| {
            out.push(Sourced {
                name: name.to_string(),
                value: value.to_string(),
                source,
            })
        };
        if let Some(v) = self.per_broker.get(name) {
            push(v, SOURCE_DYNAMIC_BROKER_CONFIG);
        }
        if let Some(v) = self.cluster_default.get(name) {
            push(v, SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG);
        }
        if self.config.settings.is_explicit(name) {
            push(
                self.config.settings.get(name).unwrap_or(default),
                SOURCE_STATIC_BROKER_CONFIG,
            );
        }
        push(default, SOURCE_DEFAULT_CONFIG);
        out
    }
}

/// Resolves one topic config for a topic with `overrides`.
pub fn resolve(
    layers: &BrokerLayers<'_>,
    overrides: &BTreeMap<String, String>,
    def: &'static TopicConfigDef,
) -> Resolved {
    resolve_as(layers, overrides, def, SOURCE_TOPIC_CONFIG)
}

/// A group config's effective value and synonyms: the group's own value
/// (DYNAMIC_GROUP_CONFIG) over the broker setting over the default.
pub fn resolve_group(
    layers: &BrokerLayers<'_>,
    overrides: &BTreeMap<String, String>,
    def: &'static TopicConfigDef,
) -> Resolved {
    resolve_as(layers, overrides, def, SOURCE_DYNAMIC_GROUP_CONFIG)
}

fn resolve_as(
    layers: &BrokerLayers<'_>,
    overrides: &BTreeMap<String, String>,
    def: &'static TopicConfigDef,
    override_source: i8,
) -> Resolved {
    let mut synonyms = Vec::new();
    if let Some(v) = overrides.get(def.name) {
        synonyms.push(Sourced {
            name: def.name.to_string(),
            value: v.clone(),
            source: override_source,
        });
    }
    let default_name = def.broker_synonym.unwrap_or(def.name).to_string();
    match def
        .broker_synonym
        .and_then(|s| SETTINGS.iter().find(|x| x.name == s))
    {
        Some(setting) => synonyms.extend(layers.synonyms(setting.name, setting.default)),
        None => synonyms.push(Sourced {
            name: default_name,
            value: def.kafka_default.to_string(),
            source: SOURCE_DEFAULT_CONFIG,
        }),
    }
    let first = synonyms[0].clone();
    Resolved {
        def,
        value: Sourced {
            name: def.name.to_string(),
            value: first.value,
            source: first.source,
        },
        synonyms,
    }
}

/// The broker-level default of every topic config, as topic-level `name = value` pairs (what a
/// topic without overrides gets).
pub fn broker_topic_defaults(config: &Config) -> BTreeMap<String, String> {
    TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let r = resolve(&BrokerLayers::from(config), &BTreeMap::new(), d);
            (d.name.to_string(), r.value.value)
        })
        .collect()
}

/// The `config_type` of a broker setting, guessed from its name and default.
pub fn broker_setting_type(name: &str, default: &str) -> i8 {
    if default == "true" || default == "false" {
        config_type::BOOLEAN
    } else if name.ends_with(".ms") || name.ends_with(".bytes") || name.ends_with(".minutes") {
        config_type::LONG
    } else if default.parse::<i64>().is_ok() {
        config_type::INT
    } else if name.ends_with("listeners") || name == "log.dirs" || name == "log.cleanup.policy" {
        config_type::LIST
    } else {
        config_type::STRING
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sources;

    fn config(overrides: &[(&str, &str)]) -> Config {
        Config::load(&Sources {
            file: None,
            env: false,
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .unwrap()
    }

    #[test]
    fn catalogue_is_sorted_and_known() {
        for w in TOPIC_CONFIGS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
        for d in TOPIC_CONFIGS {
            assert!(
                super::super::topic_config::KNOWN.contains(&d.name),
                "{}",
                d.name
            );
            assert_eq!(
                super::super::topic_config::validate(d.name, Some(d.kafka_default)),
                Ok(()),
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn sources_follow_kafka_precedence() {
        let def = topic_config("retention.ms").unwrap();
        let c = config(&[]);
        let r = resolve(&BrokerLayers::from(&c), &BTreeMap::new(), def);
        assert_eq!(
            (r.value.value.as_str(), r.value.source),
            ("604800000", SOURCE_DEFAULT_CONFIG)
        );
        assert_eq!(r.synonyms.len(), 1);
        assert_eq!(r.synonyms[0].name, "log.retention.ms");

        let c = config(&[("log.retention.ms", "1000")]);
        let r = resolve(&BrokerLayers::from(&c), &BTreeMap::new(), def);
        assert_eq!(
            (r.value.value.as_str(), r.value.source),
            ("1000", SOURCE_STATIC_BROKER_CONFIG)
        );
        assert_eq!(r.synonyms.len(), 2);

        let mut t = BTreeMap::new();
        t.insert("retention.ms".to_string(), "5".to_string());
        let r = resolve(&BrokerLayers::from(&c), &t, def);
        assert_eq!(
            (r.value.value.as_str(), r.value.source),
            ("5", SOURCE_TOPIC_CONFIG)
        );
        let sources: Vec<i8> = r.synonyms.iter().map(|s| s.source).collect();
        assert_eq!(sources, vec![1, 4, 5]);

        let d = broker_topic_defaults(&config(&[("log.segment.bytes", "2000")]));
        assert_eq!(d.get("segment.bytes").map(String::as_str), Some("2000"));
        assert_eq!(
            d.get("min.cleanable.dirty.ratio").map(String::as_str),
            Some("0.5")
        );
    }
}
