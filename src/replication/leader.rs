//! A partition this broker leads: what each follower has fetched, the high watermark that
//! follows from it, and the ISR changes the leader asks the controller for (KIP-497's
//! AlterPartition, here a compare-and-set command on the metadata quorum).
//!
//! A follower's fetch offset is its log end offset *after fsync*: the fetcher asks for more
//! only once what it appended is durable, so an offset below the high watermark is on disk on
//! every in-sync replica — the cluster keeps the promise a single Gregor keeps, that an
//! acknowledged record is durable.
//!
//! The high watermark is the minimum over the "maximal" ISR of the replicas' log ends: the
//! committed ISR plus a follower whose addition is in flight (counting it early only holds the
//! high watermark back), and a follower whose removal is in flight stays counted until the
//! removal is committed (the controller may still elect it). It never goes down while this
//! broker leads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::common::{LeaderEpoch, NodeId, Offset};
use crate::log::PartitionLog;
use crate::metadata::{MetadataCommand, PartitionPlacement, Precondition};

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// The follower's durable log end, from its last fetch; -1 before its first fetch.
    log_end: i64,
    /// Last time the follower had everything the leader had (Kafka's lastCaughtUpTime).
    last_caught_up: Instant,
    /// The leader's log end when the follower last fetched, and when that was: a follower
    /// whose next fetch starts at or past that end was caught up at that time.
    last_fetch_leader_end: i64,
    last_fetch: Instant,
}

/// The placement as committed in the metadata (its ISR, partition epoch, replicas being
/// reassigned), and an ISR change asked for but not yet committed.
#[derive(Debug, Clone)]
struct Isr {
    committed: Vec<NodeId>,
    placement: PartitionPlacement,
    /// The ISR proposed in the command in flight, if any.
    pending: Option<Vec<NodeId>>,
}

#[derive(Debug)]
struct State {
    isr: Isr,
    followers: HashMap<NodeId, Progress>,
}

/// One led partition. Created when this broker becomes leader at `leader_epoch`; dropped (and
/// `resigned` fired) when it stops leading.
#[derive(Debug)]
pub struct LeaderState {
    pub topic: String,
    pub partition: i32,
    pub log: Arc<PartitionLog>,
    pub leader_epoch: LeaderEpoch,
    /// The log end offset when this leadership began: a follower joins the ISR only once it
    /// has reached it (it then has every record of earlier leaders this leader kept).
    pub epoch_start_offset: i64,
    /// One replica when this leadership began (a reassignment that adds replicas moves the
    /// leadership to a new epoch through the controller only if the leader changes; a
    /// single-replica partition being reassigned is replicated from its next leadership).
    single_replica: bool,
    me: NodeId,
    state: Mutex<State>,
    resigned: watch::Sender<bool>,
}

/// A new leader gives every follower a full lag time to show up.
fn add_followers(followers: &mut HashMap<NodeId, Progress>, me: NodeId, replicas: &[NodeId]) {
    let now = Instant::now();
    for r in replicas.iter().filter(|r| **r != me) {
        followers.entry(*r).or_insert(Progress {
            log_end: -1,
            last_caught_up: now,
            last_fetch_leader_end: i64::MAX,
            last_fetch: now,
        });
    }
}

/// An ISR change for the quorum: the command and the ISR it proposes.
pub struct IsrChange {
    pub command: MetadataCommand,
    pub isr: Vec<NodeId>,
}

impl LeaderState {
    /// Leadership of `placement` (whose leader is `me`) over `log`.
    pub fn new(
        me: NodeId,
        topic: &str,
        partition: i32,
        log: Arc<PartitionLog>,
        placement: &PartitionPlacement,
    ) -> LeaderState {
        let mut followers = HashMap::new();
        add_followers(&mut followers, me, &placement.replicas);
        let (resigned, _) = watch::channel(false);
        LeaderState {
            topic: topic.to_string(),
            partition,
            epoch_start_offset: log.log_end_offset().get(),
            log,
            leader_epoch: placement.leader_epoch,
            single_replica: placement.replicas.len() <= 1,
            me,
            state: Mutex::new(State {
                isr: Isr {
                    committed: placement.isr(),
                    placement: placement.clone(),
                    pending: None,
                },
                followers,
            }),
            resigned,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True if the partition has one replica: its high watermark is its log end, as on a
    /// single broker, and nothing here is needed on the produce path.
    pub fn is_single_replica(&self) -> bool {
        self.single_replica
    }

    /// The committed ISR (what `min.insync.replicas` is checked against).
    pub fn isr(&self) -> Vec<NodeId> {
        self.lock().isr.committed.clone()
    }

    /// The metadata committed a new placement for this leadership (same leader epoch): take
    /// its ISR and partition epoch; an in-flight change is settled by it.
    pub fn update_placement(&self, placement: &PartitionPlacement) {
        let mut g = self.lock();
        if placement.partition_epoch > g.isr.placement.partition_epoch {
            g.isr = Isr {
                committed: placement.isr(),
                placement: placement.clone(),
                pending: None,
            };
            add_followers(&mut g.followers, self.me, &placement.replicas);
            g.followers.retain(|r, _| placement.replicas.contains(r));
        }
        drop(g);
        self.advance_high_watermark();
    }

    /// The change being proposed failed to commit (rejected or no quorum): allow a new one.
    pub fn change_failed(&self) {
        self.lock().isr.pending = None;
    }

    /// Records a follower's fetch at `fetch_offset` (its durable log end). Returns an ISR
    /// expansion to propose if the follower has caught up and is not in the ISR.
    pub fn follower_fetched(&self, follower: NodeId, fetch_offset: i64) -> Option<IsrChange> {
        let leader_end = self.log.log_end_offset().get();
        let now = Instant::now();
        let change = {
            let mut g = self.lock();
            let p = g.followers.get_mut(&follower)?;
            p.log_end = fetch_offset;
            if fetch_offset >= leader_end {
                p.last_caught_up = now;
            } else if fetch_offset >= p.last_fetch_leader_end {
                p.last_caught_up = p.last_caught_up.max(p.last_fetch);
            }
            p.last_fetch_leader_end = leader_end;
            p.last_fetch = now;
            let hw = self.log.high_watermark().get();
            let joins = !g.isr.committed.contains(&follower)
                && g.isr.pending.is_none()
                && fetch_offset >= hw
                && fetch_offset >= self.epoch_start_offset;
            if joins {
                let mut isr = g.isr.committed.clone();
                isr.push(follower);
                let mut change = self.propose(&mut g, isr);
                change
                    .command
                    .preconditions
                    .push(Precondition::BrokerLive(follower));
                Some(change)
            } else {
                None
            }
        };
        self.advance_high_watermark();
        change
    }

    /// The ISR shrink due now: in-sync followers that have not caught up for `lag_max`.
    pub fn lagging(&self, lag_max: Duration) -> Option<IsrChange> {
        let now = Instant::now();
        let mut g = self.lock();
        if g.isr.pending.is_some() {
            return None;
        }
        let lagging: Vec<NodeId> = g
            .isr
            .committed
            .iter()
            .copied()
            .filter(|r| *r != self.me)
            .filter(|r| {
                g.followers
                    .get(r)
                    .is_some_and(|p| now.saturating_duration_since(p.last_caught_up) > lag_max)
            })
            .collect();
        if lagging.is_empty() {
            return None;
        }
        let isr: Vec<NodeId> = g
            .isr
            .committed
            .iter()
            .copied()
            .filter(|r| !lagging.contains(r))
            .collect();
        tracing::info!(topic = %self.topic, partition = self.partition, lagging = ?lagging, "follower out of sync; shrinking the ISR");
        Some(self.propose(&mut g, isr))
    }

    /// The command that changes the ISR to `isr`, marked in flight.
    fn propose(&self, g: &mut State, isr: Vec<NodeId>) -> IsrChange {
        g.isr.pending = Some(isr.clone());
        let committed = &g.isr.placement;
        let placement = PartitionPlacement {
            isr: isr.clone(),
            partition_epoch: committed.partition_epoch + 1,
            ..committed.clone()
        };
        let mut command = MetadataCommand::partition_change(
            &self.topic,
            self.partition,
            committed.partition_epoch,
            placement,
        );
        // Only this leadership may change the ISR (a deposed leader's change is refused).
        command.preconditions.insert(
            0,
            Precondition::PartitionLeader {
                name: self.topic.clone(),
                partition: self.partition,
                leader: self.me,
                leader_epoch: self.leader_epoch,
            },
        );
        IsrChange { command, isr }
    }

    /// Moves the high watermark up to the smallest log end over the maximal ISR.
    pub fn advance_high_watermark(&self) {
        if self.is_single_replica() {
            return;
        }
        let leader_end = self.log.log_end_offset().get();
        let hw = {
            let g = self.lock();
            let mut members: Vec<NodeId> = g.isr.committed.clone();
            if let Some(pending) = &g.isr.pending {
                members.extend(pending.iter().copied());
            }
            members
                .iter()
                .filter(|r| **r != self.me)
                .map(|r| g.followers.get(r).map_or(-1, |p| p.log_end))
                .fold(leader_end, i64::min)
        };
        if hw > self.log.high_watermark().get() {
            self.log.set_high_watermark(Offset(hw));
        }
    }

    /// Fired when this leadership ends, so that acks=all waiters stop waiting.
    pub fn resigned(&self) -> watch::Receiver<bool> {
        self.resigned.subscribe()
    }

    /// Ends this leadership.
    pub fn resign(&self) {
        self.resigned.send_replace(true);
    }
}
