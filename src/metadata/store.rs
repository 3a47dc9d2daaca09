//! The metadata store: the broker's window on the cluster metadata.
//!
//! Reads take the current [`MetadataImage`] (an `Arc` the quorum's state machine swaps on each
//! applied command) and never wait for a writer. Writes decide a [`MetadataCommand`] against the
//! current image and commit it through the [`MetadataQuorum`]: the call returns once the
//! command is committed on a majority of the controllers and applied to this node's image, so a
//! broker always reads its own writes. A command whose preconditions no longer hold when it
//! applies (another broker changed the same thing first) is decided again on the newer image.
//!
//! The node identity lives in Kafka's `meta.properties`. The metadata of a data directory
//! written before the cluster existed (`gregor-metadata.json`) is migrated into the metadata
//! log by the first start, in the command that bootstraps the cluster, and the file is then
//! renamed `gregor-metadata.json.migrated`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::image::{
    BrokerRegistration, ConfigScope, MetadataCommand, MetadataImage, MetadataRecord,
    PartitionPlacement, Precondition, TopicMeta,
};
use super::persist::read_properties;
use super::producer_ids::{ProducerIdAllocator, BLOCK_SIZE};
use crate::cluster::placement::{self, PlacementError};
use crate::cluster::{MetadataQuorum, QuorumError};
use crate::common::{NodeId, ProducerId, TopicId};
use crate::log::io::{write_atomic, FsIo};

const LEGACY_METADATA_FILE: &str = "gregor-metadata.json";
const META_PROPERTIES: &str = "meta.properties";
/// Times a write is decided again after losing a race with another writer.
const MAX_ATTEMPTS: usize = 8;

/// The metadata file of versions before the cluster. The field names are that file format.
#[derive(Default, Serialize, Deserialize)]
struct LegacyMetadata {
    topics: Vec<TopicMeta>,
    /// End of the last reserved producer-id block.
    producer_ids_reserved_until: i64,
    #[serde(default)]
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl LegacyMetadata {
    /// The records that recreate this metadata in the log, every partition placed on `node`
    /// (the only broker there was).
    fn into_records(self, node: NodeId) -> Vec<MetadataRecord> {
        let mut records: Vec<MetadataRecord> = self
            .topics
            .into_iter()
            .map(|mut t| {
                if t.placements.len() != usize::try_from(t.partitions).unwrap_or(0) {
                    t.placements = (0..t.partitions)
                        .map(|_| PartitionPlacement::new(vec![node]))
                        .collect();
                }
                MetadataRecord::Topic(t)
            })
            .collect();
        for (scope, map) in [
            (ConfigScope::Group, self.group_configs),
            (ConfigScope::Broker, self.broker_configs),
        ] {
            records.extend(
                map.into_iter()
                    .map(|(name, configs)| MetadataRecord::Configs {
                        scope,
                        name,
                        configs,
                    }),
            );
        }
        records.push(MetadataRecord::ProducerIdBlock {
            reserved_until: self.producer_ids_reserved_until,
        });
        records
    }
}

/// Which leader election ElectLeaders asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionKind {
    /// Move leadership back to the first replica, if it is in sync.
    Preferred,
    /// Elect an in-sync replica for a partition with no leader.
    Unclean,
}

/// What an election did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// A new leader was committed.
    Elected,
    /// The partition already has the leader the election would pick.
    NotNeeded,
    /// The preferred replica is not live and in sync.
    PreferredNotAvailable,
    /// No live replica may take over. (An unclean election of a replica outside the ISR is
    /// never made while only the leader holds the data.)
    NoEligibleLeader,
    /// No such topic or partition.
    UnknownPartition,
}

/// Metadata failures, mapped to Kafka codes by the handlers.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    #[error("cannot persist metadata: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata file {path} is unreadable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("log.dirs was used by another node: meta.properties says node.id={found}, configured {configured}")]
    NodeIdMismatch { found: NodeId, configured: NodeId },
    #[error("log.dirs belongs to cluster {found}, but this quorum is cluster {quorum}")]
    ClusterIdMismatch { found: String, quorum: String },
    #[error("{0}")]
    Quorum(#[from] QuorumError),
    #[error("{0}")]
    Placement(#[from] PlacementError),
    #[error("the metadata changed under {attempts} attempts in a row; giving up")]
    Contended { attempts: usize },
}

/// What a reassignment request (AlterPartitionReassignments) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassignment {
    /// Started (or, with nothing to add, done at once).
    Started,
    /// A cancellation put the original replicas back.
    Cancelled,
    /// A cancellation found nothing in progress (NO_REASSIGNMENT_IN_PROGRESS).
    NoneInProgress,
    /// No such topic or partition.
    UnknownPartition,
    /// The target is not a list of distinct registered brokers (INVALID_REPLICA_ASSIGNMENT).
    InvalidTarget(String),
}

/// The metadata of this node. See the module docs for the read/write discipline.
pub struct MetadataStore {
    quorum: Arc<dyn MetadataQuorum>,
    node_id: NodeId,
    cluster_id: String,
    producer_ids: ProducerIdAllocator,
    /// The runtime the quorum runs on, for writes from threads outside it.
    runtime: tokio::runtime::Handle,
}

/// Runs `future` to completion from synchronous code: on the blocking pool or a plain thread
/// (where handlers' metadata writes run), or on a multi-threaded runtime's worker (where it
/// first moves the worker's other tasks away).
fn block_on<F: Future>(runtime: &tokio::runtime::Handle, future: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(current) if current.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| current.block_on(future))
        }
        Ok(current) => current.block_on(future),
        Err(_) => runtime.block_on(future),
    }
}

impl MetadataStore {
    /// Joins the quorum's metadata: bootstraps the cluster if this is its first node to start
    /// (cluster id, and the migration of `dir`'s pre-cluster metadata), checks and writes
    /// `meta.properties`. `recover_topics` supplies topics found on disk, used only when a
    /// pre-cluster data directory lost its metadata file.
    pub async fn open(
        quorum: Arc<dyn MetadataQuorum>,
        dir: &Path,
        node_id: NodeId,
        configured_cluster_id: Option<&str>,
        recover_topics: impl FnOnce() -> Vec<TopicMeta>,
        io: Arc<dyn FsIo>,
    ) -> Result<Arc<MetadataStore>, MetadataError> {
        io.create_dir_all(dir)?;
        let properties = read_identity(dir, node_id)?;
        let legacy_path = dir.join(LEGACY_METADATA_FILE);
        let legacy =
            match std::fs::read(&legacy_path) {
                Ok(bytes) => Some(serde_json::from_slice::<LegacyMetadata>(&bytes).map_err(
                    |e| MetadataError::Corrupt {
                        path: legacy_path.clone(),
                        reason: e.to_string(),
                    },
                )?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e.into()),
            };
        // Every start proposes the bootstrap command; only the first in the cluster's life
        // applies, the others are rejected by its precondition. Either way, once it returns
        // this node's image has caught up with everything committed before it.
        let mut records = vec![MetadataRecord::ClusterId(
            properties
                .clone()
                .or_else(|| configured_cluster_id.map(str::to_string))
                .unwrap_or_else(|| crate::common::ids::uuid_to_kafka_string(Uuid::new_v4())),
        )];
        let migrating = legacy.is_some();
        match legacy {
            Some(legacy) => records.extend(legacy.into_records(node_id)),
            None if properties.is_some() => {
                // A pre-cluster directory whose metadata file was lost: rebuild from the
                // partition directories, as earlier versions did.
                let topics = recover_topics();
                if !topics.is_empty() {
                    tracing::warn!(
                        "{} is missing; rebuilt {} topics from partition directories",
                        legacy_path.display(),
                        topics.len()
                    );
                }
                records.extend(
                    LegacyMetadata {
                        topics,
                        ..LegacyMetadata::default()
                    }
                    .into_records(node_id),
                );
            }
            None => {}
        }
        let bootstrap = MetadataCommand {
            preconditions: vec![Precondition::NoClusterId],
            records,
        };
        let committed = propose_until_a_leader_answers(quorum.as_ref(), bootstrap).await?;
        let image = quorum.image();
        let cluster_id = image.cluster_id().unwrap_or_default().to_string();
        if let Some(found) = properties {
            if found != cluster_id {
                return Err(MetadataError::ClusterIdMismatch {
                    found,
                    quorum: cluster_id,
                });
            }
        } else {
            let text = format!(
                "#Written by gregor\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n"
            );
            write_atomic(io.as_ref(), &dir.join(META_PROPERTIES), text.as_bytes())?;
        }
        if migrating {
            if committed.rejected.is_none() {
                tracing::info!(
                    topics = image.topics().count(),
                    "migrated {} into the metadata log",
                    legacy_path.display()
                );
                let done = legacy_path.with_extension("json.migrated");
                io.rename(&legacy_path, &done)?;
                io.sync_dir(dir)?;
            } else {
                tracing::warn!(
                    "{} was not migrated: this node joined a cluster that already has metadata",
                    legacy_path.display()
                );
            }
        }
        Ok(Arc::new(MetadataStore {
            quorum,
            node_id,
            cluster_id,
            producer_ids: ProducerIdAllocator::default(),
            runtime: tokio::runtime::Handle::current(),
        }))
    }

    /// Commits the command `decide` returns for the current image and returns once this node
    /// has applied it. If a precondition failed (another writer got there first), decides
    /// again on the image that includes the other write. Blocks: call from the blocking pool.
    fn commit<T>(
        &self,
        mut decide: impl FnMut(&MetadataImage) -> Result<(MetadataCommand, T), MetadataError>,
    ) -> Result<T, MetadataError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.quorum.image();
            let (command, answer) = decide(&current)?;
            if command.records.is_empty() {
                return Ok(answer);
            }
            let committed = block_on(&self.runtime, self.quorum.propose(command))?;
            match committed.rejected {
                None => return Ok(answer),
                Some(failed) => {
                    tracing::debug!(?failed, "metadata write lost a race; deciding again")
                }
            }
        }
        Err(MetadataError::Contended {
            attempts: MAX_ATTEMPTS,
        })
    }

    /// The quorum this store commits through.
    pub fn quorum(&self) -> &Arc<dyn MetadataQuorum> {
        &self.quorum
    }

    /// The current image: an immutable snapshot, never blocked by writers. Take it once per
    /// request when several lookups must agree with each other.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    /// The cluster id reported in Metadata and DescribeCluster.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The topic named `name`, from the current image.
    pub fn topic(&self, name: &str) -> Option<Arc<TopicMeta>> {
        self.image().topic(name).cloned()
    }

    /// The topic with id `id`, from the current image.
    pub fn topic_by_id(&self, id: TopicId) -> Option<Arc<TopicMeta>> {
        self.image().topic_by_id(id).cloned()
    }

    /// Every topic in the current image.
    pub fn topics(&self) -> Vec<Arc<TopicMeta>> {
        self.image().topics().cloned().collect()
    }

    /// Registers (or re-registers) a broker, unfenced. Waits for a quorum leader as long as
    /// it takes.
    pub async fn register_broker(
        &self,
        registration: BrokerRegistration,
    ) -> Result<(), MetadataError> {
        let command =
            MetadataCommand::unconditional(vec![MetadataRecord::RegisterBroker(registration)]);
        propose_until_a_leader_answers(self.quorum.as_ref(), command).await?;
        Ok(())
    }

    /// Runs a leader election for `name`'s `partition`: commits the new leader with the next
    /// leader epoch, on condition the partition still has the leader it was decided on.
    pub fn elect_leader(
        &self,
        name: &str,
        partition: i32,
        kind: ElectionKind,
    ) -> Result<Election, MetadataError> {
        self.commit(|image| {
            let nothing = |e: Election| Ok((MetadataCommand::default(), e));
            let Some(topic) = image.topic(name) else {
                return nothing(Election::UnknownPartition);
            };
            let (Some(placement), Some(state)) = (
                topic.placement(partition),
                image.partition_state(topic, partition),
            ) else {
                return nothing(Election::UnknownPartition);
            };
            let candidate = match kind {
                ElectionKind::Preferred => {
                    let preferred = placement.replicas.first().copied();
                    if state.leader.is_some() && state.leader == preferred {
                        return nothing(Election::NotNeeded);
                    }
                    match preferred.filter(|p| state.isr.contains(p) && image.is_live(*p)) {
                        Some(p) => p,
                        None => return nothing(Election::PreferredNotAvailable),
                    }
                }
                ElectionKind::Unclean => {
                    if state.leader.is_some() {
                        return nothing(Election::NotNeeded);
                    }
                    // Unclean: any live replica, in sync or not (it may lack acknowledged
                    // records, which is what the operator accepts by asking).
                    let in_sync = state.isr.iter().find(|r| image.is_live(**r));
                    let any = placement.replicas.iter().find(|r| image.is_live(**r));
                    match in_sync.or(any) {
                        Some(r) => *r,
                        None => return nothing(Election::NoEligibleLeader),
                    }
                }
            };
            let isr = if state.isr.contains(&candidate) {
                state.isr.clone()
            } else {
                vec![candidate]
            };
            Ok((
                MetadataCommand::partition_change(
                    name,
                    partition,
                    placement.partition_epoch,
                    PartitionPlacement {
                        replicas: placement.replicas.clone(),
                        leader: candidate,
                        leader_epoch: placement.leader_epoch.next(),
                        isr,
                        partition_epoch: placement.partition_epoch + 1,
                        ..placement.clone()
                    },
                ),
                Election::Elected,
            ))
        })
    }

    /// Starts moving `name`'s `partition` to the `target` replicas, or cancels the move in
    /// progress (`None`), as KIP-455: the target replicas are added at once and catch up as
    /// followers; the controller drops the others once every target replica is in sync.
    pub fn reassign(
        &self,
        name: &str,
        partition: i32,
        target: Option<Vec<NodeId>>,
    ) -> Result<Reassignment, MetadataError> {
        self.commit(|image| {
            let nothing = |r: Reassignment| Ok((MetadataCommand::default(), r));
            let Some(placement) = image.topic(name).and_then(|t| t.placement(partition)) else {
                return nothing(Reassignment::UnknownPartition);
            };
            let original = placement.original_replicas();
            let next = match &target {
                None => {
                    if !placement.is_reassigning() {
                        return nothing(Reassignment::NoneInProgress);
                    }
                    let isr: Vec<NodeId> = placement
                        .isr()
                        .into_iter()
                        .filter(|r| original.contains(r))
                        .collect();
                    let leader = if original.contains(&placement.leader) {
                        placement.leader
                    } else {
                        isr.first().copied().unwrap_or(placement.leader)
                    };
                    PartitionPlacement {
                        leader_epoch: if leader == placement.leader {
                            placement.leader_epoch
                        } else {
                            placement.leader_epoch.next()
                        },
                        leader,
                        isr: if isr.is_empty() { vec![leader] } else { isr },
                        replicas: original.clone(),
                        partition_epoch: placement.partition_epoch + 1,
                        adding: Vec::new(),
                        removing: Vec::new(),
                    }
                }
                Some(target) => {
                    let mut seen = std::collections::BTreeSet::new();
                    if target.is_empty() || !target.iter().all(|r| seen.insert(*r)) {
                        return nothing(Reassignment::InvalidTarget(
                            "the replicas must be distinct and at least one".into(),
                        ));
                    }
                    if let Some(unknown) = target.iter().find(|r| image.broker(**r).is_none()) {
                        return nothing(Reassignment::InvalidTarget(format!(
                            "broker {unknown} is not registered"
                        )));
                    }
                    let adding: Vec<NodeId> = target
                        .iter()
                        .copied()
                        .filter(|r| !original.contains(r))
                        .collect();
                    let removing: Vec<NodeId> = original
                        .iter()
                        .copied()
                        .filter(|r| !target.contains(r))
                        .collect();
                    let mut replicas = target.clone();
                    replicas.extend(removing.iter().copied());
                    PartitionPlacement {
                        replicas,
                        leader: placement.leader,
                        leader_epoch: placement.leader_epoch,
                        isr: placement.isr(),
                        partition_epoch: placement.partition_epoch + 1,
                        adding,
                        removing,
                    }
                }
            };
            let answer = if target.is_some() {
                Reassignment::Started
            } else {
                Reassignment::Cancelled
            };
            Ok((
                MetadataCommand::partition_change(name, partition, placement.partition_epoch, next),
                answer,
            ))
        })
    }

    /// Removes broker `id`'s registration; false if it was not registered.
    pub fn unregister_broker(&self, id: NodeId) -> Result<bool, MetadataError> {
        self.commit(|image| {
            Ok(match image.broker(id) {
                Some(_) => (
                    MetadataCommand::unconditional(vec![MetadataRecord::UnregisterBroker { id }]),
                    true,
                ),
                None => (MetadataCommand::default(), false),
            })
        })
    }

    /// Registers a new topic with `partitions` partitions of `replication_factor` replicas
    /// placed over the live brokers, and a fresh random non-zero id.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        self.create_topic_with(name, partitions, 1, None, configs)
    }

    /// [`MetadataStore::create_topic`] with a replication factor, or with the replicas of
    /// each partition given explicitly (`assignment`, which then decides the partition count).
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: usize,
        assignment: Option<Vec<Vec<NodeId>>>,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        let seed = crate::common::clock::random_u64();
        self.commit(|image| {
            if image.topic(name).is_some() {
                return Err(MetadataError::TopicExists(name.to_string()));
            }
            let mut id = TopicId::random();
            while id.is_nil() || image.has_topic_id(id) {
                id = TopicId::random();
            }
            let placements = match &assignment {
                Some(replicas) => replicas
                    .iter()
                    .map(|r| PartitionPlacement::new(r.clone()))
                    .collect(),
                None => {
                    let live: Vec<&BrokerRegistration> = image.live_brokers().collect();
                    let count = usize::try_from(partitions).unwrap_or(0);
                    placement::assign(&live, 0, count, replication_factor, seed)?
                }
            };
            let topic = TopicMeta {
                name: name.to_string(),
                id,
                partitions: i32::try_from(placements.len()).unwrap_or(i32::MAX),
                configs: configs.clone(),
                placements,
            };
            Ok((
                MetadataCommand {
                    preconditions: vec![Precondition::TopicAbsent(name.to_string())],
                    records: vec![MetadataRecord::Topic(topic.clone())],
                },
                Arc::new(topic),
            ))
        })
    }

    /// Removes a topic durably; returns what was removed.
    pub fn delete_topic(&self, name: &str) -> Result<Option<Arc<TopicMeta>>, MetadataError> {
        self.commit(|image| {
            Ok(match image.topic(name) {
                Some(t) => (
                    MetadataCommand {
                        preconditions: vec![Precondition::TopicIs {
                            name: name.to_string(),
                            id: t.id,
                        }],
                        records: vec![MetadataRecord::RemoveTopic {
                            name: name.to_string(),
                        }],
                    },
                    Some(Arc::clone(t)),
                ),
                None => (MetadataCommand::default(), None),
            })
        })
    }

    /// The group configs set on `group` (empty if none).
    pub fn group_configs(&self, group: &str) -> BTreeMap<String, String> {
        self.configs(ConfigScope::Group, group)
    }

    /// The dynamic configs of `scope` resource `name` (empty if none).
    pub fn configs(&self, scope: ConfigScope, name: &str) -> BTreeMap<String, String> {
        self.image().configs(scope, name)
    }

    /// The names of the `scope` resources that have dynamic configs, sorted.
    pub fn config_names(&self, scope: ConfigScope) -> Vec<String> {
        self.image().config_names(scope)
    }

    /// Replaces the dynamic configs of `scope` resource `name` durably (an empty set removes
    /// the entry).
    pub fn set_configs(
        &self,
        scope: ConfigScope,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        self.commit(|_| {
            Ok((
                MetadataCommand::unconditional(vec![MetadataRecord::Configs {
                    scope,
                    name: name.to_string(),
                    configs: configs.clone(),
                }]),
                (),
            ))
        })
    }

    /// Replaces a topic's explicit configs durably; `None` if the topic does not exist. On a
    /// failure the old configs stay in place.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<Option<Arc<TopicMeta>>, MetadataError> {
        self.update_topic(name, |_| {
            Ok(MetadataRecord::TopicConfigs {
                name: name.to_string(),
                configs: configs.clone(),
            })
        })
    }

    /// Raises a topic's partition count durably, placing the new partitions over the live
    /// brokers with the replication factor of the existing ones; `None` if the topic does not
    /// exist. The caller has checked that `partitions` is larger than the current count.
    pub fn set_partition_count(
        &self,
        name: &str,
        partitions: i32,
        assignment: Option<Vec<Vec<NodeId>>>,
    ) -> Result<Option<Arc<TopicMeta>>, MetadataError> {
        let seed = crate::common::clock::random_u64();
        self.update_topic(name, |image| {
            let topic = image.topic(name);
            let have = topic.map_or(0, |t| t.placements.len());
            let factor = topic
                .and_then(|t| t.placements.first())
                .map_or(1, |p| p.replicas.len().max(1));
            let live: Vec<&BrokerRegistration> = image.live_brokers().collect();
            let wanted = usize::try_from(partitions).unwrap_or(0);
            let placements = match &assignment {
                Some(replicas) => replicas
                    .iter()
                    .map(|r| PartitionPlacement::new(r.clone()))
                    .collect(),
                None => placement::assign(&live, have, wanted.saturating_sub(have), factor, seed)?,
            };
            Ok(MetadataRecord::PartitionCount {
                name: name.to_string(),
                partitions,
                placements,
            })
        })
    }

    /// Commits `record` about topic `name` on condition the topic is still the one decided on.
    fn update_topic(
        &self,
        name: &str,
        mut record_for: impl FnMut(&MetadataImage) -> Result<MetadataRecord, MetadataError>,
    ) -> Result<Option<Arc<TopicMeta>>, MetadataError> {
        self.commit(|image| {
            let Some(old) = image.topic(name) else {
                return Ok((MetadataCommand::default(), None));
            };
            let record = record_for(image)?;
            let mut scratch = MetadataImage::default();
            scratch.apply(&MetadataRecord::Topic(TopicMeta::clone(old)));
            scratch.apply(&record);
            let new = scratch.topic(name).cloned();
            Ok((
                MetadataCommand {
                    preconditions: vec![
                        Precondition::TopicIs {
                            name: name.to_string(),
                            id: old.id,
                        },
                        Precondition::TopicPartitions {
                            name: name.to_string(),
                            partitions: old.partitions,
                        },
                    ],
                    records: vec![record],
                },
                new,
            ))
        })
    }

    /// A producer id never handed out before, by any broker of the cluster, now or earlier.
    pub fn next_producer_id(&self) -> Result<ProducerId, MetadataError> {
        // Lock order: the allocator's lock, then a commit (which takes no lock of ours).
        self.producer_ids
            .next(|| {
                self.commit(|image| {
                    let start = image.producer_ids_reserved_until();
                    let end = start + BLOCK_SIZE;
                    Ok((
                        MetadataCommand {
                            preconditions: vec![Precondition::ProducerIdsReservedUntil(start)],
                            records: vec![MetadataRecord::ProducerIdBlock {
                                reserved_until: end,
                            }],
                        },
                        (start, end),
                    ))
                })
            })
            .map(ProducerId)
    }

    /// True if some broker of the cluster issued `id` (used to accept an epoch bump for a
    /// known producer).
    pub fn producer_id_was_issued(&self, id: ProducerId) -> bool {
        id.get() >= 0 && id.get() < self.image().producer_ids_reserved_until()
    }
}

/// Proposes `command`, retrying while no leader can be reached: a node of a cluster whose
/// other voters are not up yet waits for them, as a Kafka broker waits for its controller,
/// saying so now and then. Other failures are returned.
async fn propose_until_a_leader_answers(
    quorum: &dyn MetadataQuorum,
    command: MetadataCommand,
) -> Result<crate::cluster::Committed, MetadataError> {
    let started = std::time::Instant::now();
    loop {
        match quorum.propose(command.clone()).await {
            Err(QuorumError::NoLeader(why)) => {
                tracing::warn!(
                    waited_s = started.elapsed().as_secs(),
                    "waiting for a majority of the metadata quorum's voters: {why}"
                );
            }
            other => return Ok(other?),
        }
    }
}

/// Reads `meta.properties` if present: checks the node id, returns the cluster id.
fn read_identity(dir: &Path, node_id: NodeId) -> Result<Option<String>, MetadataError> {
    let path = dir.join(META_PROPERTIES);
    if !path.exists() {
        return Ok(None);
    }
    let props = read_properties(&path)?;
    let get = |k: &str| {
        props
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if let Some(found) = get("node.id")
        .and_then(|v| v.parse::<i32>().ok())
        .map(NodeId)
    {
        if found != node_id {
            return Err(MetadataError::NodeIdMismatch {
                found,
                configured: node_id,
            });
        }
    }
    Ok(get("cluster.id"))
}

/// A one-voter quorum in `dir` and the store on it, with node `node` registered: what a
/// single-node broker starts with, for tests below the broker.
#[cfg(test)]
pub(crate) async fn open_single_node(
    dir: &Path,
    node: i32,
    io: Arc<dyn FsIo>,
) -> Result<Arc<MetadataStore>, MetadataError> {
    use crate::cluster::raft::{QuorumOptions, RaftQuorum};
    let quorum = RaftQuorum::start(
        QuorumOptions {
            node_id: NodeId(node),
            voters: [(NodeId(node), "127.0.0.1:1".to_string())].into(),
            dir: dir.join(crate::log::manager::METADATA_LOG_DIR),
            election_timeout_ms: 200,
            listener: None,
        },
        Arc::clone(&io),
    )
    .await
    .map_err(|e| MetadataError::Io(std::io::Error::other(e.to_string())))?;
    let store = MetadataStore::open(quorum, dir, NodeId(node), None, Vec::new, io).await?;
    store
        .register_broker(BrokerRegistration {
            id: NodeId(node),
            incarnation: Uuid::new_v4(),
            host: "localhost".into(),
            port: 9092,
            rack: None,
            fenced: false,
            shutting_down: false,
            metadata_endpoint: None,
        })
        .await?;
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::io::OsIo;

    async fn open(dir: &Path, node: i32) -> Result<Arc<MetadataStore>, MetadataError> {
        open_single_node(dir, node, Arc::new(OsIo)).await
    }

    async fn close(store: Arc<MetadataStore>) {
        store.quorum().shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn topics_and_producer_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1).await.unwrap();
        let t = store.create_topic("a", 3, BTreeMap::new()).unwrap();
        assert_eq!(t.placements.len(), 3);
        assert!(t.placements.iter().all(|p| p.leader == NodeId(1)));
        assert!(matches!(
            store.create_topic("a", 1, BTreeMap::new()),
            Err(MetadataError::TopicExists(_))
        ));
        let first = store.next_producer_id().unwrap();
        let cluster = store.cluster_id().to_string();
        close(store).await;
        let store = open(dir.path(), 1).await.unwrap();
        assert_eq!(store.topic("a"), Some(t.clone()));
        assert_eq!(
            store.topic_by_id(t.id).map(|t| t.name.clone()),
            Some("a".to_string())
        );
        assert_eq!(store.cluster_id(), cluster);
        assert!(
            store.next_producer_id().unwrap() > first,
            "producer ids are never reused"
        );
        close(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn node_id_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        close(open(dir.path(), 1).await.unwrap()).await;
        assert!(matches!(
            open(dir.path(), 2).await.err(),
            Some(MetadataError::NodeIdMismatch { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn topic_configs_and_partition_counts_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1).await.unwrap();
        store.create_topic("a", 1, BTreeMap::new()).unwrap();
        let mut c = BTreeMap::new();
        c.insert("retention.ms".to_string(), "1000".to_string());
        assert!(store.set_topic_configs("a", c.clone()).unwrap().is_some());
        assert!(store
            .set_topic_configs("absent", c.clone())
            .unwrap()
            .is_none());
        assert!(store.set_partition_count("a", 3, None).unwrap().is_some());
        close(store).await;
        let store = open(dir.path(), 1).await.unwrap();
        let t = store.topic("a").unwrap();
        assert_eq!(
            (t.configs.clone(), t.partitions, t.placements.len()),
            (c, 3, 3)
        );
        close(store).await;
    }

    /// A data directory of a version before the cluster: its JSON metadata is migrated into
    /// the log on the first start, with every partition on this node, and the file retired.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pre_cluster_metadata_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("meta.properties"),
            "version=1\ncluster.id=old-cluster\nnode.id=1\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(LEGACY_METADATA_FILE),
            r#"{"topics":[{"name":"t","id":"00000000-0000-0000-0000-000000000007","partitions":2,"configs":{"retention.ms":"5"}}],
                "producer_ids_reserved_until":3000,
                "group_configs":{"g":{"consumer.session.timeout.ms":"50000"}}}"#,
        )
        .unwrap();
        let store = open(dir.path(), 1).await.unwrap();
        assert_eq!(store.cluster_id(), "old-cluster");
        let t = store.topic("t").unwrap();
        assert_eq!((t.partitions, t.leader(1)), (2, Some(NodeId(1))));
        assert_eq!(t.configs.get("retention.ms").map(String::as_str), Some("5"));
        assert_eq!(
            store
                .group_configs("g")
                .get("consumer.session.timeout.ms")
                .map(String::as_str),
            Some("50000")
        );
        assert!(store.next_producer_id().unwrap().get() >= 3000);
        assert!(!dir.path().join(LEGACY_METADATA_FILE).exists());
        close(store).await;
        let store = open(dir.path(), 1).await.unwrap();
        assert!(
            store.topic("t").is_some(),
            "the log keeps it after the file is gone"
        );
        close(store).await;
    }

    #[test]
    fn kafka_uuid_format() {
        let id = Uuid::from_bytes([0; 16]);
        assert_eq!(
            crate::common::ids::uuid_to_kafka_string(id),
            "AAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(
            crate::common::ids::uuid_to_kafka_string(Uuid::new_v4()).len(),
            22
        );
    }
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;
    use crate::log::io::OsIo;

    /// Past a thousand commands the quorum snapshots the image and purges the log before it;
    /// a restart rebuilds the same metadata from the snapshot and the entries after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metadata_survives_a_snapshot_and_a_purged_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_single_node(dir.path(), 1, Arc::new(OsIo))
            .await
            .unwrap();
        let writer = Arc::clone(&store);
        tokio::task::spawn_blocking(move || {
            for i in 0..1_200 {
                let configs = [("retention.ms".to_string(), i.to_string())].into();
                writer
                    .set_configs(ConfigScope::Group, &format!("g{}", i % 7), configs)
                    .unwrap();
            }
            writer
                .create_topic("after-snapshot", 2, BTreeMap::new())
                .unwrap();
        })
        .await
        .unwrap();
        let before = store.image().to_records();
        let meta_dir = dir.path().join(crate::log::manager::METADATA_LOG_DIR);
        // The snapshot is built in the background after the thousandth entry.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !meta_dir.join("snapshot").exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "no snapshot was written"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        store.quorum().shutdown().await;
        drop(store);
        let store = open_single_node(dir.path(), 1, Arc::new(OsIo))
            .await
            .unwrap();
        let mut after = store.image().to_records();
        // The reopened node registered itself again (a new incarnation); compare the rest.
        let not_broker = |r: &MetadataRecord| !matches!(r, MetadataRecord::RegisterBroker(_));
        after.retain(not_broker);
        let mut before = before;
        before.retain(not_broker);
        assert_eq!(after, before);
        assert_eq!(
            store
                .group_configs("g6")
                .get("retention.ms")
                .map(String::as_str),
            Some("1196")
        );
        store.quorum().shutdown().await;
    }
}
