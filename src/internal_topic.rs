//! An internal compacted topic created on first use (`__consumer_offsets`,
//! `__transaction_state`), as Kafka creates them: the first request that needs the topic
//! creates it with every partition log, and later callers learn its partition count without
//! touching the metadata store. Thread-safe.
//!
//! Also the coordinators' view of the broker: [`CoordinatorHost`] is all a coordinator living
//! on an internal topic may use (the partition logs, the metadata, the configuration in force,
//! topic creation), and [`StoreError`] is why such a topic could not be read or written. The
//! group and transaction coordinators import this module, never `broker`, so the import graph
//! runs one way: `broker` → coordinators → `internal_topic` → `log`, `metadata`, `config`.
//!
//! And which of the topic's partitions a coordinator serves ([`Ownership`]): as in Kafka, a
//! coordinator serves the keys of the partitions this broker leads, each loaded from its log
//! when leadership arrives (`onElection`) and dropped when it goes (`onResignation`).
//! [`led_partitions`] is the one reading of the metadata that says which partitions those are.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{LeaderEpoch, PartitionIndex};
use crate::config::Config;
use crate::log::{LogError, LogManager, PartitionLog, TopicPartition};
use crate::metadata::{MetadataError, MetadataStore};
use crate::records::RecordError;

/// Why a topic could not be created, changed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{adding} more partitions would bring the broker to {total}; it holds at most {limit} (one open file each, within the open-file limit)")]
    PartitionLimit {
        adding: usize,
        total: usize,
        limit: usize,
    },
}

/// Why an internal topic (`__consumer_offsets`, `__transaction_state`) or a transaction
/// marker could not be read or written. The coordinator's name is in the context the caller
/// logs, not in the error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("internal topic log: {0}")]
    Log(#[from] LogError),
    #[error("internal topic: {0}")]
    Topic(#[from] TopicError),
    #[error("internal topic record: {0}")]
    Record(#[from] RecordError),
    #[error("internal topic partition {0} is missing")]
    MissingPartition(i32),
    /// The partition is not (or no longer) served by this broker's coordinator: a write for
    /// it would go to a partition this broker does not lead.
    #[error("internal topic partition {0} is not served here")]
    NotServed(i32),
}

/// What a coordinator needs from the broker it runs in. Implemented by `BrokerContext`; tests
/// and the coordinators see only this.
pub trait CoordinatorHost: Send + Sync {
    /// The partition logs of this broker.
    fn logs(&self) -> &LogManager;
    /// Topics, configs and producer ids.
    fn metadata(&self) -> &MetadataStore;
    /// The configuration in force (dynamic broker configs included).
    fn config(&self) -> Arc<Config>;
    /// Creates a topic with its partition logs (metadata first, durably); returns its
    /// partition count. File I/O and fsyncs: never call it on a runtime worker.
    fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<i32, TopicError>;

    /// The partition log for `topic`/`partition`, if it exists.
    fn partition(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        self.logs().get(&TopicPartition {
            topic: topic.to_string(),
            partition: PartitionIndex(partition),
        })
    }

    /// Waits until a coordinator's write, up to `end_offset` of `log` (an internal partition,
    /// or a data partition for a transaction marker), may be acknowledged: durable here and,
    /// where the partition has other replicas, replicated to its in-sync replicas, as Kafka's
    /// coordinators append with acks=all. An error means the write must not be acknowledged
    /// ([`StoreError::NotServed`] if this broker stopped leading the partition meanwhile).
    /// This default waits for local durability only, which is all a single replica needs.
    fn wait_acknowledgeable<'a>(
        &'a self,
        log: &'a Arc<PartitionLog>,
        end_offset: crate::common::Offset,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { Ok(log.wait_durable(end_offset).await?) })
    }
}

/// A boxed future, as [`CoordinatorHost::wait_acknowledgeable`] returns (the trait is used as
/// `dyn`).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A shared host is a host, so handlers holding an `Arc` of the broker pass it as it is.
impl<T: CoordinatorHost + ?Sized> CoordinatorHost for Arc<T> {
    fn logs(&self) -> &LogManager {
        (**self).logs()
    }

    fn metadata(&self) -> &MetadataStore {
        (**self).metadata()
    }

    fn config(&self) -> Arc<Config> {
        (**self).config()
    }

    fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<i32, TopicError> {
        (**self).create_topic(name, partitions, configs)
    }

    fn partition(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        (**self).partition(topic, partition)
    }

    fn wait_acknowledgeable<'a>(
        &'a self,
        log: &'a Arc<PartitionLog>,
        end_offset: crate::common::Offset,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).wait_acknowledgeable(log, end_offset)
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct InternalTopic {
    name: &'static str,
    /// Partitions to create it with (`offsets.topic.num.partitions`, ...).
    wanted_partitions: i32,
    /// Serialises the creation.
    create_lock: Mutex<()>,
    /// Partitions once the topic exists with all its logs (0: not yet). Metadata alone is not
    /// enough: `create_topic` records the topic before its partitions exist.
    ready_partitions: AtomicI32,
}

impl InternalTopic {
    /// The topic `name`, to be created with `wanted_partitions` partitions.
    pub fn new(name: &'static str, wanted_partitions: i32) -> Self {
        InternalTopic {
            name,
            wanted_partitions,
            create_lock: Mutex::new(()),
            ready_partitions: AtomicI32::new(0),
        }
    }

    /// The topic's partition count, creating it (`cleanup.policy=compact`) if needed: file I/O
    /// and fsyncs the first time.
    pub fn ensure(&self, host: &dyn CoordinatorHost) -> Result<i32, TopicError> {
        self.ensure_created(host).map(|(partitions, _)| partitions)
    }

    /// [`InternalTopic::ensure`], also saying whether this call created the topic (its
    /// partitions led here are then new and empty: nothing to load).
    pub fn ensure_created(&self, host: &dyn CoordinatorHost) -> Result<(i32, bool), TopicError> {
        let ready = self.ready_partitions.load(Ordering::Acquire);
        if ready > 0 {
            return Ok((ready, false));
        }
        // Whoever creates the topic holds this lock until every partition log exists.
        let _guard = self
            .create_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // In a cluster another broker may have created it: its partition count is the one
        // in the metadata, whatever this broker's setting says.
        let (partitions, created) = match host.metadata().topic(self.name) {
            Some(t) => (t.partitions, false),
            None => {
                let configs = [("cleanup.policy".to_string(), "compact".to_string())]
                    .into_iter()
                    .collect();
                match host.create_topic(self.name, self.wanted_partitions, configs) {
                    Ok(partitions) => (partitions, true),
                    // Another broker's first lookup won the race.
                    Err(TopicError::Metadata(MetadataError::TopicExists(_))) => (
                        host.metadata()
                            .topic(self.name)
                            .map(|t| t.partitions)
                            .ok_or_else(|| MetadataError::TopicExists(self.name.to_string()))?,
                        false,
                    ),
                    Err(e) => return Err(e),
                }
            }
        };
        self.ready_partitions.store(partitions, Ordering::Release);
        Ok((partitions, created))
    }

    /// The topic's partition count once known (0 before).
    pub fn partitions(&self) -> i32 {
        self.ready_partitions.load(Ordering::Acquire)
    }

    /// The topic's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Records that the topic exists with `partitions` logs (found at start-up).
    pub fn mark_ready(&self, partitions: i32) {
        self.ready_partitions.store(partitions, Ordering::Release);
    }

    /// True once the topic is known to exist with all its partitions.
    pub fn is_ready(&self) -> bool {
        self.ready_partitions.load(Ordering::Acquire) > 0
    }
}

/// The partitions of internal topic `topic` that node `me` leads in `image`, with the leader
/// epoch of each: the ones its coordinator must serve, and no others (a follower replica is
/// not served). Empty while the topic does not exist.
pub fn led_partitions(
    image: &crate::metadata::MetadataImage,
    me: crate::common::NodeId,
    topic: &str,
) -> BTreeMap<i32, LeaderEpoch> {
    let Some(meta) = image.topic(topic) else {
        return BTreeMap::new();
    };
    (0..meta.partitions)
        .filter_map(|p| {
            let placement = meta.placement(p)?;
            (placement.leader == me).then_some((p, placement.leader_epoch))
        })
        .collect()
}

/// How far a coordinator is with one partition of its internal topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionLoad {
    /// Being rebuilt from its log, as the leader at this epoch: its keys answer
    /// COORDINATOR_LOAD_IN_PROGRESS until it is done.
    Loading(LeaderEpoch),
    /// Served, as the leader at this epoch.
    Loaded(LeaderEpoch),
}

/// Whether a coordinator serves a key now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// Yes, as the leader of the key's partition at this epoch (`None`: the topic does not
    /// exist yet, so no key has state anywhere).
    Yes(Option<LeaderEpoch>),
    /// The key's partition is being loaded here: retriable.
    Loading,
    /// This broker does not serve the key's partition (another broker leads it, or this one
    /// has not taken it over yet).
    No,
}

/// The partitions a coordinator has taken over (Kafka's owned partitions), each loading or
/// loaded at the leader epoch it was taken over at. Kept under the coordinator's table lock,
/// beside the state it guards, so a key is only ever created in a partition that is served.
#[derive(Debug, Default)]
pub struct Ownership {
    partitions: HashMap<i32, PartitionLoad>,
}

impl Ownership {
    /// The state of `partition`, if taken over.
    pub fn get(&self, partition: i32) -> Option<PartitionLoad> {
        self.partitions.get(&partition).copied()
    }

    /// Whether a key in `partition` (`None`: the topic does not exist yet) is served.
    pub fn serving(&self, partition: Option<i32>) -> Serving {
        let Some(partition) = partition else {
            return Serving::Yes(None);
        };
        match self.get(partition) {
            Some(PartitionLoad::Loaded(epoch)) => Serving::Yes(Some(epoch)),
            Some(PartitionLoad::Loading(_)) => Serving::Loading,
            None => Serving::No,
        }
    }

    /// Starts loading `partition` at `epoch`; false if it is already taken over (at any
    /// epoch: a new epoch is an unload first, then a load).
    pub fn begin(&mut self, partition: i32, epoch: LeaderEpoch) -> bool {
        if self.partitions.contains_key(&partition) {
            return false;
        }
        self.partitions
            .insert(partition, PartitionLoad::Loading(epoch));
        true
    }

    /// Ends the load `begin` started; false if the partition was given up (or taken over
    /// again) meanwhile, and the loaded state must be thrown away.
    pub fn finish(&mut self, partition: i32, epoch: LeaderEpoch) -> bool {
        match self.partitions.get_mut(&partition) {
            Some(state) if *state == PartitionLoad::Loading(epoch) => {
                *state = PartitionLoad::Loaded(epoch);
                true
            }
            _ => false,
        }
    }

    /// Marks `partition` served at `epoch` without a load (a partition this broker just
    /// created: its log is empty). Nothing changes if it is already taken over.
    pub fn adopt_empty(&mut self, partition: i32, epoch: LeaderEpoch) {
        self.partitions
            .entry(partition)
            .or_insert(PartitionLoad::Loaded(epoch));
    }

    /// Gives `partition` up; what it was, if it was taken over.
    pub fn remove(&mut self, partition: i32) -> Option<PartitionLoad> {
        self.partitions.remove(&partition)
    }

    /// Every partition taken over, with its state, by index.
    pub fn all(&self) -> BTreeMap<i32, PartitionLoad> {
        self.partitions.iter().map(|(p, s)| (*p, *s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Module paths each coordinator must not import: the layers above it (and, for the group
    /// coordinator, the transaction coordinator, which sits above it). Kafka's error codes are
    /// in the list because they are chosen at the handler boundary, not in domain code.
    const FORBIDDEN: &[(&str, &[&str])] = &[
        ("src/internal_topic.rs", ABOVE_COORDINATORS),
        ("src/group", ABOVE_GROUPS),
        ("src/txn", ABOVE_COORDINATORS),
    ];
    const ABOVE_COORDINATORS: &[&str] = &[
        "crate::broker",
        "crate::handlers",
        "crate::protocol",
        "crate::server",
        "BrokerContext",
        "ResponseError",
        "kafka_protocol::error",
    ];
    const ABOVE_GROUPS: &[&str] = &[
        "crate::broker",
        "crate::handlers",
        "crate::protocol",
        "crate::server",
        "crate::txn",
        "BrokerContext",
        "ResponseError",
        "kafka_protocol::error",
    ];

    /// The `(line number, line)` of `source` that name one of `forbidden` outside comments,
    /// up to its test module (tests may build protocol values; this one names the paths).
    fn offending<'a>(source: &'a str, forbidden: &[&str]) -> Vec<(usize, &'a str)> {
        source
            .lines()
            .enumerate()
            .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
            .filter(|(_, line)| {
                let code = line.split("//").next().unwrap_or_default();
                forbidden.iter().any(|f| code.contains(f))
            })
            .map(|(i, line)| (i + 1, line))
            .collect()
    }

    fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .map(|e| e.expect("directory entry").path())
                .collect();
            entries.sort();
            for entry in entries {
                rust_files(&entry, out);
            }
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path.to_path_buf());
        }
    }

    #[test]
    fn the_scan_flags_an_upward_import() {
        let source = "use std::sync::Arc;\n// crate::broker in a comment is fine\n\
                      use crate::broker::BrokerContext;\n#[cfg(test)]\nuse crate::handlers::x;\n";
        assert_eq!(
            offending(source, ABOVE_COORDINATORS),
            vec![(3, "use crate::broker::BrokerContext;")]
        );
        assert!(offending("use crate::txn::TxnError;", ABOVE_GROUPS).len() == 1);
        assert!(offending("use crate::txn::TxnError;", ABOVE_COORDINATORS).is_empty());
    }

    /// The coordinators depend only on lower layers (`log`, `metadata`, `config`, `records`,
    /// `common`, this module), so `broker` → coordinators has no way back.
    #[test]
    fn coordinators_import_no_layer_above_them() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut found = Vec::new();
        for (path, forbidden) in FORBIDDEN {
            let mut files = Vec::new();
            rust_files(&root.join(path), &mut files);
            assert!(!files.is_empty(), "no Rust files under {path}");
            for file in files {
                let source = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                for (n, line) in offending(&source, forbidden) {
                    found.push(format!("{}:{n}: {}", file.display(), line.trim()));
                }
            }
        }
        assert!(found.is_empty(), "upward imports:\n{}", found.join("\n"));
    }
}
