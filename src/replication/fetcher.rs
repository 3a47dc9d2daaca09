//! The replica fetcher: one task per leader broker this broker follows partitions of (Kafka's
//! ReplicaFetcherThread). It sends the leader Fetch requests carrying this broker's replica id,
//! appends what comes back with the leader's offsets and epochs, waits for fsync, and only then
//! asks again from the new log end — the offset the leader counts toward its high watermark is
//! always durable here.
//!
//! A partition joins a fetcher needing truncation: before its first fetch the fetcher asks the
//! leader, with OffsetForLeaderEpoch, where the follower's last epoch ends in the leader's log
//! (KIP-101/279) and cuts its own log there, so records of a deposed leader that never reached
//! the ISR are dropped rather than kept beside the new leader's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{watch, Notify};

use super::client::{BrokerClient, ClientError};
use crate::common::{LeaderEpoch, NodeId, Offset};
use crate::log::{PartitionLog, TopicPartition};
use crate::metadata::MetadataStore;

/// Fetch v12: topic names, replica id in the body (v15 moves it to a tagged ReplicaState).
const FETCH_VERSION: i16 = 12;
/// OffsetForLeaderEpoch v4 (flexible, with replica id).
const EPOCH_VERSION: i16 = 4;
/// Pause after an error before asking again (leader not ready, connection refused).
const BACKOFF: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a fetcher needs to know about its settings.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    pub me: NodeId,
    /// `follower.replication.throttled.rate`, for the replicas listed as throttled.
    pub throttle: Arc<super::throttle::Rate>,
    pub wait_max: Duration,
    pub partition_max_bytes: i32,
    pub response_max_bytes: i32,
}

/// One followed partition.
#[derive(Debug, Clone)]
struct Followed {
    log: Arc<PartitionLog>,
    leader_epoch: LeaderEpoch,
    /// `None` until the log has been truncated against the leader for this epoch.
    fetch_offset: Option<i64>,
}

/// The partitions one fetcher follows, shared with the replica manager.
#[derive(Debug, Default)]
pub struct FetcherPartitions {
    map: Mutex<HashMap<TopicPartition, Followed>>,
    changed: Notify,
    /// Held while appending or truncating: removing a partition and then taking this lock
    /// guarantees the fetcher no longer writes to it (it re-checks the map under the lock).
    /// Never held across an `.await`.
    writing: Mutex<()>,
}

impl FetcherPartitions {
    fn lock(&self) -> MutexGuard<'_, HashMap<TopicPartition, Followed>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Follows `tp` at `leader_epoch` (again from a truncation if the epoch is new).
    pub fn add(&self, tp: TopicPartition, log: Arc<PartitionLog>, leader_epoch: LeaderEpoch) {
        let mut map = self.lock();
        if map
            .get(&tp)
            .is_some_and(|f| f.leader_epoch == leader_epoch && Arc::ptr_eq(&f.log, &log))
        {
            return;
        }
        map.insert(
            tp,
            Followed {
                log,
                leader_epoch,
                fetch_offset: None,
            },
        );
        drop(map);
        self.changed.notify_one();
    }

    /// Stops following `tp`; true if it was followed. Returns once no append or truncation
    /// of it is in progress: from then on the fetcher leaves its log alone.
    pub fn remove(&self, tp: &TopicPartition) -> bool {
        let removed = self.lock().remove(tp).is_some();
        if removed {
            drop(self.writing());
        }
        removed
    }

    fn writing(&self) -> MutexGuard<'_, ()> {
        self.writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The partitions followed.
    pub fn keys(&self) -> Vec<TopicPartition> {
        self.lock().keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The entry for `tp` if it is still followed at `epoch`.
    fn current(&self, tp: &TopicPartition, epoch: LeaderEpoch) -> Option<Followed> {
        self.lock()
            .get(tp)
            .filter(|f| f.leader_epoch == epoch)
            .cloned()
    }

    fn set_fetch_offset(&self, tp: &TopicPartition, epoch: LeaderEpoch, offset: Option<i64>) {
        if let Some(f) = self.lock().get_mut(tp).filter(|f| f.leader_epoch == epoch) {
            f.fetch_offset = offset;
        }
    }
}

/// Runs the fetcher of `leader` until `shutdown`.
pub async fn run(
    leader: NodeId,
    partitions: Arc<FetcherPartitions>,
    metadata: Arc<MetadataStore>,
    settings: FetchSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut client: Option<BrokerClient> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if partitions.is_empty() {
            tokio::select! {
                _ = partitions.changed.notified() => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        let result = async {
            if client.is_none() {
                client = Some(connect(leader, &metadata, &settings).await?);
            }
            let Some(c) = client.as_mut() else {
                return Err(FetchError::NoLeader);
            };
            let progressed = truncate_all(c, &partitions, &settings).await?;
            let fetched = fetch_once(c, &partitions, &metadata, &settings).await?;
            Ok(progressed || fetched)
        };
        let outcome = tokio::select! {
            r = result => r,
            _ = shutdown.changed() => return,
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(BACKOFF).await,
            Err(e) => {
                tracing::debug!(leader = %leader, "replica fetcher: {e}");
                client = None;
                tokio::select! {
                    _ = tokio::time::sleep(BACKOFF) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("leader not registered or fenced")]
    NoLeader,
    #[error("{0}")]
    Client(#[from] ClientError),
}

async fn connect(
    leader: NodeId,
    metadata: &MetadataStore,
    settings: &FetchSettings,
) -> Result<BrokerClient, FetchError> {
    let image = metadata.image();
    let Some(broker) = image.broker(leader).filter(|b| !b.fenced) else {
        return Err(FetchError::NoLeader);
    };
    let addr = format!("{}:{}", broker.host, broker.port);
    Ok(BrokerClient::connect(
        &addr,
        format!("gregor-replica-fetcher-{}", settings.me),
        CONNECT_TIMEOUT,
    )
    .await?)
}

/// Truncates every partition that joined since the last round against the leader. Returns
/// whether any partition became ready to fetch.
async fn truncate_all(
    client: &mut BrokerClient,
    partitions: &FetcherPartitions,
    settings: &FetchSettings,
) -> Result<bool, FetchError> {
    let pending: Vec<(TopicPartition, Followed)> = partitions
        .lock()
        .iter()
        .filter(|(_, f)| f.fetch_offset.is_none())
        .map(|(tp, f)| (tp.clone(), f.clone()))
        .collect();
    if pending.is_empty() {
        return Ok(false);
    }
    let mut ready = false;
    // Partitions whose log has no epoch yet (empty, or written before epochs) need no
    // question: they start at their end, and an out-of-range answer resets them.
    let mut ask = Vec::new();
    for (tp, f) in pending {
        match f.log.latest_epoch() {
            None => {
                partitions.set_fetch_offset(
                    &tp,
                    f.leader_epoch,
                    Some(f.log.log_end_offset().get()),
                );
                ready = true;
            }
            Some(epoch) => ask.push((tp, f, epoch)),
        }
    }
    if ask.is_empty() {
        return Ok(ready);
    }
    let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
    for (tp, f, epoch) in &ask {
        let p = OffsetForLeaderPartition::default()
            .with_partition(tp.partition.get())
            .with_current_leader_epoch(f.leader_epoch.get())
            .with_leader_epoch(*epoch);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == tp.topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(settings.me.get()))
        .with_topics(topics);
    let response = client
        .send(&request, EPOCH_VERSION, Duration::from_secs(10))
        .await?;
    let _writing = partitions.writing();
    for topic in response.topics {
        for p in topic.partitions {
            let Some((tp, f, my_epoch)) = ask.iter().find(|(tp, _, _)| {
                tp.topic == topic.topic.0.as_str() && tp.partition.get() == p.partition
            }) else {
                continue;
            };
            // Re-checked under `writing`: the partition may have changed role meanwhile.
            if partitions.current(tp, f.leader_epoch).is_none() {
                continue;
            }
            if p.error_code != 0 {
                // The leader does not know its leadership yet, or we are behind: next round.
                tracing::debug!(partition = %tp, error = p.error_code, "leader not ready for truncation");
                continue;
            }
            let log = &f.log;
            let target = if p.end_offset < 0 {
                // The leader has nothing at or below our last epoch: none of our records can be
                // trusted beside its log.
                log.log_start_offset().get()
            } else if p.leader_epoch == *my_epoch {
                p.end_offset
            } else {
                // The leader's largest epoch below ours: cut where that epoch ends in both logs.
                let ours = log
                    .end_offset_for_epoch(p.leader_epoch)
                    .map_or(log.log_start_offset().get(), |(_, end)| end.get());
                p.end_offset.min(ours)
            };
            if target < log.log_end_offset().get() {
                tracing::info!(partition = %tp, from = log.log_end_offset().get(), to = target, leader_epoch = f.leader_epoch.get(), "truncating follower log to the leader's");
                if let Err(e) = log.truncate_to(Offset(target)) {
                    tracing::error!(partition = %tp, "cannot truncate: {e}");
                    continue;
                }
            }
            partitions.set_fetch_offset(tp, f.leader_epoch, Some(log.log_end_offset().get()));
            ready = true;
        }
    }
    Ok(ready)
}

/// One Fetch round for the partitions ready to fetch. Returns whether anything was appended.
async fn fetch_once(
    client: &mut BrokerClient,
    partitions: &FetcherPartitions,
    metadata: &MetadataStore,
    settings: &FetchSettings,
) -> Result<bool, FetchError> {
    // Over the follower throttle, throttled replicas sit this round out.
    let image = metadata.image();
    let over_throttle = settings.throttle.exceeded();
    let throttled = |tp: &TopicPartition| {
        image.topic(&tp.topic).is_some_and(|t| {
            super::throttle::is_throttled(
                t,
                tp.partition.get(),
                settings.me,
                super::throttle::Side::Follower,
            )
        })
    };
    let ready: Vec<(TopicPartition, Followed, i64)> = partitions
        .lock()
        .iter()
        .filter_map(|(tp, f)| f.fetch_offset.map(|o| (tp.clone(), f.clone(), o)))
        .filter(|(tp, _, _)| !(over_throttle && throttled(tp)))
        .collect();
    if ready.is_empty() {
        return Ok(false);
    }
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (tp, f, offset) in &ready {
        let p = FetchPartition::default()
            .with_partition(tp.partition.get())
            .with_current_leader_epoch(f.leader_epoch.get())
            .with_fetch_offset(*offset)
            .with_last_fetched_epoch(f.log.latest_epoch().unwrap_or(-1))
            .with_log_start_offset(f.log.log_start_offset().get())
            .with_partition_max_bytes(settings.partition_max_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == tp.topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let wait_ms = i32::try_from(settings.wait_max.as_millis()).unwrap_or(i32::MAX);
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(settings.me.get()))
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(settings.response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    let response = client
        .send(
            &request,
            FETCH_VERSION,
            settings.wait_max + Duration::from_secs(10),
        )
        .await?;
    if response.error_code != 0 {
        tracing::debug!(error = response.error_code, "replica fetch refused");
        return Ok(false);
    }
    let writing = partitions.writing();
    let mut appended: Vec<(TopicPartition, Followed, i64)> = Vec::new();
    for topic in response.responses {
        for p in topic.partitions {
            let Some((tp, f, offset)) = ready.iter().find(|(tp, _, _)| {
                tp.topic == topic.topic.0.as_str() && tp.partition.get() == p.partition_index
            }) else {
                continue;
            };
            if partitions.current(tp, f.leader_epoch).is_none() {
                continue;
            }
            let log = &f.log;
            match p.error_code {
                0 => {}
                code if code == ResponseError::OffsetOutOfRange.code() => {
                    if *offset < p.log_start_offset {
                        // The leader no longer has what we would fetch next (retention or
                        // DeleteRecords): start over at its log start.
                        tracing::info!(partition = %tp, from = offset, to = p.log_start_offset, "follower behind the leader's log start; starting over there");
                        if let Err(e) = log.truncate_fully_and_start_at(Offset(p.log_start_offset))
                        {
                            tracing::error!(partition = %tp, "cannot reset the log: {e}");
                            continue;
                        }
                        partitions.set_fetch_offset(tp, f.leader_epoch, Some(p.log_start_offset));
                    } else {
                        // Past the leader's end: truncate against it again.
                        partitions.set_fetch_offset(tp, f.leader_epoch, None);
                    }
                    continue;
                }
                code => {
                    tracing::debug!(partition = %tp, error = code, "replica fetch of a partition refused");
                    continue;
                }
            }
            let records = p.records.unwrap_or_else(Bytes::new);
            let leader_hw = p.high_watermark;
            if records.is_empty() {
                follow_high_watermark(log, leader_hw);
                continue;
            }
            if throttled(tp) {
                settings.throttle.record(records.len() as u64);
            }
            match log.append_replica(&records) {
                Ok(_) => appended.push((tp.clone(), f.clone(), leader_hw)),
                Err(e) => {
                    tracing::warn!(partition = %tp, "cannot append fetched records: {e}; truncating against the leader again");
                    partitions.set_fetch_offset(tp, f.leader_epoch, None);
                }
            }
        }
    }
    drop(writing);
    if appended.is_empty() {
        return Ok(false);
    }
    // Durable before the next fetch reports the new end to the leader (group commit: the
    // flusher syncs them together).
    let mut durable = Vec::with_capacity(appended.len());
    for (tp, f, leader_hw) in appended {
        let end = f.log.log_end_offset();
        match f.log.wait_durable(end).await {
            Ok(()) => durable.push((tp, f, leader_hw, end)),
            Err(e) => tracing::error!(partition = %tp, "follower log not made durable: {e}"),
        }
    }
    let _writing = partitions.writing();
    for (tp, f, leader_hw, end) in durable {
        // Only while still following: a leader's high watermark is its own business.
        if partitions.current(&tp, f.leader_epoch).is_some() {
            follow_high_watermark(&f.log, leader_hw);
            partitions.set_fetch_offset(&tp, f.leader_epoch, Some(end.get()));
        }
    }
    Ok(true)
}

/// A follower's high watermark: the leader's, as far as this log reaches.
fn follow_high_watermark(log: &PartitionLog, leader_hw: i64) {
    let hw = leader_hw.min(log.log_end_offset().get());
    if hw >= 0 {
        log.set_high_watermark(Offset(hw));
    }
}
