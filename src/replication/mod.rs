//! Partition replication (Kafka's ReplicaManager): which hosted partitions this broker leads
//! and which it follows, as the metadata image says, and the machinery of each role.
//!
//! - Leading ([`leader`]): followers' fetches are recorded, the high watermark follows the ISR,
//!   the ISR grows and shrinks through compare-and-set commands on the metadata quorum, and
//!   acks=all produces wait for the high watermark.
//! - Following ([`fetcher`]): one fetcher task per leader broker truncates against the leader
//!   and then fetches, appends, fsyncs, and fetches again.
//!
//! [`ReplicaManager::apply`] is called by the metadata publisher after the logs are reconciled
//! with each new image; it is the only place roles change. A partition with a single replica
//! is led the same way but needs nothing of this: its high watermark is its log end.
//!
//! The high watermark of every replicated partition is checkpointed every few seconds to
//! `replication-offset-checkpoint` (Kafka's file and format), so that a restarted broker does
//! not expose records it cannot know to be replicated, nor hide ones it knew were.

pub mod client;
pub mod fetcher;
pub mod leader;
pub mod throttle;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::common::{LeaderEpoch, NodeId, Offset, PartitionIndex};
use crate::log::{LogManager, PartitionLog, TopicPartition};
use crate::metadata::{MetadataImage, MetadataStore};
use fetcher::{FetchSettings, FetcherPartitions};
pub use leader::{IsrChange, LeaderState};

/// Kafka's `replica.high.watermark.checkpoint.interval.ms` default.
const HW_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
const HW_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

/// Why an acks=all wait ended without the records being replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationWaitError {
    /// This broker stopped leading the partition while waiting.
    #[error("leadership lost while waiting for replication")]
    NotLeader,
    /// The in-sync replicas did not reach the records within the request's timeout.
    #[error("replication timed out")]
    Timeout,
}

/// Settings of replication, from the broker config.
#[derive(Debug, Clone)]
pub struct ReplicationSettings {
    pub me: NodeId,
    pub lag_time_max: Duration,
    pub fetch_wait_max: Duration,
    pub fetch_max_bytes: i32,
    pub fetch_response_max_bytes: i32,
}

/// See the module docs.
pub struct ReplicaManager {
    settings: ReplicationSettings,
    metadata: Arc<MetadataStore>,
    logs: Arc<LogManager>,
    log_dir: PathBuf,
    leaders: RwLock<HashMap<TopicPartition, Arc<LeaderState>>>,
    fetchers: Mutex<HashMap<NodeId, Arc<FetcherPartitions>>>,
    /// Partitions whose high-watermark mode has been set since start, and whether they had a
    /// single replica then.
    initialized: Mutex<HashMap<TopicPartition, bool>>,
    /// High watermarks read from the checkpoint at start.
    checkpointed: HashMap<TopicPartition, i64>,
    runtime: tokio::runtime::Handle,
    shutdown: watch::Receiver<bool>,
    /// `leader.replication.throttled.rate`: bytes served to throttled followers.
    pub leader_throttle: Arc<throttle::Rate>,
    /// `follower.replication.throttled.rate`: bytes fetched for throttled replicas here.
    pub follower_throttle: Arc<throttle::Rate>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ReplicaManager {
    /// A manager for the logs of `logs`. Tasks it starts stop with `shutdown`.
    pub fn new(
        settings: ReplicationSettings,
        metadata: Arc<MetadataStore>,
        logs: Arc<LogManager>,
        runtime: tokio::runtime::Handle,
        shutdown: watch::Receiver<bool>,
    ) -> ReplicaManager {
        let log_dir = logs.log_dir().to_path_buf();
        let checkpointed = read_hw_checkpoint(&log_dir.join(HW_CHECKPOINT_FILE));
        ReplicaManager {
            settings,
            metadata,
            logs,
            log_dir,
            leaders: RwLock::new(HashMap::new()),
            fetchers: Mutex::new(HashMap::new()),
            initialized: Mutex::new(HashMap::new()),
            checkpointed,
            runtime,
            shutdown,
            leader_throttle: Arc::new(throttle::Rate::default()),
            follower_throttle: Arc::new(throttle::Rate::default()),
        }
    }

    /// The throttle rates in force (dynamic broker configs).
    pub fn set_throttle_rates(&self, leader: u64, follower: u64) {
        // Kafka's default, Long.MAX_VALUE, is "no throttle".
        let limit = |rate: u64| {
            if rate >= i64::MAX as u64 {
                u64::MAX
            } else {
                rate
            }
        };
        self.leader_throttle.set_limit(limit(leader));
        self.follower_throttle.set_limit(limit(follower));
    }

    /// The leadership of `topic`/`partition` if this broker leads it now.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<Arc<LeaderState>> {
        let tp = TopicPartition {
            topic: topic.to_string(),
            partition: PartitionIndex(partition),
        };
        self.leaders
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&tp)
            .cloned()
    }

    /// Puts every hosted partition in the role `image` gives it. It waits for a fetcher's append in
    /// progress before a follower becomes leader, so call it from a blocking thread.
    pub fn apply(&self, image: &MetadataImage) {
        let me = self.settings.me;
        let mut lead: HashMap<
            TopicPartition,
            (Arc<PartitionLog>, crate::metadata::PartitionPlacement),
        > = HashMap::new();
        let mut follow: HashMap<TopicPartition, (Arc<PartitionLog>, NodeId, LeaderEpoch)> =
            HashMap::new();
        for (tp, log) in self.logs.all() {
            let Some(topic) = image.topic(&tp.topic).filter(|t| t.id == log.topic_id()) else {
                continue;
            };
            let Some(placement) = topic.placement(tp.partition.get()) else {
                continue;
            };
            if !placement.replicas.contains(&me) && placement.leader != me {
                continue;
            }
            self.initialize(&tp, &log, placement.replicas.len() <= 1);
            if placement.leader == me {
                lead.insert(tp, (log, placement.clone()));
            } else {
                follow.insert(tp, (log, placement.leader, placement.leader_epoch));
            }
        }
        // Stop fetching what is no longer followed from that leader, before anything leads.
        let fetchers: Vec<(NodeId, Arc<FetcherPartitions>)> = lock(&self.fetchers)
            .iter()
            .map(|(id, f)| (*id, Arc::clone(f)))
            .collect();
        for (leader, fetcher) in &fetchers {
            for tp in fetcher.keys() {
                if follow.get(&tp).is_none_or(|(_, l, _)| l != leader) {
                    fetcher.remove(&tp);
                }
            }
        }
        {
            let mut leaders = self
                .leaders
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            leaders.retain(|tp, state| {
                let keep = lead.get(tp).is_some_and(|(log, placement)| {
                    Arc::ptr_eq(log, &state.log)
                        && placement.leader_epoch == state.leader_epoch
                        && (placement.replicas.len() <= 1) == state.is_single_replica()
                });
                if !keep {
                    state.resign();
                }
                keep
            });
            for (tp, (log, placement)) in lead {
                if let Some(state) = leaders.get(&tp) {
                    state.update_placement(&placement);
                    continue;
                }
                if placement.replicas.len() > 1 {
                    // Kafka's epoch start offset: OffsetForLeaderEpoch answers for the new
                    // epoch before its first append (followers truncate against it).
                    if let Err(e) = log.begin_leader_epoch(placement.leader_epoch) {
                        tracing::error!(partition = %tp, "cannot lead: {e}");
                        continue;
                    }
                }
                let state = Arc::new(LeaderState::new(
                    me,
                    &tp.topic,
                    tp.partition.get(),
                    log,
                    &placement,
                ));
                tracing::info!(partition = %tp, leader_epoch = placement.leader_epoch.get(), start = state.epoch_start_offset, isr = ?placement.isr(), "leading partition");
                if !state.is_single_replica() {
                    self.runtime
                        .spawn(follow_log_end(Arc::clone(&state), self.shutdown.clone()));
                }
                leaders.insert(tp, state);
            }
        }
        for (tp, (log, leader, epoch)) in follow {
            let fetcher = self.fetcher(leader);
            fetcher.add(tp, log, epoch);
        }
    }

    /// Sets a partition's high-watermark mode the first time it gets a role after start, and
    /// whenever its replica count crosses one: a single replica's high watermark is its log
    /// end; a replicated one starts from the checkpoint (at most the log end), or from the
    /// log end if it was a single replica until now (all of that was committed).
    fn initialize(&self, tp: &TopicPartition, log: &PartitionLog, single_replica: bool) {
        let mut initialized = lock(&self.initialized);
        let previous = initialized.insert(tp.clone(), single_replica);
        if previous == Some(single_replica) {
            return;
        }
        if single_replica {
            log.set_high_watermark_mode(true);
            return;
        }
        let hw = match previous {
            Some(true) => log.high_watermark().get(),
            _ => self
                .checkpointed
                .get(tp)
                .copied()
                .unwrap_or(log.log_start_offset().get())
                .min(log.log_end_offset().get())
                .max(log.log_start_offset().get()),
        };
        log.set_high_watermark_mode(false);
        log.set_high_watermark(Offset(hw));
    }

    /// The fetcher of partitions led by `leader`, started on first use.
    fn fetcher(&self, leader: NodeId) -> Arc<FetcherPartitions> {
        let mut fetchers = lock(&self.fetchers);
        if let Some(f) = fetchers.get(&leader) {
            return Arc::clone(f);
        }
        let partitions = Arc::new(FetcherPartitions::default());
        fetchers.insert(leader, Arc::clone(&partitions));
        let settings = FetchSettings {
            throttle: Arc::clone(&self.follower_throttle),
            me: self.settings.me,
            wait_max: self.settings.fetch_wait_max,
            partition_max_bytes: self.settings.fetch_max_bytes,
            response_max_bytes: self.settings.fetch_response_max_bytes,
        };
        self.runtime.spawn(fetcher::run(
            leader,
            Arc::clone(&partitions),
            Arc::clone(&self.metadata),
            settings,
            self.shutdown.clone(),
        ));
        partitions
    }

    /// A follower fetched `tp` at `fetch_offset`: its progress counts toward the high
    /// watermark, and an ISR expansion is proposed if it caught up.
    pub fn follower_fetched(&self, state: &Arc<LeaderState>, follower: NodeId, fetch_offset: i64) {
        if let Some(change) = state.follower_fetched(follower, fetch_offset) {
            // A fenced or shutting-down broker may fetch but not join (KIP-841); the command
            // says so too, for a fencing committed after this look.
            if !self.metadata.image().is_live(follower) {
                state.change_failed();
                return;
            }
            self.propose(Arc::clone(state), change);
        }
    }

    /// Commits an ISR change in the background; a failure lets the leader ask again.
    fn propose(&self, state: Arc<LeaderState>, change: IsrChange) {
        let quorum = Arc::clone(self.metadata.quorum());
        self.runtime.spawn(async move {
            tracing::info!(topic = %state.topic, partition = state.partition, isr = ?change.isr, "proposing an ISR change");
            match quorum.propose(change.command).await {
                Ok(committed) if committed.rejected.is_none() => {}
                Ok(committed) => {
                    tracing::debug!(topic = %state.topic, partition = state.partition, "ISR change rejected: {:?}", committed.rejected);
                    state.change_failed();
                }
                Err(e) => {
                    tracing::warn!(topic = %state.topic, partition = state.partition, "ISR change not committed: {e}");
                    state.change_failed();
                }
            }
        });
    }

    /// Shrinks the ISRs of led partitions whose followers fell behind, until shutdown.
    pub async fn run_isr_expiry(self: Arc<Self>) {
        let mut shutdown = self.shutdown.clone();
        let period = (self.settings.lag_time_max / 4).max(Duration::from_millis(100));
        let mut last_checkpoint = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = shutdown.changed() => break,
            }
            let leaders: Vec<Arc<LeaderState>> = self
                .leaders
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .values()
                .filter(|s| !s.is_single_replica())
                .cloned()
                .collect();
            for state in leaders {
                if let Some(change) = state.lagging(self.settings.lag_time_max) {
                    self.propose(state, change);
                }
            }
            if last_checkpoint.elapsed() >= HW_CHECKPOINT_INTERVAL {
                last_checkpoint = tokio::time::Instant::now();
                let me = Arc::clone(&self);
                let _ = tokio::task::spawn_blocking(move || me.checkpoint_high_watermarks()).await;
            }
        }
        self.checkpoint_high_watermarks();
    }

    /// Writes every replicated partition's high watermark (tmp file, fsync, rename, directory
    /// fsync). A failure is logged: the previous checkpoint stays, which is only older.
    pub fn checkpoint_high_watermarks(&self) {
        let tps: Vec<TopicPartition> = lock(&self.initialized)
            .iter()
            .filter(|(_, single)| !**single)
            .map(|(tp, _)| tp.clone())
            .collect();
        let entries: Vec<String> = tps
            .iter()
            .filter_map(|tp| {
                let log = self.logs.get(tp)?;
                Some(format!(
                    "{} {} {}",
                    tp.topic,
                    tp.partition.get(),
                    log.high_watermark().get()
                ))
            })
            .collect();
        let mut text = format!("0\n{}\n", entries.len());
        for e in entries {
            text.push_str(&e);
            text.push('\n');
        }
        let path = self.log_dir.join(HW_CHECKPOINT_FILE);
        let tmp = self.log_dir.join(format!("{HW_CHECKPOINT_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.log_dir)?.sync_all()
        };
        if let Err(e) = write() {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }
}

/// Re-computes a replicated leader's high watermark whenever its log end moves (an append by
/// a producer or a coordinator), so that a partition whose ISR is the leader alone still
/// advances.
async fn follow_log_end(state: Arc<LeaderState>, mut shutdown: watch::Receiver<bool>) {
    let mut ends = state.log.subscribe_log_end();
    let mut resigned = state.resigned();
    loop {
        state.advance_high_watermark();
        tokio::select! {
            changed = ends.changed() => if changed.is_err() { return },
            _ = resigned.changed() => return,
            _ = shutdown.changed() => return,
        }
        if *resigned.borrow() {
            return;
        }
    }
}

/// Waits until the high watermark of `state`'s partition reaches `end` (acks=all), while this
/// broker still leads it, for at most `timeout`.
pub async fn wait_replicated(
    state: &LeaderState,
    end: Offset,
    timeout: Duration,
) -> Result<(), ReplicationWaitError> {
    if state.is_single_replica() {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut hw = state.log.subscribe();
    let mut resigned = state.resigned();
    loop {
        if *resigned.borrow_and_update() {
            return Err(ReplicationWaitError::NotLeader);
        }
        if state.log.high_watermark() >= end {
            return Ok(());
        }
        tokio::select! {
            changed = hw.changed() => if changed.is_err() { return Err(ReplicationWaitError::NotLeader) },
            _ = resigned.changed() => {}
            _ = tokio::time::sleep_until(deadline) => return Err(ReplicationWaitError::Timeout),
        }
    }
}

/// Reads `replication-offset-checkpoint` (version 0: a count line, then `topic partition hw`
/// lines). A missing or unreadable file gives nothing: high watermarks then start at the log
/// start and catch up with the followers.
fn read_hw_checkpoint(path: &Path) -> HashMap<TopicPartition, i64> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        return HashMap::new();
    }
    let _count = lines.next();
    lines
        .filter_map(|line| {
            let mut parts = line.rsplitn(3, ' ');
            let hw: i64 = parts.next()?.parse().ok()?;
            let partition: i32 = parts.next()?.parse().ok()?;
            let topic = parts.next()?.to_string();
            Some((
                TopicPartition {
                    topic,
                    partition: PartitionIndex(partition),
                },
                hw,
            ))
        })
        .collect()
}
