//! The broker as a value: [`Broker::start`] opens the log directory, joins the metadata quorum
//! (a one-voter quorum when no cluster is configured), registers with it, makes the partition
//! logs on disk match the partitions placed on this node, binds the listener and serves until
//! [`Broker::shutdown`]. A publisher task keeps the logs matching the metadata as other nodes
//! change it. Tests and embedders start it in-process on `127.0.0.1:0`; `main.rs` is a thin
//! wrapper.

use crate::common::PartitionIndex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::group::{GroupCoordinator, GroupHost};
use crate::internal_topic::TopicError;
use crate::internal_topic::{CoordinatorHost, StoreError};
use crate::log::{LogConfig, LogError, LogManager, LogOptions, PartitionLog, TopicPartition};
use crate::metadata::{MetadataError, MetadataStore, TopicMeta};

/// Everything a handler may consult: configuration, metadata and the partition logs.
pub struct BrokerContext {
    /// The configuration as started (file, environment, flags), without dynamic configs.
    pub static_config: Config,
    /// The configuration in force: `static_config` with the dynamic broker configs on top,
    /// swapped whole when they change (readers keep the `Arc` they took).
    current_config: std::sync::RwLock<Arc<Config>>,
    pub metadata: Arc<MetadataStore>,
    pub logs: Arc<LogManager>,
    /// Consumer groups and committed offsets.
    pub groups: GroupCoordinator,
    /// Transactional ids and their transactions.
    pub txns: crate::txn::TransactionCoordinator,
    /// Most partitions this broker will hold (see [`partition_limit`]).
    pub partition_limit: usize,
    /// Request bytes that may be held in memory at once (`queued.max.request.bytes`), shared
    /// by every connection; `None` when unbounded.
    pub request_bytes: Option<Arc<tokio::sync::Semaphore>>,
    /// Which hosted partitions this broker leads and follows, and replication itself.
    pub replicas: Arc<crate::replication::ReplicaManager>,
    /// Serialises changes to which partition logs exist here (handlers and the publisher).
    placement_lock: std::sync::Mutex<()>,
}

/// A partition this broker leads, as a request found it.
pub struct Led {
    pub log: Arc<PartitionLog>,
    pub leader_epoch: crate::common::LeaderEpoch,
    pub state: Arc<crate::replication::LeaderState>,
}

/// Why a broker does not serve a partition's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotServed {
    /// No such topic or partition.
    Unknown,
    /// Another broker leads it (or none does right now); clients refresh metadata and retry.
    NotLeader {
        leader: Option<crate::common::NodeId>,
        leader_epoch: crate::common::LeaderEpoch,
    },
}

impl NotServed {
    /// The Kafka error for it.
    pub fn error(&self) -> kafka_protocol::error::ResponseError {
        match self {
            NotServed::Unknown => kafka_protocol::error::ResponseError::UnknownTopicOrPartition,
            NotServed::NotLeader { .. } => {
                kafka_protocol::error::ResponseError::NotLeaderOrFollower
            }
        }
    }
}

/// Descriptors kept back for everything that is not an active segment: listener, metadata and
/// checkpoint files, index writes, the runtime.
const RESERVED_DESCRIPTORS: usize = 256;

/// Most partitions the broker can hold without running out of file descriptors: each partition
/// keeps its active segment open, so past this a CreateTopics or CreatePartitions would end in
/// EMFILE — and the listener could no longer accept connections. The open-file limit, less
/// what connections (`max.connections`), the sealed-segment cache (`log.segment.fd.cache.size`)
/// and the broker itself may use.
/// Raises the soft open-file limit to the hard one, as the broker keeps one descriptor per
/// partition and one per connection, and distributions often leave the soft limit at 1024.
/// Returns the (old, new) soft limit if it changed. Called by the binary at start-up.
#[allow(
    unsafe_code,
    reason = "getrlimit and setrlimit have no safe std wrapper"
)]
pub fn raise_open_file_limit() -> std::io::Result<Option<(u64, u64)>> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur >= limit.rlim_max {
        return Ok(None);
    }
    let old = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Some((old, limit.rlim_max)))
}

/// Most partitions the broker can hold: each keeps its active segment's descriptors open, so the
/// soft open-file limit less connections, the sealed-segment descriptor cache and
/// `RESERVED_DESCRIPTORS`.
#[allow(unsafe_code, reason = "getrlimit has no safe std wrapper")]
pub fn partition_limit(config: &Config) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let open_files = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    open_files.saturating_sub(
        config.max_connections + config.log_segment_fd_cache_size + RESERVED_DESCRIPTORS,
    )
}

impl BrokerContext {
    /// The configuration in force (dynamic broker configs included).
    pub fn config(&self) -> Arc<Config> {
        self.current_config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The layers broker settings come from (dynamic per-broker and default, static), for
    /// DescribeConfigs' sources and synonyms.
    pub fn config_layers(&self) -> crate::metadata::config_catalog::BrokerLayers<'_> {
        use crate::metadata::ConfigScope;
        crate::metadata::config_catalog::BrokerLayers {
            config: &self.static_config,
            per_broker: self
                .metadata
                .configs(ConfigScope::Broker, &self.static_config.node_id.to_string()),
            cluster_default: self.metadata.configs(ConfigScope::Broker, ""),
        }
    }

    /// Applies the dynamic broker configs stored in the metadata: rebuilds the configuration
    /// from the static one with the cluster default and this broker's own layered on top,
    /// swaps it in, and re-applies every topic's log settings so partitions without an override
    /// follow the new broker defaults at once. An invalid combination changes nothing.
    pub fn apply_dynamic_configs(&self) -> Result<(), crate::config::ConfigError> {
        self.refresh_config()?;
        for topic in self.metadata.topics() {
            self.apply_log_config(&topic);
        }
        Ok(())
    }

    /// Rebuilds the configuration in force from the static one and the dynamic broker
    /// configs in the metadata, without touching the partition logs (callers that go on to
    /// [`BrokerContext::reconcile`] have it put each log's settings in force).
    fn refresh_config(&self) -> Result<(), crate::config::ConfigError> {
        use crate::metadata::ConfigScope;
        let node = self.static_config.node_id.to_string();
        let config = self.static_config.with_dynamic(
            &self.metadata.configs(ConfigScope::Broker, ""),
            &self.metadata.configs(ConfigScope::Broker, &node),
        )?;
        self.replicas.set_throttle_rates(
            config.leader_replication_throttled_rate,
            config.follower_replication_throttled_rate,
        );
        *self
            .current_config
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// This broker's node id.
    pub fn node_id(&self) -> crate::common::NodeId {
        // Static: node.id is not a dynamic setting.
        self.static_config.node_id
    }

    /// The partition log for `topic`/`partition`, if it exists.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        self.logs.get(&TopicPartition {
            topic: topic.to_string(),
            partition: PartitionIndex(partition),
        })
    }

    /// The log of `topic`/`partition` if this broker leads it; otherwise why not, for the
    /// Produce, Fetch, ListOffsets and OffsetForLeaderEpoch answers.
    /// `image` is the one the request already took, so that its lookups agree.
    pub fn led_partition(
        &self,
        image: &crate::metadata::MetadataImage,
        topic: &str,
        partition: i32,
    ) -> Result<Led, NotServed> {
        let Some(placement) = image.topic(topic).and_then(|t| t.placement(partition)) else {
            return Err(NotServed::Unknown);
        };
        let not_leader = || NotServed::NotLeader {
            leader: Some(placement.leader).filter(|l| image.is_live(*l)),
            leader_epoch: placement.leader_epoch,
        };
        if placement.leader != self.node_id() {
            return Err(not_leader());
        }
        // Led here per the image, but the publisher has not made this broker leader yet (log
        // not made, or still a follower whose fetcher may be appending): retriable.
        self.replicas
            .leader(topic, partition)
            .filter(|state| state.leader_epoch == placement.leader_epoch)
            .map(|state| Led {
                log: Arc::clone(&state.log),
                leader_epoch: state.leader_epoch,
                state,
            })
            .ok_or_else(not_leader)
    }

    /// The registration of live broker `id` (for KIP-951 leader endpoints).
    pub fn live_broker(
        &self,
        id: crate::common::NodeId,
    ) -> Option<crate::metadata::BrokerRegistration> {
        let image = self.metadata.image();
        image.broker(id).filter(|b| !b.fenced).cloned()
    }

    /// The broker to name as the controller in Metadata and DescribeCluster: the quorum's
    /// leader (every broker forwards admin writes to it, so any would do), or this broker
    /// while an election is on.
    pub fn controller_id(&self) -> crate::common::NodeId {
        self.metadata
            .quorum()
            .status()
            .leader
            .filter(|l| self.metadata.image().is_live(*l))
            .unwrap_or(self.node_id())
    }

    /// Refuses to go past [`BrokerContext::partition_limit`].
    pub fn check_partition_limit(&self, adding: usize) -> Result<(), TopicError> {
        let total = self.logs.all().len() + adding;
        if total > self.partition_limit {
            return Err(TopicError::PartitionLimit {
                adding,
                total,
                limit: self.partition_limit,
            });
        }
        Ok(())
    }

    /// Creates a topic: metadata first (durably), then one log per partition.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, TopicError> {
        self.create_topic_with(name, partitions, 1, None, configs)
    }

    /// Creates a topic with a replication factor or an explicit replica assignment: the
    /// metadata is committed through the quorum first, then this node makes the logs of the
    /// partitions placed on it (the other brokers make theirs as they apply the change).
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: usize,
        assignment: Option<Vec<Vec<crate::common::NodeId>>>,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, TopicError> {
        self.check_partition_limit(usize::try_from(partitions).unwrap_or(0))?;
        let topic = self.metadata.create_topic_with(
            name,
            partitions,
            replication_factor,
            assignment,
            configs,
        )?;
        if let Err(e) = self.host_partitions(&topic) {
            // Undo so the name can be retried; partitions already made are orphans that the
            // next start removes if this undo fails too.
            let _ = self.delete_topic(name);
            return Err(e);
        }
        tracing::info!(topic = name, partitions = topic.partitions, id = %topic.id, "created topic");
        Ok(topic)
    }

    /// True if this node holds a replica of `topic`'s `partition` (it leads or follows it).
    fn hosts(&self, topic: &TopicMeta, partition: i32) -> bool {
        topic
            .placement(partition)
            .is_some_and(|p| p.leader == self.node_id() || p.replicas.contains(&self.node_id()))
    }

    /// Makes the logs of `topic`'s partitions placed on this node, with its settings.
    fn host_partitions(&self, topic: &TopicMeta) -> Result<(), TopicError> {
        let _placement = self
            .placement_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let config = self.log_config_for(topic);
        for partition in 0..topic.partitions {
            if !self.hosts(topic, partition) {
                continue;
            }
            let tp = TopicPartition {
                topic: topic.name.clone(),
                partition: PartitionIndex(partition),
            };
            match self.logs.get(&tp) {
                Some(log) if log.topic_id() == topic.id => log.set_config(config.clone()),
                _ => {
                    self.logs
                        .create_with_config(&tp, topic.id, Some(config.clone()))?;
                }
            }
        }
        // Led (or followed) from now, not from the publisher's next pass: a produce right
        // after the create must not be told NOT_LEADER_OR_FOLLOWER by the broker that leads.
        self.replicas.apply(&self.metadata.image());
        Ok(())
    }

    /// The log settings of `topic`: its overrides over the broker's defaults.
    pub fn log_config_for(&self, topic: &TopicMeta) -> LogConfig {
        self.logs
            .default_config()
            .with_overrides(&crate::metadata::config_catalog::broker_topic_defaults(
                &self.config(),
            ))
            .with_overrides(&topic.configs)
    }

    /// Puts `topic`'s log settings in force in each of its partition logs: the newest
    /// committed ones, under the placement lock, so that a reconciliation working from an
    /// older image cannot put older settings back after this.
    fn apply_log_config(&self, topic: &TopicMeta) {
        let _placement = self
            .placement_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(topic) = self.metadata.topic(&topic.name) else {
            return;
        };
        let config = self.log_config_for(&topic);
        for partition in 0..topic.partitions {
            if let Some(log) = self.partition(&topic.name, partition) {
                log.set_config(config.clone());
            }
        }
    }

    /// Replaces a topic's explicit configs: durably first, then in every partition log, so the
    /// next append uses them. `None` if the topic does not exist.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<Option<Arc<TopicMeta>>, TopicError> {
        let Some(topic) = self.metadata.set_topic_configs(name, configs)? else {
            return Ok(None);
        };
        self.apply_log_config(&topic);
        Ok(Some(topic))
    }

    /// Raises a topic's partition count: metadata first (durably), then the new logs. A crash
    /// in between leaves partitions that the next start's reconciliation creates.
    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
        assignment: Option<Vec<Vec<crate::common::NodeId>>>,
    ) -> Result<Option<Arc<TopicMeta>>, TopicError> {
        if let Some(current) = self.metadata.topic(name) {
            self.check_partition_limit(usize::try_from(count - current.partitions).unwrap_or(0))?;
        }
        let Some(topic) = self.metadata.set_partition_count(name, count, assignment)? else {
            return Ok(None);
        };
        self.host_partitions(&topic)?;
        tracing::info!(topic = name, partitions = count, "added partitions");
        Ok(Some(topic))
    }

    /// Deletes a topic: metadata first (durably), then its data on disk.
    pub fn delete_topic(&self, name: &str) -> Result<Option<Arc<TopicMeta>>, TopicError> {
        let Some(topic) = self.metadata.delete_topic(name)? else {
            return Ok(None);
        };
        self.reconcile()?;
        tracing::info!(topic = name, "deleted topic");
        Ok(Some(topic))
    }

    /// Makes the logs on disk match the metadata: creates the partitions placed on this node
    /// that are missing (after a start, or a change made through another broker), removes
    /// partitions of topics that no longer exist (deleted, possibly elsewhere, or an
    /// interrupted create or delete), and puts each topic's settings in force.
    pub fn reconcile(&self) -> Result<(), TopicError> {
        self.reconcile_to_image().map(|_| ())
    }

    /// [`BrokerContext::reconcile`], returning the image the logs and roles now match (the
    /// coordinators must follow that one, not a newer one whose roles are not applied yet).
    pub fn reconcile_to_image(&self) -> Result<Arc<crate::metadata::MetadataImage>, TopicError> {
        let _placement = self
            .placement_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let image = self.metadata.image();
        for (tp, log) in self.logs.all() {
            let Some(topic) = image
                .topic(&tp.topic)
                .filter(|t| tp.partition < t.partitions && log.topic_id() == t.id)
            else {
                tracing::warn!(topic = %tp.topic, partition = %tp.partition, "removing partition with no topic metadata");
                self.logs.delete(&tp)?;
                continue;
            };
            if !self.hosts(topic, tp.partition.get()) {
                // Reassigned away from this broker (the new replicas are in sync).
                tracing::info!(topic = %tp.topic, partition = %tp.partition, "removing a replica no longer placed here");
                self.logs.delete(&tp)?;
            }
        }
        for topic in image.topics() {
            for partition in 0..topic.partitions {
                if !self.hosts(topic, partition) {
                    continue;
                }
                let tp = TopicPartition {
                    topic: topic.name.clone(),
                    partition: PartitionIndex(partition),
                };
                if self.logs.get(&tp).is_none() {
                    self.logs.create(&tp, topic.id)?;
                }
                if let Some(log) = self.logs.get(&tp) {
                    log.set_config(self.log_config_for(topic));
                }
            }
            let not_applied: Vec<&str> = crate::metadata::config_catalog::NOT_APPLIED
                .iter()
                .copied()
                .filter(|name| topic.configs.contains_key(*name))
                .collect();
            if !not_applied.is_empty()
                && self.logs.all().iter().any(|(tp, _)| tp.topic == topic.name)
            {
                tracing::debug!(topic = %topic.name, "topic configs that do not apply to Gregor are kept but not acted on: {}", not_applied.join(", "));
            }
        }
        // Each hosted partition in the role the image gives it (leader or follower).
        self.replicas.apply(&image);
        Ok(image)
    }
}

/// The coordinators reach the broker only through these traits (see `internal_topic`).
impl CoordinatorHost for BrokerContext {
    fn logs(&self) -> &LogManager {
        &self.logs
    }

    fn metadata(&self) -> &MetadataStore {
        &self.metadata
    }

    fn config(&self) -> Arc<Config> {
        BrokerContext::config(self)
    }

    fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<i32, TopicError> {
        // Replicated like Kafka's internal topics, on as many brokers as there are up to the
        // setting (a single broker still works with no configuration).
        let config = self.config();
        let wanted = if name == crate::txn::records::TXN_TOPIC {
            config.transaction_state_log_replication_factor
        } else {
            config.offsets_topic_replication_factor
        };
        let brokers = self.metadata.image().live_brokers().count().max(1);
        let rf = usize::try_from(wanted).unwrap_or(1).clamp(1, brokers);
        Ok(BrokerContext::create_topic_with(self, name, partitions, rf, None, configs)?.partitions)
    }

    fn partition(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        BrokerContext::partition(self, topic, partition)
    }

    /// Durable here, then on the partition's in-sync replicas (Kafka's coordinators append
    /// with acks=all), within Kafka's `offsets.commit.timeout.ms` default; past it, or if the
    /// leadership went away meanwhile, the write is not acknowledged (clients retry).
    fn wait_acknowledgeable<'a>(
        &'a self,
        log: &'a Arc<PartitionLog>,
        end_offset: crate::common::Offset,
    ) -> crate::internal_topic::BoxFuture<'a, Result<(), StoreError>> {
        const COORDINATOR_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
        Box::pin(async move {
            log.wait_durable(end_offset).await?;
            let tp = log.topic_partition();
            let not_served = || StoreError::NotServed(tp.partition.get());
            let state = self
                .replicas
                .leader(&tp.topic, tp.partition.get())
                .filter(|s| Arc::ptr_eq(&s.log, log))
                .ok_or_else(not_served)?;
            crate::replication::wait_replicated(&state, end_offset, COORDINATOR_WRITE_TIMEOUT)
                .await
                .map_err(|e| {
                    tracing::warn!(partition = %tp, "coordinator write not replicated: {e}");
                    not_served()
                })
        })
    }
}

impl GroupHost for BrokerContext {
    fn groups(&self) -> &GroupCoordinator {
        &self.groups
    }
}

impl crate::txn::TxnHost for BrokerContext {
    fn txns(&self) -> &crate::txn::TransactionCoordinator {
        &self.txns
    }

    fn write_markers(
        &self,
        marker: crate::txn::TxnMarker,
        partitions: Vec<(String, i32)>,
    ) -> crate::txn::MarkerFuture<'_> {
        Box::pin(crate::marker_channel::write_markers(
            self, marker, partitions,
        ))
    }
}

/// Why the broker could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("log directory: {0}")]
    Log(#[from] LogError),
    #[error("metadata: {0}")]
    Metadata(#[from] MetadataError),
    #[error("topics: {0}")]
    Topic(#[from] TopicError),
    #[error("consumer groups: {0}")]
    Groups(StoreError),
    #[error("transactions: {0}")]
    Transactions(StoreError),
    #[error("metadata quorum: {0}")]
    Quorum(crate::cluster::raft::StartError),
}

/// A running broker.
pub struct Broker {
    context: Arc<BrokerContext>,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    /// The client listener's task (none on a controller-only node).
    server: Option<JoinHandle<()>>,
    sweeper: JoinHandle<()>,
    txn_sweeper: JoinHandle<()>,
    publisher: JoinHandle<()>,
    fencing: JoinHandle<()>,
    isr_expiry: JoinHandle<()>,
}

impl Broker {
    /// Opens storage, recovers, binds the listener and starts serving.
    pub async fn start(config: Config) -> Result<Broker, BrokerError> {
        Self::start_with_io(config, Arc::new(crate::log::io::OsIo)).await
    }

    /// [`Broker::start`] with every durable file operation (logs and metadata) going through
    /// `io` (fault-injection tests use [`crate::log::io::FaultyIo`]).
    pub async fn start_with_io(
        mut config: Config,
        io: Arc<dyn crate::log::io::FsIo>,
    ) -> Result<Broker, BrokerError> {
        let started = std::time::Instant::now();
        let roles = config.cluster.roles;
        // A controller-only node serves no clients.
        let listener = if roles.broker {
            Some(
                TcpListener::bind(config.listeners)
                    .await
                    .map_err(|source| BrokerError::Bind {
                        addr: config.listeners,
                        source,
                    })?,
            )
        } else {
            None
        };
        let controller_listener = match config.cluster.controller_listener {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| BrokerError::Bind { addr, source })?,
            ),
            None => None,
        };
        let local_addr = match listener.as_ref().or(controller_listener.as_ref()) {
            Some(l) => l.local_addr().map_err(|source| BrokerError::Bind {
                addr: config.listeners,
                source,
            })?,
            None => config.listeners,
        };
        if config.advertised_port == 0 {
            // Bound to port 0 (tests): advertise the port the kernel picked.
            config.advertised_port = local_addr.port();
        }
        let metadata_endpoint = controller_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.to_string());
        std::fs::create_dir_all(&config.log_dir).map_err(LogError::from)?;
        crate::log::fd_cache::global().set_capacity(config.log_segment_fd_cache_size);
        let options = LogOptions {
            segment_bytes: config.log_segment_bytes,
            index_interval_bytes: config.log_index_interval_bytes,
            flush_interval_ms: config.flush_interval_ms,
            checkpoint_interval_ms: config.checkpoint_interval_ms,
        };
        let logs = {
            let dir = config.log_dir.clone();
            let io = Arc::clone(&io);
            tokio::task::spawn_blocking(move || LogManager::open_with_io(&dir, options, io))
                .await
                .map_err(|e| LogError::from(std::io::Error::other(e)))??
        };
        // A directory that already has a metadata log is not a pre-cluster one: its topics
        // are in that log, never to be rebuilt from the partition directories.
        let had_metadata_log = config
            .log_dir
            .join(crate::log::manager::METADATA_LOG_DIR)
            .exists();
        let quorum = start_quorum(&config, controller_listener, Arc::clone(&io)).await?;
        let registration = crate::metadata::BrokerRegistration {
            id: config.node_id,
            incarnation: uuid::Uuid::new_v4(),
            host: config.advertised_host.clone(),
            port: config.advertised_port,
            rack: config.cluster.rack.clone(),
            fenced: false,
            shutting_down: false,
            metadata_endpoint: if roles.controller {
                None
            } else {
                metadata_endpoint
            },
        };
        if !roles.controller {
            // A broker-only node receives the metadata log only once the leader has made it an
            // observer, which the leader does when it sees this registration.
            join_as_observer(quorum.as_ref(), &registration).await?;
        }
        let metadata = MetadataStore::open(
            Arc::clone(&quorum),
            &config.log_dir,
            config.node_id,
            config.cluster_id.as_deref(),
            || {
                if had_metadata_log {
                    Vec::new()
                } else {
                    topics_found_on_disk(&logs, config.node_id)
                }
            },
            io,
        )
        .await?;
        if roles.broker {
            metadata.register_broker(registration).await?;
        }
        let groups = GroupCoordinator::new(&config);
        let txns = crate::txn::TransactionCoordinator::new(&config);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let replicas = Arc::new(crate::replication::ReplicaManager::new(
            crate::replication::ReplicationSettings {
                me: config.node_id,
                lag_time_max: std::time::Duration::from_millis(
                    config.cluster.replica_lag_time_max_ms,
                ),
                fetch_wait_max: std::time::Duration::from_millis(
                    config.cluster.replica_fetch_wait_max_ms,
                ),
                fetch_max_bytes: i32::try_from(config.cluster.replica_fetch_max_bytes)
                    .unwrap_or(i32::MAX),
                fetch_response_max_bytes: i32::try_from(
                    config.cluster.replica_fetch_response_max_bytes,
                )
                .unwrap_or(i32::MAX),
            },
            Arc::clone(&metadata),
            Arc::clone(&logs),
            tokio::runtime::Handle::current(),
            shutdown.subscribe(),
        ));
        let context = Arc::new(BrokerContext {
            replicas,
            partition_limit: partition_limit(&config),
            request_bytes: config.queued_max_request_bytes.map(|bytes| {
                Arc::new(tokio::sync::Semaphore::new(
                    bytes.min(tokio::sync::Semaphore::MAX_PERMITS),
                ))
            }),
            current_config: std::sync::RwLock::new(Arc::new(config.clone())),
            static_config: config,
            metadata,
            logs,
            groups,
            txns,
            placement_lock: std::sync::Mutex::new(()),
        });
        // Dynamic broker configs stored by an earlier run; if the static configuration changed
        // so that they no longer validate, start without them rather than not at all. Before
        // the reconciliation, which puts every log's settings in force with them.
        if let Err(e) = context.refresh_config() {
            tracing::warn!("ignoring the stored dynamic broker configs: {e}");
        }
        {
            let context = Arc::clone(&context);
            tokio::task::spawn_blocking(move || context.reconcile())
                .await
                .map_err(|e| LogError::from(std::io::Error::other(e)))??;
        }
        context.logs.start_retention(
            std::time::Duration::from_millis(context.config().log_retention_check_interval_ms),
            context.config().producer_id_expiration_ms,
        )?;
        if context.config().log_cleaner_enable {
            context.logs.start_cleaner(
                std::time::Duration::from_millis(context.config().log_cleaner_backoff_ms),
                context.config().log_cleaner_dedupe_buffer_size,
            )?;
        }
        // The coordinators take over the internal partitions led here, as after any
        // metadata change (groups before transactions, which apply offsets to them).
        crate::handlers::coordinator::sync_coordinators(&context)
            .await
            .map_err(|e| match e {
                crate::handlers::coordinator::SyncError::Groups(e) => BrokerError::Groups(e),
                crate::handlers::coordinator::SyncError::Transactions(e) => {
                    BrokerError::Transactions(e)
                }
            })?;
        let isr_expiry = tokio::spawn(Arc::clone(&context.replicas).run_isr_expiry());
        let sweeper = tokio::spawn(crate::group::run_sweeper(
            context.clone(),
            shutdown.subscribe(),
        ));
        let txn_sweeper = tokio::spawn(crate::txn::run_sweeper(
            context.clone(),
            shutdown.subscribe(),
        ));
        let fencing = tokio::spawn(crate::cluster::controller::run_fencing(
            Arc::clone(&quorum),
            crate::cluster::controller::ControllerSettings {
                me: context.node_id(),
                session_timeout: std::time::Duration::from_millis(
                    context.static_config.cluster.broker_session_timeout_ms,
                ),
                unclean_default: context.static_config.cluster.unclean_leader_election_enable,
                auto_leader_rebalance: context.static_config.cluster.auto_leader_rebalance_enable,
                imbalance_check_interval: std::time::Duration::from_secs(
                    context
                        .static_config
                        .cluster
                        .leader_imbalance_check_interval_seconds,
                ),
                imbalance_percent: context
                    .static_config
                    .cluster
                    .leader_imbalance_per_broker_percentage,
            },
            shutdown.subscribe(),
        ));
        let publisher = tokio::spawn(publish_metadata(
            context.clone(),
            quorum.applied(),
            shutdown.subscribe(),
        ));
        let server = listener.map(|listener| {
            tokio::spawn(crate::server::serve(listener, context.clone(), shutdown_rx))
        });
        tracing::info!(
            addr = %local_addr,
            node_id = %context.node_id(),
            roles = match (roles.broker, roles.controller) {
                (true, true) => "broker,controller",
                (true, false) => "broker",
                _ => "controller",
            },
            cluster_id = context.metadata.cluster_id(),
            log_dir = %context.config().log_dir.display(),
            topics = context.metadata.topics().len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "gregor is ready"
        );
        Ok(Broker {
            context,
            local_addr,
            shutdown,
            server,
            sweeper,
            txn_sweeper,
            publisher,
            fencing,
            isr_expiry,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `host:port` for clients' `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.local_addr.to_string()
    }

    /// The shared state handlers use (for tests that inspect the broker directly).
    pub fn context(&self) -> &Arc<BrokerContext> {
        &self.context
    }

    /// During a controlled shutdown: waits (at most `limit`) until no partition that has
    /// another live in-sync replica is still led here, so that the last acks=all produces are
    /// answered and producers move to the new leaders before the port closes.
    async fn wait_for_leaderships_to_move(&self, limit: std::time::Duration) {
        let me = self.context.node_id();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let image = self.context.metadata.image();
            let movable = image.topics().any(|t| {
                t.placements.iter().any(|p| {
                    p.leader == me && p.isr().iter().any(|r| *r != me && image.is_live(*r))
                })
            });
            if !movable || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stops accepting, lets connections finish their current request, flushes every log and
    /// writes the checkpoints.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        // Controlled shutdown (brokers): fence ourselves first, so that the controller moves our
        // leaderships to in-sync replicas and clients are sent there at once instead of timing
        // out against a closed port. Bounded: with no quorum left the broker still stops.
        let fence = self.context.metadata.quorum().propose(
            crate::metadata::MetadataCommand::unconditional(vec![
                crate::metadata::MetadataRecord::BrokerShutdown {
                    id: self.context.node_id(),
                },
            ]),
        );
        if self.server.is_some()
            && tokio::time::timeout(std::time::Duration::from_secs(2), fence)
                .await
                .map_or(true, |r| r.is_err())
        {
            tracing::warn!("controlled shutdown: could not fence this broker in time");
        } else if self.server.is_some() {
            self.wait_for_leaderships_to_move(std::time::Duration::from_secs(3))
                .await;
        }
        let _ = self.shutdown.send(true);
        // Every task sees the signal; none may hold the stop up for ever. A task that does not
        // end in time is named in the log and aborted: the logs are still flushed below.
        if let Some(server) = self.server {
            // The listener itself gives its connections a bounded time to drain.
            end_task("client listener", server, SHUTDOWN_STEP_LIMIT * 2).await;
        }
        end_task("group sweeper", self.sweeper, SHUTDOWN_STEP_LIMIT).await;
        end_task("transaction sweeper", self.txn_sweeper, SHUTDOWN_STEP_LIMIT).await;
        end_task("metadata publisher", self.publisher, SHUTDOWN_STEP_LIMIT).await;
        end_task("controller fencing", self.fencing, SHUTDOWN_STEP_LIMIT).await;
        end_task("ISR expiry", self.isr_expiry, SHUTDOWN_STEP_LIMIT).await;
        if tokio::time::timeout(
            SHUTDOWN_STEP_LIMIT,
            self.context.metadata.quorum().shutdown(),
        )
        .await
        .is_err()
        {
            tracing::warn!(
                "shutdown: the metadata quorum did not stop within {SHUTDOWN_STEP_LIMIT:?}"
            );
        }
        let logs = self.context.logs.clone();
        tokio::task::spawn_blocking(move || logs.shutdown())
            .await
            .map_err(|e| LogError::from(std::io::Error::other(e)))??;
        tracing::info!("gregor stopped cleanly");
        Ok(())
    }
}

/// How long each step of [`Broker::shutdown`] may take before it is given up on.
const SHUTDOWN_STEP_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits at most `limit` for `task` to end after the shutdown signal; past that, says which
/// task held the stop up and aborts it.
async fn end_task(name: &str, mut task: JoinHandle<()>, limit: std::time::Duration) {
    if tokio::time::timeout(limit, &mut task).await.is_err() {
        tracing::warn!("shutdown: the {name} task did not end within {limit:?}; aborting it");
        task.abort();
    }
}

/// Rebuilds topic entries from partition directories, all placed on `node` (used only if a
/// pre-cluster data directory lost its metadata file).
fn topics_found_on_disk(logs: &LogManager, node: crate::common::NodeId) -> Vec<TopicMeta> {
    let mut topics: BTreeMap<String, TopicMeta> = BTreeMap::new();
    for (tp, log) in logs.all() {
        let entry = topics.entry(tp.topic.clone()).or_insert_with(|| TopicMeta {
            name: tp.topic.clone(),
            id: log.topic_id(),
            partitions: 0,
            configs: BTreeMap::new(),
            placements: Vec::new(),
        });
        entry.partitions = entry.partitions.max(tp.partition.get() + 1);
    }
    for topic in topics.values_mut() {
        topic.placements = (0..topic.partitions)
            .map(|_| crate::metadata::PartitionPlacement::new(vec![node]))
            .collect();
    }
    topics.into_values().collect()
}

/// Starts this node's member of the metadata quorum: the configured voters, or this node alone.
async fn start_quorum(
    config: &Config,
    listener: Option<TcpListener>,
    io: Arc<dyn crate::log::io::FsIo>,
) -> Result<Arc<dyn crate::cluster::MetadataQuorum>, BrokerError> {
    use crate::cluster::raft::{QuorumOptions, RaftQuorum};
    let voters = if config.cluster.voters.is_empty() {
        // A lone voter never dials itself; its address only has to be well-formed.
        let own = listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or_else(|| "127.0.0.1:0".to_string(), |a| a.to_string());
        [(config.node_id, own)].into()
    } else {
        config.cluster.voters.clone()
    };
    let quorum = RaftQuorum::start(
        QuorumOptions {
            node_id: config.node_id,
            voters,
            dir: config.log_dir.join(crate::log::manager::METADATA_LOG_DIR),
            election_timeout_ms: config.cluster.election_timeout_ms,
            listener,
        },
        io,
    )
    .await
    .map_err(BrokerError::Quorum)?;
    Ok(quorum)
}

/// Registers a broker-only node through the leader without waiting to apply it (it does not
/// receive the log yet), then waits until the leader has made it an observer and the log
/// reaches it. Waits as long as it takes for a leader, as a starting Kafka broker does.
async fn join_as_observer(
    quorum: &dyn crate::cluster::MetadataQuorum,
    registration: &crate::metadata::BrokerRegistration,
) -> Result<(), BrokerError> {
    let command = crate::metadata::MetadataCommand::unconditional(vec![
        crate::metadata::MetadataRecord::RegisterBroker(registration.clone()),
    ]);
    let committed = loop {
        match quorum.propose_detached(command.clone()).await {
            Ok(committed) => break committed,
            Err(crate::cluster::QuorumError::NoLeader(why)) => {
                tracing::warn!("waiting for the controllers: {why}")
            }
            Err(e) => return Err(BrokerError::Metadata(MetadataError::Quorum(e))),
        }
    };
    let mut applied = quorum.applied();
    let _ = applied.wait_for(|index| *index >= committed.index).await;
    Ok(())
}

/// Keeps this node's logs and settings matching the metadata as commands are applied
/// (including those committed through other brokers), until shutdown.
async fn publish_metadata(
    context: Arc<BrokerContext>,
    mut applied: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        let done = {
            let context = Arc::clone(&context);
            tokio::task::spawn_blocking(move || {
                // The configuration first; the reconciliation then puts every log's settings
                // in force once (not once here and again there).
                if let Err(e) = context.refresh_config() {
                    tracing::warn!("dynamic broker configs not applied: {e}");
                }
                context.reconcile_to_image()
            })
            .await
        };
        let image = match done {
            Ok(Ok(image)) => image,
            Ok(Err(e)) => {
                tracing::warn!("partition logs do not match the metadata yet: {e}");
                continue;
            }
            Err(e) => {
                tracing::warn!("metadata publisher: {e}");
                continue;
            }
        };
        // With the logs and roles in line with `image`, the coordinators follow the internal
        // partitions' leadership in that same image.
        if let Err(e) = crate::handlers::coordinator::sync_coordinators_with(&context, &image).await
        {
            tracing::warn!("coordinators not in line with the metadata yet: {e}");
        }
    }
}
