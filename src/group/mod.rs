//! The group coordinator: every consumer group of this broker, classic or KIP-848 (each behind
//! its own std mutex, never held across an `.await`), committed offsets, and their persistence
//! in the internal topic `__consumer_offsets`, which is replayed at start. KIP-848 groups
//! persist their group epoch (ConsumerGroupMetadata records); their members rejoin after a
//! restart.
//!
//! `__consumer_offsets` is created on first use (as Kafka does, on the first FindCoordinator or
//! group write), not at start, so a broker that never sees a group has no internal topic.
//!
//! Each partition of it is served only while this broker leads it (Kafka's `onElection` /
//! `onResignation`): [`GroupCoordinator::load_partition`] rebuilds its groups from the log,
//! [`GroupCoordinator::unload_partition`] drops them (parked requests are told NOT_COORDINATOR).
//! A group is only ever created in a partition that is served ([`Ownership`], under the same
//! lock as the groups), and every write names the leader epoch the partition was taken over
//! at, so nothing is written for a partition after it was given up.
//!
//! The coordinator reaches the broker only through [`CoordinatorHost`] (logs, metadata, config,
//! topic creation) and reports refusals as [`GroupError`]; `handlers::errors` turns those into
//! Kafka codes. Nothing here imports `broker`, `handlers` or `protocol`.

mod assignor;
pub mod consumer;
pub mod error;
pub mod records;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::common::now_ms;
use crate::common::{LeaderEpoch, Offset};
use crate::internal_topic::{
    CoordinatorHost, InternalTopic, Ownership, PartitionLoad, Serving, StoreError,
};
use crate::log::PartitionLog;
use crate::records::validate_produce_batch;
pub use error::GroupError;
use records::{Key, OffsetValue, OFFSETS_TOPIC};
pub use state::{
    Committed, Group, GroupConfig, GroupState, JoinParams, JoinResult, JoinedMember, Pending,
    SyncResult,
};

/// How often the sweeper looks for expired sessions and rebalance deadlines.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// An Empty group without offsets is forgotten after this long (Kafka's default
/// offsets.retention.check.interval.ms, the period of its cleanup).
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Kafka's cap on a commit's metadata string (offset.metadata.max.bytes).
pub const MAX_METADATA_BYTES: usize = 4096;

/// One requested offset commit (OffsetCommit or TxnOffsetCommit), checked as Kafka does before
/// the group decides: the partition must exist (in the metadata: in a cluster it is usually led
/// by another broker) and the metadata fit `MAX_METADATA_BYTES`.
pub fn check_commit(
    topics: &crate::metadata::MetadataStore,
    topic: &str,
    partition: i32,
    (offset, leader_epoch): (i64, i32),
    metadata: Option<&str>,
    now_ms: i64,
) -> Result<OffsetCommit, GroupError> {
    let metadata = metadata.unwrap_or_default().to_string();
    let exists = topics
        .topic(topic)
        .is_some_and(|t| (0..t.partitions).contains(&partition));
    if !exists {
        return Err(GroupError::UnknownTopicOrPartition);
    }
    if metadata.len() > MAX_METADATA_BYTES {
        return Err(GroupError::OffsetMetadataTooLarge);
    }
    Ok(OffsetCommit {
        topic: topic.to_string(),
        partition,
        value: OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp: now_ms,
        },
    })
}

/// A locked group.
pub type GroupGuard<'a> = MutexGuard<'a, Group>;

/// One offset to commit.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub value: OffsetValue,
}

/// All groups of this broker.
pub struct GroupCoordinator {
    cfg: GroupConfig,
    retention: Duration,
    table: Mutex<Table>,
    /// `__consumer_offsets`, created on first use.
    topic: InternalTopic,
}

/// The groups served and the partitions they belong to, under one lock: a group exists here
/// only while its partition is loaded.
#[derive(Default)]
struct Table {
    groups: HashMap<String, Arc<Mutex<Group>>>,
    owned: Ownership,
    /// Transaction markers (producer id, commit) made durable in a partition while it was
    /// loading: the replay may have read the log before them, so they are applied again to
    /// the partition's groups when it is installed (harmless if the replay saw them: no
    /// transactional offsets are written to a partition that is not served).
    missed_markers: HashMap<i32, Vec<(i64, bool)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a group lock leaves consistent-enough state (each step is small);
    // keep serving rather than poisoning every later request.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GroupCoordinator {
    /// A coordinator with no groups yet; [`GroupCoordinator::load`] fills it.
    pub fn new(config: &crate::config::Config) -> GroupCoordinator {
        GroupCoordinator {
            cfg: GroupConfig {
                min_session_timeout_ms: config.group_min_session_timeout_ms,
                max_session_timeout_ms: config.group_max_session_timeout_ms,
                initial_rebalance_delay: Duration::from_millis(
                    config.group_initial_rebalance_delay_ms,
                ),
                consumer_session_timeout: Duration::from_millis(
                    u64::try_from(config.group_consumer_session_timeout_ms).unwrap_or(45_000),
                ),
                consumer_heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
            },
            topic: InternalTopic::new(OFFSETS_TOPIC, config.offsets_topic_num_partitions),
            retention: Duration::from_secs(config.offsets_retention_minutes.saturating_mul(60)),
            table: Mutex::new(Table::default()),
        }
    }

    /// The `__consumer_offsets` partition of `group_id`, once the topic's size is known.
    fn partition_key(&self, group_id: &str) -> Option<i32> {
        let partitions = self.topic.partitions();
        (partitions > 0).then(|| records::partition_for(group_id, partitions))
    }

    /// Whether this coordinator serves `group_id` now: its partition is loaded (or the
    /// offsets topic does not exist yet, so no group has state anywhere).
    pub fn serving(&self, group_id: &str) -> Serving {
        let partition = self.partition_key(group_id);
        lock(&self.table).owned.serving(partition)
    }

    /// The `__consumer_offsets` partitions taken over, loading or loaded, with their epoch.
    pub fn owned_partitions(&self) -> std::collections::BTreeMap<i32, PartitionLoad> {
        lock(&self.table).owned.all()
    }

    /// The leader epoch to write `group_id`'s records at, if its partition is served.
    fn write_epoch(&self, group_id: &str) -> Result<LeaderEpoch, StoreError> {
        match self.serving(group_id) {
            Serving::Yes(epoch) => Ok(epoch.unwrap_or(crate::common::LEADER_EPOCH)),
            Serving::Loading | Serving::No => Err(StoreError::NotServed(
                self.partition_key(group_id).unwrap_or(-1),
            )),
        }
    }

    /// State-machine settings.
    pub fn config(&self) -> &GroupConfig {
        &self.cfg
    }

    /// The settings of `group_id`: the broker's, with the group's own configs (KIP-848
    /// `consumer.session.timeout.ms` / `consumer.heartbeat.interval.ms`) applied.
    pub fn config_for(&self, ctx: &dyn CoordinatorHost, group_id: &str) -> GroupConfig {
        let overrides = ctx.metadata().group_configs(group_id);
        if overrides.is_empty() {
            return self.cfg;
        }
        let timing = crate::metadata::group_config::timing(&ctx.config(), &overrides);
        GroupConfig {
            consumer_session_timeout: timing.session_timeout,
            consumer_heartbeat_interval_ms: timing.heartbeat_interval_ms,
            ..self.cfg
        }
    }

    /// The group, if it exists (here: its partition is served).
    pub fn get(&self, group_id: &str) -> Option<Arc<Mutex<Group>>> {
        lock(&self.table).groups.get(group_id).cloned()
    }

    /// The group, created Empty if missing; refused unless its partition is served (the
    /// caller's coordinator check may be a moment old).
    pub fn get_or_create(&self, group_id: &str) -> Result<Arc<Mutex<Group>>, GroupError> {
        let partition = self.partition_key(group_id);
        let mut table = lock(&self.table);
        match table.owned.serving(partition) {
            Serving::Yes(_) => {}
            Serving::Loading => return Err(GroupError::CoordinatorLoadInProgress),
            Serving::No => return Err(GroupError::NotCoordinator),
        }
        Ok(table
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new(group_id))))
            .clone())
    }

    /// Every group (id, handle), for listing and sweeping.
    pub fn all(&self) -> Vec<(String, Arc<Mutex<Group>>)> {
        lock(&self.table)
            .groups
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Locks a group handle.
    pub fn lock_group(group: &Arc<Mutex<Group>>) -> GroupGuard<'_> {
        lock(group)
    }

    /// Locks a group with its timers brought up to now: a session or rebalance deadline that
    /// has passed takes effect before the caller looks, as Kafka's timers fire at the deadline
    /// rather than at the next sweep (a tool deleting a group right after its members' sessions
    /// end must not see them). What the tick changed is persisted by the next sweep.
    pub fn lock_current<'a>(
        &self,
        ctx: &dyn CoordinatorHost,
        group_id: &str,
        group: &'a Arc<Mutex<Group>>,
    ) -> GroupGuard<'a> {
        let cfg = self.config_for(ctx, group_id);
        let mut g = lock(group);
        g.tick(&cfg, Instant::now());
        g
    }

    /// Forgets a group (after DeleteGroups).
    fn remove(&self, group_id: &str) {
        lock(&self.table).groups.remove(group_id);
    }

    /// The partition count of `__consumer_offsets`, creating the topic if needed. The
    /// partitions this broker leads in a topic it just created are empty: they are served at
    /// once, with nothing to load.
    pub fn ensure_topic(&self, ctx: &dyn CoordinatorHost) -> Result<i32, StoreError> {
        let (partitions, created) = self.topic.ensure_created(ctx)?;
        if created {
            let metadata = ctx.metadata();
            let led = crate::internal_topic::led_partitions(
                &metadata.image(),
                metadata.node_id(),
                OFFSETS_TOPIC,
            );
            let mut table = lock(&self.table);
            for (p, epoch) in led {
                table.owned.adopt_empty(p, epoch);
            }
        }
        Ok(partitions)
    }

    /// Creates `__consumer_offsets` if needed, before a handler takes a group's lock (a
    /// group's state is written under its lock, and the topic is never created there). File
    /// I/O the first time: callers run on the blocking pool. A failure is logged; the group's
    /// state is then written by a later sweep.
    pub fn prepare_store(&self, ctx: &dyn CoordinatorHost) {
        if let Err(e) = self.ensure_topic(ctx) {
            tracing::warn!("cannot create the offsets topic: {e}");
        }
    }

    /// True once `__consumer_offsets` is known to exist with all its partitions.
    pub fn topic_ready(&self) -> bool {
        self.topic.is_ready()
    }

    /// The `__consumer_offsets` partition log holding `group_id`.
    fn log_for(
        &self,
        ctx: &dyn CoordinatorHost,
        group_id: &str,
    ) -> Result<Arc<PartitionLog>, StoreError> {
        let partitions = self.ensure_topic(ctx)?;
        let p = records::partition_for(group_id, partitions);
        ctx.partition(OFFSETS_TOPIC, p)
            .ok_or(StoreError::MissingPartition(p))
    }

    /// Appends records for `group_id` (page cache only); returns the log and the offset of the
    /// first record, and the end offset to wait on for durability.
    fn append(
        &self,
        ctx: &dyn CoordinatorHost,
        group_id: &str,
        recs: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<(Arc<PartitionLog>, Offset, Offset), StoreError> {
        let log = self.log_for(ctx, group_id)?;
        let epoch = self.write_epoch(group_id)?;
        let batch = records::build_batch(recs, now_ms());
        let info = validate_produce_batch(&batch, usize::MAX)?;
        let outcome = log.append(&batch, &info, epoch)?;
        let base = match outcome {
            crate::log::AppendOutcome::Appended { base_offset, .. }
            | crate::log::AppendOutcome::Duplicate { base_offset, .. } => Offset(base_offset),
        };
        Ok((log, base, outcome.end_offset()))
    }

    /// Writes the group's metadata record if the state machine marked it dirty. Not waited on:
    /// an unsynced group record only costs members a rejoin after a crash.
    ///
    /// Called with the group's lock held: the record is a page-cache append (never an fsync),
    /// and holding the lock is what keeps a group's state records in the order its state
    /// changed. The offsets topic is never created under the lock: until it exists the group
    /// stays dirty, and the next sweep creates the topic (holding no lock) and writes it.
    pub fn persist_if_dirty(&self, ctx: &dyn CoordinatorHost, group: &mut Group) {
        if !group.dirty || !self.topic_ready() {
            return;
        }
        group.dirty = false;
        // A KIP-848 group is remembered by its epoch (ConsumerGroupMetadata); members rejoin.
        let record = match &group.kip848 {
            Some(c) => (
                records::consumer_group_key(&group.id),
                Some(records::consumer_group_value(c.group_epoch)),
            ),
            None => (
                records::group_key(&group.id),
                Some(records::group_value(&group.to_record())),
            ),
        };
        if let Err(e) = self.append(ctx, &group.id, &[record]) {
            tracing::warn!(group = %group.id, "cannot persist group metadata: {e}");
        }
    }

    /// Writes `commits` for the group (the caller validated membership under the group lock
    /// and still holds it, so records land in the order commits were accepted). Returns what to
    /// wait on before applying with [`GroupCoordinator::apply_commits`].
    pub fn write_commits(
        &self,
        ctx: &dyn CoordinatorHost,
        group_id: &str,
        commits: &[OffsetCommit],
    ) -> Result<(Arc<PartitionLog>, Offset, Offset), StoreError> {
        let recs: Vec<(Vec<u8>, Option<Vec<u8>>)> = commits
            .iter()
            .map(|c| {
                (
                    records::offset_key(group_id, &c.topic, c.partition),
                    Some(records::offset_value(&c.value)),
                )
            })
            .collect();
        self.append(ctx, group_id, &recs)
    }

    /// The `__consumer_offsets` partition holding `group_id` (creating the topic if needed):
    /// the partition AddOffsetsToTxn adds to a transaction.
    pub fn partition_of(
        &self,
        ctx: &dyn CoordinatorHost,
        group_id: &str,
    ) -> Result<i32, StoreError> {
        let partitions = self.ensure_topic(ctx)?;
        Ok(records::partition_for(group_id, partitions))
    }

    /// Writes a TxnOffsetCommit's offsets as one transactional batch of `producer_id`/`epoch`
    /// (the normal offset commit key and value) and records them as pending in the group,
    /// whose lock the caller holds so log order is acceptance order. They become committed
    /// offsets only when the producer's commit marker is written ([`Self::complete_txn`]).
    /// Returns the log and the end offset to wait on; on a write failure nothing is pending.
    pub fn write_txn_commits(
        &self,
        ctx: &dyn CoordinatorHost,
        group: &mut Group,
        producer_id: i64,
        producer_epoch: i16,
        commits: &[OffsetCommit],
    ) -> Result<(Arc<PartitionLog>, Offset), StoreError> {
        let log = self.log_for(ctx, &group.id)?;
        let epoch = self.write_epoch(&group.id)?;
        let recs: Vec<(Vec<u8>, Vec<u8>)> = commits
            .iter()
            .map(|c| {
                (
                    records::offset_key(&group.id, &c.topic, c.partition),
                    records::offset_value(&c.value),
                )
            })
            .collect();
        let kvs: Vec<crate::records::build::KeyValue<'_>> = recs
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
            .collect();
        let batch = crate::records::build::uncompressed_batch(
            &kvs,
            now_ms(),
            crate::records::build::Writer::transactional(producer_id, producer_epoch),
        );
        let info = validate_produce_batch(&batch, usize::MAX)?;
        let outcome = log.append(&batch, &info, epoch)?;
        let base = match outcome {
            crate::log::AppendOutcome::Appended { base_offset, .. }
            | crate::log::AppendOutcome::Duplicate { base_offset, .. } => Offset(base_offset),
        };
        for (i, c) in commits.iter().enumerate() {
            group.add_pending_txn_offset(
                producer_id,
                &c.topic,
                c.partition,
                Committed {
                    offset: c.value.offset,
                    leader_epoch: c.value.leader_epoch,
                    metadata: c.value.metadata.clone(),
                    commit_timestamp: c.value.commit_timestamp,
                    log_position: base.get() + i as i64,
                },
            );
        }
        Ok((log, outcome.end_offset()))
    }

    /// Drops `producer_id`'s pending offsets in `group_id` after a failed write (the
    /// transaction will be aborted by the client or by its timeout).
    pub fn drop_txn_commits(&self, group_id: &str, producer_id: i64) {
        if let Some(group) = self.get(group_id) {
            lock(&group).pending_txn_offsets.remove(&producer_id);
        }
    }

    /// The transaction coordinator made `producer_id`'s marker durable in offsets partition
    /// `partition`: commit (apply) or abort (drop) its pending offsets in that partition's
    /// groups (a partition still loading gets them when it is installed).
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let groups: Vec<(String, Arc<Mutex<Group>>)> = {
            let mut table = lock(&self.table);
            if matches!(table.owned.get(partition), Some(PartitionLoad::Loading(_))) {
                table
                    .missed_markers
                    .entry(partition)
                    .or_default()
                    .push((producer_id, commit));
            }
            table
                .groups
                .iter()
                .filter(|(id, _)| self.partition_key(id).is_none_or(|p| p == partition))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        for (id, group) in groups {
            let applied = lock(&group).complete_txn(producer_id, commit);
            if applied > 0 {
                tracing::debug!(group = %id, producer_id, applied, "transactional offsets committed");
            }
        }
    }

    /// Applies durable commits (none if they failed) to `group`, the handle they were
    /// accepted by, and ends the in-flight count taken by the writer. If the group was
    /// deleted meanwhile, its tombstones follow these records in the log, so the commits are
    /// dropped here too; if its partition was given up meanwhile, the commits were not
    /// acknowledged by a coordinator that still serves it: NotCoordinator.
    pub fn apply_commits(
        &self,
        group: &Arc<Mutex<Group>>,
        commits: Vec<OffsetCommit>,
        base_position: Offset,
    ) -> Result<(), GroupError> {
        let mut g = lock(group);
        g.commits_in_flight = g.commits_in_flight.saturating_sub(1);
        if g.unloaded {
            return Err(GroupError::NotCoordinator);
        }
        if g.state == GroupState::Dead {
            return Ok(());
        }
        for (i, c) in commits.into_iter().enumerate() {
            g.apply_commit(
                &c.topic,
                c.partition,
                Committed {
                    offset: c.value.offset,
                    leader_epoch: c.value.leader_epoch,
                    metadata: c.value.metadata,
                    commit_timestamp: c.value.commit_timestamp,
                    log_position: base_position.get() + i as i64,
                },
            );
        }
        Ok(())
    }

    /// Writes tombstones for offsets (and the group record if `whole_group`).
    pub fn write_tombstones(
        &self,
        ctx: &dyn CoordinatorHost,
        group_id: &str,
        offsets: &[(String, i32)],
        whole_group: bool,
    ) -> Result<(Arc<PartitionLog>, Offset), StoreError> {
        let mut recs: Vec<(Vec<u8>, Option<Vec<u8>>)> = offsets
            .iter()
            .map(|(t, p)| (records::offset_key(group_id, t, *p), None))
            .collect();
        if whole_group {
            recs.push((records::group_key(group_id), None));
            recs.push((records::consumer_group_key(group_id), None));
        }
        let (log, _, end) = self.append(ctx, group_id, &recs)?;
        Ok((log, end))
    }

    /// Deletes an Empty group: tombstones first, then forgets it.
    pub fn delete_group(
        &self,
        ctx: &dyn CoordinatorHost,
        group_id: &str,
    ) -> Result<Option<(Arc<PartitionLog>, Offset)>, GroupError> {
        let Some(group) = self.get(group_id) else {
            return Err(GroupError::GroupIdNotFound);
        };
        let mut g = self.lock_current(ctx, group_id, &group);
        match g.state {
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return Err(GroupError::NonEmptyGroup),
        }
        let offsets: Vec<(String, i32)> = g.offsets.keys().cloned().collect();
        let wait = if ctx.metadata().topic(OFFSETS_TOPIC).is_some() {
            let w = self
                .write_tombstones(ctx, group_id, &offsets, true)
                .map_err(|e| {
                    tracing::error!(group = group_id, "cannot delete group: {e}");
                    GroupError::StoreUnavailable
                })?;
            Some(w)
        } else {
            None
        };
        g.mark_dead();
        drop(g);
        self.remove(group_id);
        Ok(wait)
    }

    /// Takes over `__consumer_offsets` partition `partition`, led here at `epoch` (Kafka's
    /// `onElection`): rebuilds its committed offsets and (Empty) groups from its log, then
    /// serves them. Its groups answer COORDINATOR_LOAD_IN_PROGRESS meanwhile. Nothing happens
    /// if the partition is already taken over; a failed load leaves it not taken over, for the
    /// next call to retry. File I/O: call it off the runtime.
    pub fn load_partition(
        &self,
        ctx: &dyn CoordinatorHost,
        partition: i32,
        epoch: LeaderEpoch,
    ) -> Result<(), StoreError> {
        let Some(topic) = ctx.metadata().topic(OFFSETS_TOPIC) else {
            return Ok(());
        };
        // The topic exists (made by this broker or another): its size is known from here on.
        self.topic.mark_ready(topic.partitions);
        if !lock(&self.table).owned.begin(partition, epoch) {
            return Ok(());
        }
        let started = Instant::now();
        let replayed = match ctx.partition(OFFSETS_TOPIC, partition) {
            Some(log) => replay_partition(&log, partition, topic.partitions),
            None => Err(StoreError::MissingPartition(partition)),
        };
        let mut table = lock(&self.table);
        let missed = table.missed_markers.remove(&partition).unwrap_or_default();
        let (mut groups, records_seen) = match replayed {
            Ok(r) => r,
            Err(e) => {
                if table.owned.get(partition) == Some(PartitionLoad::Loading(epoch)) {
                    table.owned.remove(partition);
                }
                return Err(e);
            }
        };
        if !table.owned.finish(partition, epoch) {
            // Given up while loading: what was read is not ours to serve.
            return Ok(());
        }
        for g in groups.values_mut() {
            for (producer_id, commit) in &missed {
                g.complete_txn(*producer_id, *commit);
            }
        }
        let loaded = groups.len();
        for (id, g) in groups {
            table.groups.insert(id, Arc::new(Mutex::new(g)));
        }
        drop(table);
        tracing::info!(
            partition,
            leader_epoch = epoch.get(),
            groups = loaded,
            records = records_seen,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded consumer groups"
        );
        Ok(())
    }

    /// Gives up `__consumer_offsets` partition `partition` (Kafka's `onResignation`: this
    /// broker no longer leads it): its groups leave memory, their parked JoinGroup/SyncGroup
    /// requests are answered NOT_COORDINATOR, and requests still holding a group see it gone.
    /// Returns how many groups were dropped.
    pub fn unload_partition(&self, partition: i32) -> usize {
        let dropped: Vec<Arc<Mutex<Group>>> = {
            let mut table = lock(&self.table);
            table.owned.remove(partition);
            table.missed_markers.remove(&partition);
            let ids: Vec<String> = table
                .groups
                .keys()
                .filter(|id| self.partition_key(id) == Some(partition))
                .cloned()
                .collect();
            ids.iter()
                .filter_map(|id| table.groups.remove(id))
                .collect()
        };
        for group in &dropped {
            lock(group).unload();
        }
        tracing::info!(
            partition,
            groups = dropped.len(),
            "unloaded consumer groups"
        );
        dropped.len()
    }

    /// One sweep: expire sessions, finish rebalances whose time is up, expire old offsets of
    /// Empty groups, forget Empty groups with nothing left, persist what changed.
    pub fn sweep(&self, ctx: &dyn CoordinatorHost) {
        let now = Instant::now();
        let now_wall = now_ms();
        let retention_ms = self.retention.as_millis() as i64;
        let forget_before = now_wall - FORGET_AFTER.as_millis() as i64;
        let groups = self.all();
        if !groups.is_empty() && !self.topic_ready() {
            // Groups exist before the offsets topic (FindCoordinator was skipped): create it
            // here, with no group locked, so their state can be written below.
            if let Err(e) = self.ensure_topic(ctx) {
                tracing::warn!("cannot create the offsets topic: {e}");
            }
        }
        for (id, group) in groups {
            let cfg = self.config_for(ctx, &id);
            let mut g = lock(&group);
            g.tick(&cfg, now);
            self.persist_if_dirty(ctx, &mut g);
            let old = g.expired_offsets(now_wall, retention_ms);
            if !old.is_empty() {
                match self.write_tombstones(ctx, &id, &old, false) {
                    Ok(_) => {
                        for k in &old {
                            g.offsets.remove(k);
                        }
                        tracing::info!(group = %id, offsets = old.len(), "expired offsets");
                    }
                    Err(e) => tracing::warn!(group = %id, "cannot expire offsets: {e}"),
                }
            }
            if g.is_forgettable(forget_before) {
                // Kafka's periodic cleanup: an Empty group without offsets becomes Dead.
                let tombstone = if self.topic_ready() {
                    self.write_tombstones(ctx, &id, &[], true).map(|_| ())
                } else {
                    Ok(())
                };
                match tombstone {
                    Ok(()) => {
                        g.mark_dead();
                        drop(g);
                        self.remove(&id);
                        tracing::info!(group = %id, "removed empty group");
                    }
                    Err(e) => tracing::warn!(group = %id, "cannot remove empty group: {e}"),
                }
            }
        }
    }
}

/// Reads `__consumer_offsets` partition `p` (of `partitions`) from its start: its groups and
/// how many records were read.
fn replay_partition(
    log: &PartitionLog,
    p: i32,
    partitions: i32,
) -> Result<(HashMap<String, Group>, usize), StoreError> {
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut records_seen = 0usize;
    log.for_each_batch(|h, batch| {
        if h.is_control() {
            // A transaction marker: the producer's pending offsets in this partition's groups
            // are committed or dropped here, in log order.
            if let Some(kind) = crate::records::build::marker_kind(batch) {
                let commit = kind == crate::records::build::MarkerKind::Commit;
                for (id, g) in groups.iter_mut() {
                    if records::partition_for(id, partitions) == p {
                        g.complete_txn(h.producer_id(), commit);
                    }
                }
            }
            return;
        }
        // A TxnOffsetCommit batch: its offsets stay pending until the marker.
        let txn_producer = h.is_transactional().then(|| h.producer_id());
        let recs = match crate::records::records(batch, 64 << 20) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(partition = p, "skipping unreadable offsets batch: {e}");
                return;
            }
        };
        for rec in recs.iter() {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(partition = p, "skipping bad offsets record: {e}");
                    break;
                }
            };
            records_seen += 1;
            replay_record(&mut groups, rec.key, rec.value, rec.offset, txn_producer);
        }
    })?;
    Ok((groups, records_seen))
}

/// Applies one `__consumer_offsets` record during replay; unreadable records are skipped with a
/// warning (a newer Kafka's flexible versions, for instance).
fn replay_record(
    groups: &mut HashMap<String, Group>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    position: i64,
    txn_producer: Option<i64>,
) {
    let Some(key) = key else { return };
    let key = match records::decode_key(key) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!("skipping offsets record with unknown key: {e}");
            return;
        }
    };
    match key {
        Key::Offset {
            group,
            topic,
            partition,
        } => match value {
            None => {
                if let Some(g) = groups.get_mut(&group) {
                    g.offsets.remove(&(topic, partition));
                }
            }
            Some(v) => match records::decode_offset_value(v) {
                Ok(v) => {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group));
                    let c = Committed {
                        offset: v.offset,
                        leader_epoch: v.leader_epoch,
                        metadata: v.metadata,
                        commit_timestamp: v.commit_timestamp,
                        log_position: position,
                    };
                    match txn_producer {
                        Some(pid) => g.add_pending_txn_offset(pid, &topic, partition, c),
                        None => g.apply_commit(&topic, partition, c),
                    }
                }
                Err(e) => tracing::warn!(group, "skipping unreadable offset value: {e}"),
            },
        },
        Key::Group { group } => match value {
            None => {
                // Only the group's metadata goes; its offsets have tombstones of their own.
                let offsets = groups.remove(&group).map(|g| g.offsets).unwrap_or_default();
                if !offsets.is_empty() {
                    let mut g = Group::new(&group);
                    g.offsets = offsets;
                    groups.insert(group, g);
                }
            }
            Some(v) => match records::decode_group_value(v) {
                // A classic record after a consumer-group one: the group turned classic.
                Ok(v) => {
                    let offsets = groups.remove(&group).map(|g| g.offsets).unwrap_or_default();
                    let mut g = Group::from_record(&group, &v);
                    g.offsets = offsets;
                    groups.insert(group, g);
                }
                Err(e) => tracing::warn!(group, "skipping unreadable group value: {e}"),
            },
        },
        Key::ConsumerGroup { group } => match value {
            None => {
                if let Some(g) = groups.get_mut(&group) {
                    g.kip848 = None;
                }
            }
            Some(v) => match records::decode_consumer_group_value(v) {
                Ok(epoch) => {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group));
                    g.kip848 = Some(consumer::ConsumerGroup::new(epoch));
                    g.protocol_type = Some("consumer".to_string());
                    g.protocol = None;
                    g.generation = epoch;
                }
                Err(e) => tracing::warn!(group, "skipping unreadable consumer group value: {e}"),
            },
        },
    }
}

/// A broker that runs a group coordinator: the coordinator and what it works through.
pub trait GroupHost: CoordinatorHost {
    /// The broker's group coordinator.
    fn groups(&self) -> &GroupCoordinator;
}

impl<T: GroupHost + ?Sized> GroupHost for Arc<T> {
    fn groups(&self) -> &GroupCoordinator {
        (**self).groups()
    }
}

/// Runs the coordinator's timers until `shutdown` turns true.
pub async fn run_sweeper<H: GroupHost + 'static>(ctx: Arc<H>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let c = ctx.clone();
                // The sweep may append to the offsets log (file I/O): keep it off the runtime.
                if tokio::task::spawn_blocking(move || c.groups().sweep(&*c)).await.is_err() {
                    tracing::error!("group sweeper panicked");
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}
