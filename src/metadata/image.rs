//! The metadata image: an immutable, self-contained view of the cluster metadata (the cluster
//! id, registered brokers, topics by name and by id with the placement of their partitions,
//! dynamic configs, the producer-id reservation) and the records that change it.
//!
//! This is KRaft's model: every change is a [`MetadataRecord`], committed through the metadata
//! quorum (`crate::cluster`) inside a [`MetadataCommand`], and an image is what applying the
//! committed commands, in order, to an empty image gives. Every node applies the same commands
//! to its own image; readers (Produce, Fetch, Metadata, ...) hold an `Arc<MetadataImage>` and
//! never wait for a writer.
//!
//! A command carries the [`Precondition`]s its writer decided on. They are checked again when
//! the command is applied, against the image of that moment, so two brokers that decide on
//! the same stale image (two creates of one name, two producer-id blocks from one end) cannot
//! both succeed: the second command is rejected on every node alike and its writer decides again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::common::{LeaderEpoch, NodeId, TopicId};
use serde::{Deserialize, Serialize};

/// Where one partition lives: its replicas (the first is the preferred leader), the broker
/// leading it and the epoch of that leadership (bumped on every leader change), the replicas in
/// sync with the leader, and the partition epoch (bumped on every change of any of these, the
/// compare-and-set token of ISR changes, as KRaft's `PartitionRecord`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionPlacement {
    pub replicas: Vec<NodeId>,
    pub leader: NodeId,
    pub leader_epoch: LeaderEpoch,
    /// In-sync replicas, the leader among them. Empty only in metadata written before data
    /// replicated, when the leader alone held the data: read through [`PartitionPlacement::isr`].
    #[serde(default)]
    pub isr: Vec<NodeId>,
    #[serde(default)]
    pub partition_epoch: i32,
    /// A reassignment in progress (KIP-455): replicas being added (in `replicas`, catching
    /// up) and replicas to drop once every target replica is in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<NodeId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<NodeId>,
}

impl PartitionPlacement {
    /// A new partition on `replicas`, led by the first of them, at epoch 0. Every replica is
    /// in sync: all of them are empty.
    pub fn new(replicas: Vec<NodeId>) -> PartitionPlacement {
        let leader = replicas.first().copied().unwrap_or(NodeId(-1));
        PartitionPlacement {
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    /// The replicas the partition will have once its reassignment completes (its replicas when
    /// none is in progress).
    pub fn target_replicas(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }

    /// The replicas the partition had before its reassignment began.
    pub fn original_replicas(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding.contains(r))
            .collect()
    }

    /// True while a reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The in-sync replicas (the leader alone for metadata written before replication).
    pub fn isr(&self) -> Vec<NodeId> {
        if self.isr.is_empty() {
            vec![self.leader]
        } else {
            self.isr.clone()
        }
    }
}

/// One topic as the cluster knows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: TopicId,
    pub partitions: i32,
    /// Topic-level configs set explicitly (Kafka names); unset ones follow the broker.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    /// One entry per partition, by index. Empty only in data written before the cluster
    /// existed; the migration fills it in.
    #[serde(default)]
    pub placements: Vec<PartitionPlacement>,
}

impl TopicMeta {
    /// The placement of `partition`, if the topic has it.
    pub fn placement(&self, partition: i32) -> Option<&PartitionPlacement> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.placements.get(p))
    }

    /// The broker leading `partition`, if the partition exists.
    pub fn leader(&self, partition: i32) -> Option<NodeId> {
        self.placement(partition).map(|p| p.leader)
    }
}

/// A partition as clients are told about it: the leader only if its broker is live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    /// `None` while the leader's broker is fenced or gone (Kafka's leader -1).
    pub leader: Option<NodeId>,
    pub leader_epoch: LeaderEpoch,
    pub replicas: Vec<NodeId>,
    /// Replicas in sync with the leader (the controller drops fenced brokers from it, the
    /// leader drops laggards and adds replicas that caught up).
    pub isr: Vec<NodeId>,
    pub partition_epoch: i32,
    /// Replicas whose broker is fenced or gone.
    pub offline: Vec<NodeId>,
}

/// A broker as registered with the controller (KRaft's `RegisterBrokerRecord`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: NodeId,
    /// Random per process start: a registration from an earlier run of the same node id is
    /// replaced, never confused with this one.
    pub incarnation: uuid::Uuid,
    /// The advertised client endpoint.
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// A fenced broker leads nothing that clients are sent to.
    pub fenced: bool,
    /// Fenced by its own controlled shutdown: stays fenced until it registers again, even
    /// while it still answers the leader on its way down.
    #[serde(default)]
    pub shutting_down: bool,
    /// A broker-only node's controller-listener endpoint, where the leader sends it the
    /// metadata log (`None` for a voter, which has it already).
    #[serde(default)]
    pub metadata_endpoint: Option<String>,
}

/// Which kind of dynamic config set a record or a lookup is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigScope {
    /// A consumer group's configs (KIP-848), by group id.
    Group,
    /// Dynamic broker configs, by resource name ("" is the cluster default).
    Broker,
}

/// One change to the metadata. Applying a record is total and deterministic: the command that
/// carries it states the [`Precondition`]s it needs, so replaying the same commands always
/// gives the same image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum MetadataRecord {
    /// The cluster's id, set once by the first command of a new cluster.
    ClusterId(String),
    /// A broker registered (or re-registered after a restart), unfenced.
    RegisterBroker(BrokerRegistration),
    /// A broker fenced (its heartbeats stopped) or unfenced (it is back and caught up).
    BrokerFenced { id: NodeId, fenced: bool },
    /// A broker shutting down cleanly fenced itself (controlled shutdown).
    BrokerShutdown { id: NodeId },
    /// A broker removed for good (`UnregisterBroker`).
    UnregisterBroker { id: NodeId },
    /// A partition's leader, ISR or replicas changed (KRaft's `PartitionChangeRecord`): the
    /// whole new placement, whose epochs the writer has bumped.
    PartitionChange {
        name: String,
        partition: i32,
        placement: PartitionPlacement,
    },
    /// A partition's leader changed; its leader epoch is the new one. Written before
    /// replication existed (the ISR was the leader alone); kept so old logs replay.
    PartitionLeader {
        name: String,
        partition: i32,
        replicas: Vec<NodeId>,
        leader: NodeId,
        leader_epoch: LeaderEpoch,
    },
    /// A new topic (or, replayed over an existing name, its replacement).
    Topic(TopicMeta),
    /// A topic removed.
    RemoveTopic { name: String },
    /// A topic's explicit configs replaced as a whole.
    TopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// A topic's partition count raised; `placements` are those of the new partitions.
    PartitionCount {
        name: String,
        partitions: i32,
        #[serde(default)]
        placements: Vec<PartitionPlacement>,
    },
    /// A group's or broker's dynamic configs replaced as a whole (empty removes them).
    Configs {
        scope: ConfigScope,
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Producer ids below `reserved_until` are reserved (handed out or skipped), never reused.
    ProducerIdBlock { reserved_until: i64 },
}

/// What a command's writer relied on when it decided; checked again when the command applies.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Precondition {
    /// The cluster has no id yet (the bootstrap command of a new cluster).
    NoClusterId,
    /// No topic has this name.
    TopicAbsent(String),
    /// The topic exists with this id.
    TopicIs { name: String, id: TopicId },
    /// The topic has exactly this many partitions.
    TopicPartitions { name: String, partitions: i32 },
    /// The partition is led by `leader` at `leader_epoch` (a compare-and-set for elections).
    PartitionLeader {
        name: String,
        partition: i32,
        leader: NodeId,
        leader_epoch: LeaderEpoch,
    },
    /// The producer-id reservation ends here (a compare-and-set for the next block).
    ProducerIdsReservedUntil(i64),
    /// The broker is registered, unfenced and not shutting down: only such a broker may join
    /// an ISR (KIP-841), so a leader cannot add back a replica the controller just fenced.
    BrokerLive(NodeId),
    /// The partition is at this partition epoch (a compare-and-set for ISR and leader changes).
    PartitionEpoch {
        name: String,
        partition: i32,
        partition_epoch: i32,
    },
    /// Decided by the active controller of this quorum term: holds only in an entry appended in
    /// that same term. A controller that was paused or cut off decides on stale liveness; its
    /// decision, forwarded to the new leader or appended after it lost the term, is dropped (as
    /// KRaft writes controller records only as the active controller, in its epoch).
    ControllerTerm(u64),
}

/// The unit the metadata quorum commits: records applied together, or not at all if a
/// precondition fails.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MetadataCommand {
    pub preconditions: Vec<Precondition>,
    pub records: Vec<MetadataRecord>,
}

impl MetadataCommand {
    /// Replaces `name`'s `partition` placement with `next`, provided the partition is still at
    /// `partition_epoch` when the command applies (the compare-and-set of every leader, ISR and
    /// reassignment change).
    pub fn partition_change(
        name: &str,
        partition: i32,
        partition_epoch: i32,
        next: PartitionPlacement,
    ) -> MetadataCommand {
        MetadataCommand {
            preconditions: vec![Precondition::PartitionEpoch {
                name: name.to_string(),
                partition,
                partition_epoch,
            }],
            records: vec![MetadataRecord::PartitionChange {
                name: name.to_string(),
                partition,
                placement: next,
            }],
        }
    }

    /// Records with no precondition.
    pub fn unconditional(records: Vec<MetadataRecord>) -> MetadataCommand {
        MetadataCommand {
            preconditions: Vec::new(),
            records,
        }
    }
}

/// The metadata at one point of the record sequence. Cloning is cheap relative to a write
/// (topics are shared `Arc`s), which is what lets the store build the next image beside the
/// current one.
#[derive(Clone, Debug, Default)]
pub struct MetadataImage {
    cluster_id: Option<String>,
    brokers: BTreeMap<NodeId, BrokerRegistration>,
    topics: BTreeMap<String, Arc<TopicMeta>>,
    topic_names_by_id: HashMap<TopicId, String>,
    producer_ids_reserved_until: i64,
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl MetadataImage {
    /// The cluster id, once the bootstrap command has been applied.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// Every registered broker, fenced or not, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    /// The registration of broker `id`.
    pub fn broker(&self, id: NodeId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// Brokers that are registered and not fenced: those partitions may be placed on.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// True if broker `id` is registered and not fenced.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// `topic`'s `partition` as clients see it (leader, replicas, ISR, offline replicas).
    /// The live leader of `topic`'s `partition`, with its registration and the leader epoch:
    /// what a refused Produce or Fetch names so the client goes there at once (KIP-951).
    pub fn live_leader(
        &self,
        topic: &TopicMeta,
        partition: i32,
    ) -> Option<(&BrokerRegistration, LeaderEpoch)> {
        let state = self.partition_state(topic, partition)?;
        Some((self.broker(state.leader?)?, state.leader_epoch))
    }

    pub fn partition_state(&self, topic: &TopicMeta, partition: i32) -> Option<PartitionState> {
        let placement = topic.placement(partition)?;
        let leader = Some(placement.leader).filter(|l| self.is_live(*l));
        let offline = placement
            .replicas
            .iter()
            .copied()
            .filter(|r| !self.is_live(*r))
            .collect();
        Some(PartitionState {
            leader,
            leader_epoch: placement.leader_epoch,
            replicas: placement.replicas.clone(),
            isr: placement.isr(),
            partition_epoch: placement.partition_epoch,
            offline,
        })
    }

    /// True if `precondition` holds in this image, for an entry of quorum term `term`.
    pub fn holds(&self, precondition: &Precondition, term: u64) -> bool {
        match precondition {
            Precondition::ControllerTerm(decided_in) => *decided_in == term,
            Precondition::NoClusterId => self.cluster_id.is_none(),
            Precondition::TopicAbsent(name) => !self.topics.contains_key(name),
            Precondition::TopicIs { name, id } => {
                self.topics.get(name).is_some_and(|t| t.id == *id)
            }
            Precondition::TopicPartitions { name, partitions } => self
                .topics
                .get(name)
                .is_some_and(|t| t.partitions == *partitions),
            Precondition::PartitionLeader {
                name,
                partition,
                leader,
                leader_epoch,
            } => self
                .topics
                .get(name)
                .and_then(|t| t.placement(*partition))
                .is_some_and(|p| p.leader == *leader && p.leader_epoch == *leader_epoch),
            Precondition::ProducerIdsReservedUntil(end) => self.producer_ids_reserved_until == *end,
            Precondition::BrokerLive(id) => self.is_live(*id),
            Precondition::PartitionEpoch {
                name,
                partition,
                partition_epoch,
            } => self
                .topics
                .get(name)
                .and_then(|t| t.placement(*partition))
                .is_some_and(|p| p.partition_epoch == *partition_epoch),
        }
    }

    /// Applies `command`, from a log entry of quorum term `term`, if every precondition holds;
    /// otherwise changes nothing and returns the first that failed. Deterministic: every node
    /// gives the same answer.
    pub fn apply_command(
        &mut self,
        command: &MetadataCommand,
        term: u64,
    ) -> Result<(), Precondition> {
        if let Some(failed) = command.preconditions.iter().find(|p| !self.holds(p, term)) {
            return Err(failed.clone());
        }
        for record in &command.records {
            self.apply(record);
        }
        Ok(())
    }

    /// The topic called `name`.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    /// The topic whose id is `id`.
    pub fn topic_by_id(&self, id: TopicId) -> Option<&Arc<TopicMeta>> {
        self.topic_names_by_id
            .get(&id)
            .and_then(|name| self.topics.get(name))
    }

    /// Every topic, by name.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicMeta>> {
        self.topics.values()
    }

    /// True if some topic already has `id`.
    pub fn has_topic_id(&self, id: TopicId) -> bool {
        self.topic_names_by_id.contains_key(&id)
    }

    /// The dynamic configs of `scope` resource `name` (empty if none).
    pub fn configs(&self, scope: ConfigScope, name: &str) -> BTreeMap<String, String> {
        self.scoped(scope).get(name).cloned().unwrap_or_default()
    }

    /// The names of the `scope` resources that have dynamic configs, sorted.
    pub fn config_names(&self, scope: ConfigScope) -> Vec<String> {
        self.scoped(scope).keys().cloned().collect()
    }

    /// The end of the last reserved producer-id block.
    pub fn producer_ids_reserved_until(&self) -> i64 {
        self.producer_ids_reserved_until
    }

    fn scoped(&self, scope: ConfigScope) -> &BTreeMap<String, BTreeMap<String, String>> {
        match scope {
            ConfigScope::Group => &self.group_configs,
            ConfigScope::Broker => &self.broker_configs,
        }
    }

    fn scoped_mut(
        &mut self,
        scope: ConfigScope,
    ) -> &mut BTreeMap<String, BTreeMap<String, String>> {
        match scope {
            ConfigScope::Group => &mut self.group_configs,
            ConfigScope::Broker => &mut self.broker_configs,
        }
    }

    /// Applies one record. Records about topics that do not exist change nothing (the writer
    /// never emits them; a replay of a log cut mid-way must still not fail).
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::ClusterId(id) => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(id.clone());
                }
            }
            MetadataRecord::RegisterBroker(registration) => {
                self.brokers.insert(registration.id, registration.clone());
            }
            MetadataRecord::BrokerFenced { id, fenced } => {
                if let Some(broker) = self.brokers.get_mut(id) {
                    broker.fenced = *fenced;
                }
            }
            MetadataRecord::BrokerShutdown { id } => {
                if let Some(broker) = self.brokers.get_mut(id) {
                    broker.fenced = true;
                    broker.shutting_down = true;
                }
            }
            MetadataRecord::UnregisterBroker { id } => {
                self.brokers.remove(id);
            }
            MetadataRecord::PartitionLeader {
                name,
                partition,
                replicas,
                leader,
                leader_epoch,
            } => {
                self.update_topic(name, |t| {
                    if let Some(slot) = usize::try_from(*partition)
                        .ok()
                        .and_then(|p| t.placements.get_mut(p))
                    {
                        *slot = PartitionPlacement {
                            replicas: replicas.clone(),
                            leader: *leader,
                            leader_epoch: *leader_epoch,
                            isr: vec![*leader],
                            partition_epoch: slot.partition_epoch + 1,
                            adding: Vec::new(),
                            removing: Vec::new(),
                        };
                    }
                });
            }
            MetadataRecord::PartitionChange {
                name,
                partition,
                placement,
            } => {
                self.update_topic(name, |t| {
                    if let Some(slot) = usize::try_from(*partition)
                        .ok()
                        .and_then(|p| t.placements.get_mut(p))
                    {
                        *slot = placement.clone();
                    }
                });
            }
            MetadataRecord::Topic(topic) => {
                if let Some(old) = self.topics.get(&topic.name) {
                    self.topic_names_by_id.remove(&old.id);
                }
                self.topic_names_by_id.insert(topic.id, topic.name.clone());
                self.topics
                    .insert(topic.name.clone(), Arc::new(topic.clone()));
            }
            MetadataRecord::RemoveTopic { name } => {
                if let Some(old) = self.topics.remove(name) {
                    self.topic_names_by_id.remove(&old.id);
                }
            }
            MetadataRecord::TopicConfigs { name, configs } => {
                self.update_topic(name, |t| t.configs = configs.clone());
            }
            MetadataRecord::PartitionCount {
                name,
                partitions,
                placements,
            } => {
                self.update_topic(name, |t| {
                    t.partitions = *partitions;
                    t.placements.extend(placements.iter().cloned());
                    t.placements
                        .truncate(usize::try_from(*partitions).unwrap_or(0));
                });
            }
            MetadataRecord::Configs {
                scope,
                name,
                configs,
            } => {
                let map = self.scoped_mut(*scope);
                if configs.is_empty() {
                    map.remove(name);
                } else {
                    map.insert(name.clone(), configs.clone());
                }
            }
            MetadataRecord::ProducerIdBlock { reserved_until } => {
                // Reservations only grow: a stale record cannot make ids reusable.
                self.producer_ids_reserved_until =
                    self.producer_ids_reserved_until.max(*reserved_until);
            }
        }
    }

    fn update_topic(&mut self, name: &str, change: impl FnOnce(&mut TopicMeta)) {
        if let Some(topic) = self.topics.get_mut(name) {
            change(Arc::make_mut(topic));
        }
    }

    /// The records that rebuild this image from an empty one (what a snapshot holds).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records: Vec<MetadataRecord> = self
            .cluster_id
            .iter()
            .map(|id| MetadataRecord::ClusterId(id.clone()))
            .collect();
        records.extend(
            self.brokers
                .values()
                .map(|b| MetadataRecord::RegisterBroker(b.clone())),
        );
        records.extend(
            self.topics
                .values()
                .map(|t| MetadataRecord::Topic(TopicMeta::clone(t))),
        );
        for (scope, map) in [
            (ConfigScope::Group, &self.group_configs),
            (ConfigScope::Broker, &self.broker_configs),
        ] {
            records.extend(map.iter().map(|(name, configs)| MetadataRecord::Configs {
                scope,
                name: name.clone(),
                configs: configs.clone(),
            }));
        }
        records.push(MetadataRecord::ProducerIdBlock {
            reserved_until: self.producer_ids_reserved_until,
        });
        records
    }

    /// The image the records give, applied in order to an empty image.
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a MetadataRecord>) -> Self {
        let mut image = MetadataImage::default();
        for record in records {
            image.apply(record);
        }
        image
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32) -> TopicMeta {
        TopicMeta {
            name: name.to_string(),
            id: TopicId::random(),
            partitions,
            configs: BTreeMap::new(),
            placements: (0..partitions)
                .map(|_| PartitionPlacement::new(vec![NodeId(1)]))
                .collect(),
        }
    }

    #[test]
    fn a_controller_decision_applies_only_in_the_term_it_was_made() {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::Topic(topic("a", 1)));
        let fence = MetadataCommand {
            preconditions: vec![Precondition::ControllerTerm(5)],
            records: vec![MetadataRecord::RemoveTopic { name: "a".into() }],
        };
        // Forwarded to the leader of term 6 (or appended after the term ended): dropped.
        assert_eq!(
            image.apply_command(&fence, 6),
            Err(Precondition::ControllerTerm(5))
        );
        assert!(image.topic("a").is_some());
        assert_eq!(image.apply_command(&fence, 5), Ok(()));
        assert!(image.topic("a").is_none());
    }

    #[test]
    fn topics_are_found_by_name_and_by_id() {
        let a = topic("a", 1);
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::Topic(a.clone()));
        assert_eq!(image.topic("a").map(|t| t.id), Some(a.id));
        assert_eq!(image.topic_by_id(a.id).map(|t| t.name.as_str()), Some("a"));
        image.apply(&MetadataRecord::PartitionCount {
            name: "a".into(),
            partitions: 4,
            placements: vec![PartitionPlacement::new(vec![NodeId(2)]); 3],
        });
        assert_eq!(image.topic("a").and_then(|t| t.leader(3)), Some(NodeId(2)));
        assert_eq!(image.topic_by_id(a.id).map(|t| t.partitions), Some(4));
        image.apply(&MetadataRecord::RemoveTopic { name: "a".into() });
        assert!(image.topic("a").is_none());
        assert!(image.topic_by_id(a.id).is_none(), "the id index follows");
    }

    #[test]
    fn an_older_image_is_not_changed_by_applying_to_a_clone() {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::Topic(topic("a", 1)));
        let before = Arc::new(image.clone());
        image.apply(&MetadataRecord::PartitionCount {
            name: "a".into(),
            partitions: 9,
            placements: Vec::new(),
        });
        assert_eq!(before.topic("a").map(|t| t.partitions), Some(1));
        assert_eq!(image.topic("a").map(|t| t.partitions), Some(9));
    }

    #[test]
    fn records_round_trip_through_a_snapshot() {
        let mut image = MetadataImage::default();
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "5".to_string());
        for r in [
            MetadataRecord::Topic(topic("a", 2)),
            MetadataRecord::Topic(topic("b", 3)),
            MetadataRecord::TopicConfigs {
                name: "b".into(),
                configs: configs.clone(),
            },
            MetadataRecord::Configs {
                scope: ConfigScope::Group,
                name: "g".into(),
                configs: configs.clone(),
            },
            MetadataRecord::ProducerIdBlock {
                reserved_until: 2000,
            },
            MetadataRecord::ProducerIdBlock {
                reserved_until: 1000,
            },
        ] {
            image.apply(&r);
        }
        assert_eq!(image.producer_ids_reserved_until(), 2000, "never lowered");
        let rebuilt = MetadataImage::from_records(&image.to_records());
        assert_eq!(rebuilt.to_records(), image.to_records());
        assert_eq!(rebuilt.configs(ConfigScope::Group, "g"), configs);
        assert_eq!(rebuilt.topic("b").map(|t| t.configs.clone()), Some(configs));
    }
}
