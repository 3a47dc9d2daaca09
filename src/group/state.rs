//! One classic consumer group: members and the rebalance state machine (Empty →
//! PreparingRebalance → CompletingRebalance → Stable, Dead once deleted); its committed offsets
//! are in `offsets`. Pure state plus oneshot senders: the caller holds the group's std mutex,
//! passes `now`, and never awaits while holding it. Parked JoinGroup/SyncGroup requests are
//! completed by sending on their oneshot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::error::GroupError;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::consumer::ConsumerGroup;
use super::records::{GroupValue, MemberValue};
use crate::common::now_ms;

mod offsets;

pub use offsets::Committed;

/// The classic group states, named as DescribeGroups/ListGroups report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Coordinator settings the state machine needs.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay: Duration,
    /// KIP-848 groups: group.consumer.session.timeout.ms.
    pub consumer_session_timeout: Duration,
    /// KIP-848 groups: group.consumer.heartbeat.interval.ms.
    pub consumer_heartbeat_interval_ms: i32,
}

/// A member as JoinGroup reports it to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a JoinGroup gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
    pub skip_assignment: bool,
}

impl JoinResult {
    /// A failed join; `member_id` is echoed (MEMBER_ID_REQUIRED carries the new id in it).
    pub fn error(error: GroupError, member_id: String) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id,
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// What a SyncGroup gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    /// A SyncGroup answer carrying only `error`.
    pub fn error(error: GroupError) -> SyncResult {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer that is either ready or will be sent on a oneshot when the rebalance progresses.
pub enum Pending<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// A JoinGroup request, already validated for shape by the handler.
#[derive(Debug, Clone)]
pub struct JoinParams {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: an unknown member must first fetch a member id (MEMBER_ID_REQUIRED).
    pub require_known_member: bool,
    /// v9+: a static leader rejoining a stable group may skip computing the assignment.
    pub supports_skip_assignment: bool,
}

/// One member of the group.
#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_seen: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// A classic group.
#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// Members in join order (Kafka keeps insertion order; the first joiner leads).
    pub members: BTreeMap<u64, Member>,
    next_seq: u64,
    /// group.instance.id → member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the instant.
    pending: HashMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    /// Initial rebalance delay of a group that was Empty: (current end, hard end).
    initial_delay: Option<(Instant, Instant)>,
    new_member_during_delay: bool,
    pub offsets: HashMap<(String, i32), Committed>,
    /// When the group entered its current state (ms since the epoch), for the metadata record.
    pub state_timestamp: i64,
    /// Set when group metadata changed in a way worth persisting (entering Stable or Empty).
    pub dirty: bool,
    /// Commits written but not yet durable and applied; the group must not be forgotten.
    pub commits_in_flight: usize,
    /// Set while the group is a KIP-848 (consumer protocol) group: its members and assignment.
    pub kip848: Option<ConsumerGroup>,
    /// Transactional offsets (TxnOffsetCommit) written but not yet committed or aborted, by
    /// producer id: applied to `offsets` when the producer's commit marker is written,
    /// dropped on abort.
    pub pending_txn_offsets: HashMap<i64, HashMap<(String, i32), Committed>>,
    /// Set when this broker gave up the group's partition (it no longer coordinates it): a
    /// request that still holds this handle answers NOT_COORDINATOR.
    pub unloaded: bool,
}

fn ms(v: i32) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            next_seq: 0,
            static_members: HashMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay: None,
            new_member_during_delay: false,
            offsets: HashMap::new(),
            state_timestamp: now_ms(),
            dirty: false,
            commits_in_flight: 0,
            kip848: None,
            pending_txn_offsets: HashMap::new(),
            unloaded: false,
        }
    }

    /// A group rebuilt from its last metadata record, members included, as Kafka's coordinator
    /// loads it: a group with members comes back Stable in its generation, and each member's
    /// session restarts from the load, so members that go on heartbeating (or commit with their
    /// generation, as Streams' TxnOffsetCommit does) keep their id without a rebalance; those that
    /// stay silent expire as usual.
    pub fn from_record(id: &str, value: &GroupValue) -> Group {
        let mut g = Group::new(id);
        g.generation = value.generation;
        g.protocol_type = Some(value.protocol_type.clone()).filter(|p| !p.is_empty());
        g.state_timestamp = value.state_timestamp;
        let Some(protocol) = value.protocol.clone().filter(|_| !value.members.is_empty()) else {
            return g;
        };
        let now = Instant::now();
        for m in &value.members {
            if let Some(instance) = &m.instance_id {
                g.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let seq = g.next_seq;
            g.next_seq += 1;
            g.members.insert(
                seq,
                Member {
                    id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout: ms(m.session_timeout_ms),
                    rebalance_timeout: ms(m.rebalance_timeout_ms),
                    protocol_type: value.protocol_type.clone(),
                    // Only the chosen protocol's metadata is stored; a member rejoining with its
                    // full list is a change of protocols, as in Kafka.
                    protocols: vec![(protocol.clone(), m.subscription.clone())],
                    assignment: m.assignment.clone(),
                    last_seen: now,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        g.protocol = Some(protocol);
        g.leader = value.leader.clone();
        g.state = GroupState::Stable;
        g
    }

    /// The metadata record for the group as it stands.
    pub fn to_record(&self) -> GroupValue {
        let protocol = self.protocol.clone();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    fn set_state(&mut self, state: GroupState) {
        self.state = state;
        self.state_timestamp = now_ms();
        if matches!(state, GroupState::Stable | GroupState::Empty) {
            self.dirty = true;
        }
    }

    fn seq_of(&self, member_id: &str) -> Option<u64> {
        self.members
            .iter()
            .find(|(_, m)| m.id == member_id)
            .map(|(k, _)| *k)
    }

    /// The member with `member_id`, if any.
    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.values().find(|m| m.id == member_id)
    }

    fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.values_mut().find(|m| m.id == member_id)
    }

    /// True if the group has no members and is not rebalancing.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// A static member presenting a member id other than the one registered for its instance.
    fn fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|registered| registered != member_id)
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> HashSet<String> {
        let mut iter = self.members.values();
        let Some(first) = iter.next() else {
            return HashSet::new();
        };
        let mut set: HashSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in iter {
            set.retain(|p| m.protocols.iter().any(|(n, _)| n == p));
        }
        set
    }

    /// Kafka's `supportsProtocols`: an empty group accepts any non-empty offer; otherwise the
    /// type must match and at least one protocol must be common to everyone.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        let candidates = self.candidate_protocols();
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    /// Kafka's vote: each member votes for its most preferred protocol among those all members
    /// support; the most votes wins (ties go to the earliest member's preference).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(String, usize)> = Vec::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                match votes.iter_mut().find(|(n, _)| n == name) {
                    Some(v) => v.1 += 1,
                    None => votes.push((name.clone(), 1)),
                }
            }
        }
        let mut best: Option<(String, usize)> = None;
        for (name, count) in votes {
            if best.as_ref().is_none_or(|(_, c)| count > *c) {
                best = Some((name, count));
            }
        }
        best.map(|(n, _)| n)
    }

    /// The join answer for `member_id` in the current generation.
    fn current_join_result(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
        let is_leader = self.leader.as_deref() == Some(member_id);
        let protocol = self.protocol.clone().unwrap_or_default();
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if is_leader {
                self.members
                    .values()
                    .map(|m| JoinedMember {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        metadata: m.metadata_for(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            skip_assignment: is_leader && skip_assignment,
        }
    }

    /// Handles a JoinGroup.
    pub fn join(&mut self, p: JoinParams, cfg: &GroupConfig, now: Instant) -> Pending<JoinResult> {
        if p.session_timeout_ms < cfg.min_session_timeout_ms
            || p.session_timeout_ms > cfg.max_session_timeout_ms
        {
            return Pending::Now(JoinResult::error(
                GroupError::InvalidSessionTimeout,
                p.member_id,
            ));
        }
        if self.state == GroupState::Dead {
            return Pending::Now(JoinResult::error(GroupError::GroupDead, p.member_id));
        }
        if let Some(c) = &self.kip848 {
            if !c.members.is_empty() {
                // Kafka without online migration: a classic member cannot join a live
                // consumer-protocol group.
                return Pending::Now(JoinResult::error(
                    GroupError::InconsistentGroupProtocol,
                    p.member_id,
                ));
            }
            // An empty consumer group turns back into a classic one.
            self.kip848 = None;
            self.protocol_type = None;
        }
        if !self.supports(&p.protocol_type, &p.protocols) {
            return Pending::Now(JoinResult::error(
                GroupError::InconsistentGroupProtocol,
                p.member_id,
            ));
        }
        if p.member_id.is_empty() {
            if let Some(old_id) = p
                .instance_id
                .as_ref()
                .and_then(|i| self.static_members.get(i))
                .cloned()
            {
                return self.rejoin_static(&old_id, p, now);
            }
            if p.require_known_member && p.instance_id.is_none() {
                let id = new_member_id(&p.client_id);
                self.pending
                    .insert(id.clone(), now + ms(p.session_timeout_ms));
                return Pending::Now(JoinResult::error(GroupError::MemberIdRequired, id));
            }
            let prefix = p.instance_id.clone().unwrap_or_else(|| p.client_id.clone());
            let id = new_member_id(&prefix);
            return self.add_member(id, p, cfg, now);
        }
        if self.fenced(&p.member_id, p.instance_id.as_deref()) {
            return Pending::Now(JoinResult::error(GroupError::FencedInstanceId, p.member_id));
        }
        if self.pending.remove(&p.member_id).is_some() {
            let id = p.member_id.clone();
            return self.add_member(id, p, cfg, now);
        }
        let Some(member) = self.member_mut(&p.member_id) else {
            return Pending::Now(JoinResult::error(GroupError::UnknownMemberId, p.member_id));
        };
        member.last_seen = now;
        let unchanged = member.same_protocols(&p.protocols);
        let is_leader = self.leader.as_deref() == Some(p.member_id.as_str());
        match self.state {
            GroupState::PreparingRebalance => self.update_and_wait(p, cfg, now),
            GroupState::CompletingRebalance if unchanged => {
                // The member lost our JoinGroup answer and asked again: repeat it.
                Pending::Now(self.current_join_result(&p.member_id, false))
            }
            GroupState::Stable if unchanged && !is_leader => {
                Pending::Now(self.current_join_result(&p.member_id, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_and_wait(p, cfg, now)
            }
            GroupState::Empty | GroupState::Dead => {
                Pending::Now(JoinResult::error(GroupError::UnknownMemberId, p.member_id))
            }
        }
    }

    /// An existing member rejoins: record its offer, park it, rebalance.
    fn update_and_wait(
        &mut self,
        p: JoinParams,
        cfg: &GroupConfig,
        now: Instant,
    ) -> Pending<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.member_mut(&p.member_id) {
            m.protocols = p.protocols;
            m.session_timeout = ms(p.session_timeout_ms);
            m.rebalance_timeout = ms(p.rebalance_timeout_ms);
            if let Some(old) = m.join_waiter.replace(tx) {
                // A duplicate join while parked: the newer request gets the answer.
                let _ = old.send(JoinResult::error(
                    GroupError::RebalanceInProgress,
                    m.id.clone(),
                ));
            }
        }
        self.prepare_rebalance(cfg, now);
        self.try_complete_join(false, now);
        Pending::Later(rx)
    }

    fn add_member(
        &mut self,
        id: String,
        p: JoinParams,
        cfg: &GroupConfig,
        now: Instant,
    ) -> Pending<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        if let Some(instance) = &p.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.members.insert(
            seq,
            Member {
                id,
                instance_id: p.instance_id,
                client_id: p.client_id,
                client_host: p.client_host,
                session_timeout: ms(p.session_timeout_ms),
                rebalance_timeout: ms(p.rebalance_timeout_ms),
                protocol_type: p.protocol_type,
                protocols: p.protocols,
                assignment: Bytes::new(),
                last_seen: now,
                join_waiter: Some(tx),
                sync_waiter: None,
            },
        );
        if self.initial_delay.is_some() {
            self.new_member_during_delay = true;
        }
        self.prepare_rebalance(cfg, now);
        self.try_complete_join(false, now);
        Pending::Later(rx)
    }

    /// A static member (known `group.instance.id`, no member id) comes back: it takes over the
    /// old member's slot under a new member id, without a rebalance if the group is Stable.
    fn rejoin_static(&mut self, old_id: &str, p: JoinParams, now: Instant) -> Pending<JoinResult> {
        let prefix = p.instance_id.clone().unwrap_or_default();
        let new_id = new_member_id(&prefix);
        let Some(seq) = self.seq_of(old_id) else {
            return Pending::Now(JoinResult::error(GroupError::UnknownMemberId, p.member_id));
        };
        if let Some(m) = self.members.get_mut(&seq) {
            // Whoever still holds the old id is a zombie now.
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(
                    GroupError::FencedInstanceId,
                    m.id.clone(),
                ));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(GroupError::FencedInstanceId));
            }
            m.id = new_id.clone();
            m.client_id = p.client_id.clone();
            m.client_host = p.client_host.clone();
            m.session_timeout = ms(p.session_timeout_ms);
            m.rebalance_timeout = ms(p.rebalance_timeout_ms);
            m.last_seen = now;
        }
        if let Some(instance) = &p.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable => {
                self.dirty = true;
                Pending::Now(self.current_join_result(&new_id, p.supports_skip_assignment))
            }
            _ => {
                // Mid-rebalance: it joins the rebalance under its new id.
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&seq) {
                    m.protocols = p.protocols;
                    m.join_waiter = Some(tx);
                }
                if self.state == GroupState::CompletingRebalance {
                    self.reset_sync_waiters();
                }
                if self.state != GroupState::PreparingRebalance {
                    let deadline = now + self.max_rebalance_timeout();
                    self.set_state(GroupState::PreparingRebalance);
                    self.rebalance_deadline = Some(deadline);
                }
                self.try_complete_join(false, now);
                Pending::Later(rx)
            }
        }
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Members waiting for their assignment learn that the rebalance restarted.
    fn reset_sync_waiters(&mut self) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(GroupError::RebalanceInProgress));
            }
        }
    }

    /// Moves to PreparingRebalance (no-op if already there).
    fn prepare_rebalance(&mut self, cfg: &GroupConfig, now: Instant) {
        match self.state {
            GroupState::PreparingRebalance | GroupState::Dead => return,
            GroupState::CompletingRebalance => self.reset_sync_waiters(),
            _ => {}
        }
        let was_empty = self.state == GroupState::Empty;
        let timeout = self.max_rebalance_timeout();
        self.set_state(GroupState::PreparingRebalance);
        if was_empty && !cfg.initial_rebalance_delay.is_zero() {
            // Kafka's initial delay: let more members of a starting group arrive before the
            // first generation, so they do not each cause a rebalance.
            let end = now + cfg.initial_rebalance_delay.min(timeout);
            self.initial_delay = Some((end, now + timeout));
            self.new_member_during_delay = false;
            self.rebalance_deadline = Some(end);
        } else {
            self.initial_delay = None;
            self.rebalance_deadline = Some(now + timeout);
        }
    }

    /// Completes the join phase if every known member has rejoined (or `force`, at the
    /// deadline): members that did not rejoin are dropped, a new generation starts and every
    /// parked JoinGroup is answered.
    fn try_complete_join(&mut self, force: bool, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if self.initial_delay.is_some() && !force {
            return;
        }
        let all_joined =
            self.members.values().all(|m| m.join_waiter.is_some()) && self.pending.is_empty();
        if !all_joined && !force {
            return;
        }
        let gone: Vec<u64> = self
            .members
            .iter()
            .filter(|(_, m)| m.join_waiter.is_none())
            .map(|(k, _)| *k)
            .collect();
        for seq in gone {
            self.remove_seq(seq);
        }
        self.initial_delay = None;
        self.rebalance_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty);
            return;
        }
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| self.member(l).is_none())
        {
            self.leader = self.members.values().next().map(|m| m.id.clone());
        }
        self.set_state(GroupState::CompletingRebalance);
        // Kafka bounds the wait for SyncGroup by the rebalance timeout, too.
        self.rebalance_deadline = Some(now + self.max_rebalance_timeout());
        let ids: Vec<String> = self.members.values().map(|m| m.id.clone()).collect();
        for id in ids {
            let result = self.current_join_result(&id, false);
            if let Some(w) = self.member_mut(&id).and_then(|m| m.join_waiter.take()) {
                let _ = w.send(result);
            }
            if let Some(m) = self.member_mut(&id) {
                // The session clock restarts when the member gets its answer.
                m.last_seen = now;
            }
        }
    }

    fn remove_seq(&mut self, seq: u64) {
        let Some(m) = self.members.remove(&seq) else {
            return;
        };
        if let Some(instance) = &m.instance_id {
            if self.static_members.get(instance) == Some(&m.id) {
                self.static_members.remove(instance);
            }
        }
        if let Some(w) = m.join_waiter {
            let _ = w.send(JoinResult::error(GroupError::UnknownMemberId, m.id.clone()));
        }
        if let Some(w) = m.sync_waiter {
            let _ = w.send(SyncResult::error(GroupError::UnknownMemberId));
        }
        if self.leader.as_deref() == Some(m.id.as_str()) {
            self.leader = self.members.values().next().map(|m| m.id.clone());
        }
    }

    /// Removes a member (left or expired) and rebalances what remains.
    fn remove_member_and_rebalance(&mut self, member_id: &str, cfg: &GroupConfig, now: Instant) {
        if let Some(seq) = self.seq_of(member_id) {
            self.remove_seq(seq);
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(cfg, now);
                self.try_complete_join(false, now);
            }
            GroupState::PreparingRebalance => self.try_complete_join(false, now),
            _ => {}
        }
    }

    /// Handles a SyncGroup.
    #[allow(
        clippy::too_many_arguments,
        reason = "one parameter per SyncGroup request field"
    )]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Pending<SyncResult> {
        let now_err = |e| Pending::Now(SyncResult::error(e));
        if self.state == GroupState::Dead {
            return now_err(GroupError::GroupDead);
        }
        if self.member(member_id).is_none() {
            return now_err(GroupError::UnknownMemberId);
        }
        if self.fenced(member_id, instance_id) {
            return now_err(GroupError::FencedInstanceId);
        }
        if generation != self.generation {
            return now_err(GroupError::IllegalGeneration);
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol.as_deref())
        {
            return now_err(GroupError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => now_err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => now_err(GroupError::RebalanceInProgress),
            GroupState::Stable => {
                let assignment = self
                    .member(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                if let Some(m) = self.member_mut(member_id) {
                    m.last_seen = now;
                }
                Pending::Now(self.sync_ok(assignment))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.member_mut(member_id) {
                    m.last_seen = now;
                    m.sync_waiter = Some(tx);
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.rebalance_deadline = None;
                    self.set_state(GroupState::Stable);
                    let waiting: Vec<(oneshot::Sender<SyncResult>, Bytes)> = self
                        .members
                        .values_mut()
                        .filter_map(|m| m.sync_waiter.take().map(|w| (w, m.assignment.clone())))
                        .collect();
                    for (w, assignment) in waiting {
                        let _ = w.send(self.sync_ok(assignment));
                    }
                }
                Pending::Later(rx)
            }
        }
    }

    fn sync_ok(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    /// Handles a Heartbeat; `Ok` is error code 0.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::GroupDead);
        }
        if self.fenced(member_id, instance_id) {
            return Err(GroupError::FencedInstanceId);
        }
        if self.state == GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        let (current, state) = (self.generation, self.state);
        let Some(m) = self.member_mut(member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        if generation != current {
            return Err(GroupError::IllegalGeneration);
        }
        m.last_seen = now;
        if state == GroupState::PreparingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Handles one member of a LeaveGroup.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        cfg: &GroupConfig,
        now: Instant,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::GroupDead);
        }
        let id = match instance_id {
            Some(instance) => {
                let Some(registered) = self.static_members.get(instance).cloned() else {
                    return Err(GroupError::UnknownMemberId);
                };
                // A static member may leave by instance id alone (v3+ admin removal).
                if !member_id.is_empty() && member_id != registered {
                    return Err(GroupError::FencedInstanceId);
                }
                registered
            }
            None => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            self.try_complete_join(false, now);
            return Ok(());
        }
        if self.member(&id).is_none() {
            return Err(GroupError::UnknownMemberId);
        }
        self.remove_member_and_rebalance(&id, cfg, now);
        Ok(())
    }

    /// Topics the members subscribe to, read from the consumer protocol's subscription
    /// (version, \[topics\]); `None` if some member's metadata does not parse (then every topic
    /// counts as subscribed, erring on the side of not deleting).
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        let mut out = HashSet::new();
        if let Some(c) = &self.kip848 {
            // KIP-848 members name their topics; a regex subscription could match any topic.
            for m in c.members.values() {
                if m.subscribed_topic_regex.is_some() {
                    return None;
                }
                out.extend(m.subscribed_topic_names.iter().cloned());
            }
            return Some(out);
        }
        // An empty classic group subscribes to nothing, whatever protocol it last used: Kafka lets
        // `kafka-consumer-groups --delete-offsets` delete the offsets of a group with no members.
        if self.protocol_type.as_deref() != Some("consumer") || self.members.is_empty() {
            return Some(out);
        }
        let protocol = self.protocol.clone()?;
        for m in self.members.values() {
            let meta = m.metadata_for(&protocol);
            out.extend(parse_subscription(&meta)?);
        }
        Some(out)
    }

    /// Periodic work: expire pending member ids and silent members, end the initial delay,
    /// enforce the rebalance deadline.
    pub fn tick(&mut self, cfg: &GroupConfig, now: Instant) {
        if let Some(c) = &mut self.kip848 {
            for id in c.tick(cfg.consumer_session_timeout, now) {
                tracing::info!(group = %self.id, member = %id, "consumer group member expired");
            }
            self.sync_kip848_state();
            return;
        }
        let before = self.pending.len();
        self.pending.retain(|_, until| *until > now);
        let pending_expired = self.pending.len() != before;
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && now.duration_since(m.last_seen) > m.session_timeout
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member_and_rebalance(id, cfg, now);
        }
        if let Some((end, hard_end)) = self.initial_delay {
            if now >= end {
                if self.new_member_during_delay && now < hard_end {
                    let next = (now + cfg.initial_rebalance_delay).min(hard_end);
                    self.initial_delay = Some((next, hard_end));
                    self.new_member_during_delay = false;
                } else {
                    self.try_complete_join(true, now);
                }
            }
            return;
        }
        let past_deadline = self.rebalance_deadline.is_some_and(|d| now >= d);
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(past_deadline, now),
            GroupState::CompletingRebalance if past_deadline => {
                // The leader never sent the assignment: drop whoever has not synced and retry.
                let silent: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.sync_waiter.is_none())
                    .map(|m| m.id.clone())
                    .collect();
                for id in silent {
                    if let Some(seq) = self.seq_of(&id) {
                        self.remove_seq(seq);
                    }
                }
                self.prepare_rebalance(cfg, now);
                self.try_complete_join(false, now);
            }
            _ if pending_expired => self.try_complete_join(false, now),
            _ => {}
        }
    }

    /// True if the group is Empty, holds no offsets and has been so since before `cutoff_ms`:
    /// nothing is left to remember, so the coordinator may forget it.
    pub fn is_forgettable(&self, cutoff_ms: i64) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && self.pending.is_empty()
            && self.offsets.is_empty()
            && self.commits_in_flight == 0
            && self.pending_txn_offsets.is_empty()
            && self.state_timestamp < cutoff_ms
    }

    /// Keeps the classic state in step with a KIP-848 group's membership: Stable while it has
    /// members, Empty (persisted, offsets start ageing) once the last one is gone.
    pub fn sync_kip848_state(&mut self) {
        let Some(c) = &self.kip848 else { return };
        let want = if c.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        if self.generation != c.group_epoch {
            // Every new group epoch is recorded (ConsumerGroupMetadata), as Kafka does.
            self.generation = c.group_epoch;
            self.dirty = true;
        }
        if self.state != want {
            self.set_state(want);
        }
    }

    /// This broker no longer coordinates the group (its partition moved): parked requests are
    /// answered NOT_COORDINATOR, so the members find the new coordinator, which has the
    /// group's state from the log.
    pub fn unload(&mut self) {
        for m in self.members.values_mut() {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(GroupError::NotCoordinator, m.id.clone()));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(GroupError::NotCoordinator));
            }
        }
        self.unloaded = true;
        self.mark_dead();
    }

    /// Marks the group deleted: parked requests are told to find the coordinator again.
    pub fn mark_dead(&mut self) {
        for m in self.members.values_mut() {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(GroupError::GroupDead, m.id.clone()));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(GroupError::GroupDead));
            }
        }
        self.members.clear();
        self.static_members.clear();
        self.offsets.clear();
        self.state = GroupState::Dead;
    }
}

/// The topic list of a ConsumerProtocolSubscription: int16 version, then an array of int16
/// length-prefixed strings.
pub fn parse_subscription(meta: &[u8]) -> Option<Vec<String>> {
    let count = i32::from_be_bytes(meta.get(2..6)?.try_into().ok()?);
    let mut pos = 6usize;
    let mut topics = Vec::new();
    for _ in 0..count.max(0) {
        let len = i16::from_be_bytes(meta.get(pos..pos + 2)?.try_into().ok()?);
        pos += 2;
        let len = usize::try_from(len).ok()?;
        let name = meta.get(pos..pos + len)?;
        pos += len;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn cfg() -> GroupConfig {
        GroupConfig {
            min_session_timeout_ms: 10,
            max_session_timeout_ms: 100_000,
            initial_rebalance_delay: Duration::ZERO,
            consumer_session_timeout: Duration::from_secs(45),
            consumer_heartbeat_interval_ms: 5000,
        }
    }

    pub(super) fn params(member: &str, protos: &[&str]) -> JoinParams {
        JoinParams {
            member_id: member.to_string(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: 1000,
            rebalance_timeout_ms: 1000,
            protocol_type: "consumer".into(),
            protocols: protos
                .iter()
                .map(|p| (p.to_string(), Bytes::from(p.to_string())))
                .collect(),
            require_known_member: false,
            supports_skip_assignment: false,
        }
    }

    pub(super) fn done<T>(p: Pending<T>) -> T {
        match p {
            Pending::Now(t) => t,
            Pending::Later(mut rx) => rx.try_recv().expect("answered"),
        }
    }

    #[test]
    fn vote_picks_protocol_everyone_supports() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let a = done(g.join(params("", &["range", "roundrobin"]), &cfg(), now));
        assert_eq!(a.protocol_name.as_deref(), Some("range"));
        // Second member only supports roundrobin: rebalance, and the vote lands on roundrobin.
        let b = g.join(params("", &["roundrobin"]), &cfg(), now);
        let a2 = g.join(params(&a.member_id, &["range", "roundrobin"]), &cfg(), now);
        let (b, a2) = (done(b), done(a2));
        assert_eq!(a2.generation, 2);
        assert_eq!(b.protocol_name.as_deref(), Some("roundrobin"));
        assert_eq!(a2.members.len(), 2, "the leader sees everyone");
        assert!(b.members.is_empty());
        let bad = done(g.join(params("", &["sticky"]), &cfg(), now));
        assert_eq!(bad.error, Some(GroupError::InconsistentGroupProtocol));
    }

    #[test]
    fn subscription_parses() {
        let mut m = vec![0, 1, 0, 0, 0, 2];
        for t in ["a", "bc"] {
            m.extend_from_slice(&(t.len() as i16).to_be_bytes());
            m.extend_from_slice(t.as_bytes());
        }
        assert_eq!(
            parse_subscription(&m),
            Some(vec!["a".to_string(), "bc".to_string()])
        );
        assert_eq!(parse_subscription(&m[..7]), None);
    }
}
