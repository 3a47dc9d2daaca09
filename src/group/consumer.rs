//! KIP-848 consumer groups (`group.protocol=consumer`): members heartbeat with
//! ConsumerGroupHeartbeat, the coordinator computes the target assignment with a server-side
//! assignor (`uniform` or `range`) and reconciles each member towards it, revoke before assign:
//! a partition goes to its new owner only once the previous owner's heartbeat shows it released.
//!
//! Epochs: the group epoch is bumped whenever membership, a subscription or the subscribed
//! topics' metadata changes; the target assignment is computed for it (assignment epoch); a
//! member's epoch reaches the assignment epoch once it has revoked what it must give up.
//! Pure state, like `state.rs`: the caller holds the group's mutex and passes `now` and a
//! snapshot of the topics.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::assignor;
use super::error::GroupError;

/// A member's partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

pub use super::assignor::ASSIGNORS;

/// One topic as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
}

/// A rejected heartbeat: the Kafka error and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatError {
    pub error: GroupError,
    pub message: String,
}

fn err(error: GroupError, message: impl Into<String>) -> HeartbeatError {
    HeartbeatError {
        error,
        message: message.into(),
    }
}

/// A ConsumerGroupHeartbeat, decoded and version-normalised by the handler.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatParams {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// Partitions the member owns now; `None` means unchanged since the last heartbeat.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
    /// v0 lets the coordinator pick the member id; v1 members bring their own.
    pub server_generates_member_id: bool,
}

/// What a successful heartbeat answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    /// The member's full assignment, when it must (re)learn it; `None`: unchanged.
    pub assignment: Option<Assignment>,
}

/// Where a member stands in reconciling towards its target assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Owns exactly its target at the assignment epoch.
    Stable,
    /// Must first release partitions (`pending_revocation`).
    UnrevokedPartitions,
    /// At the assignment epoch, waiting for partitions other members still hold.
    UnreleasedPartitions,
}

/// One KIP-848 member.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub rebalance_timeout: Duration,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// What the member is told it owns.
    pub assigned: Assignment,
    /// Partitions it must release before it moves to the next epoch.
    pub pending_revocation: Assignment,
    pub last_seen: Instant,
    revoke_deadline: Option<Instant>,
    /// Left with epoch -2 (a static member restarting): keeps its partitions for a successor.
    pub left_static: bool,
}

impl ConsumerMember {
    fn subscribes_to(&self, topic: &str, regex: Option<&regex::Regex>) -> bool {
        self.subscribed_topic_names.iter().any(|t| t == topic)
            || regex.is_some_and(|r| r.is_match(topic))
    }
}

/// A KIP-848 group's membership and assignment (its offsets live in the enclosing `Group`).
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment per member, computed at `assignment_epoch`.
    pub target: HashMap<String, Assignment>,
    /// The assignor that computed the target.
    pub assignor: String,
    /// The subscribed topics' (name, id, partitions) when the target was last computed.
    subscription_metadata: Vec<TopicInfo>,
}

/// Compiles a subscription regex (RE2-like syntax, anchored on the whole topic name as Kafka's
/// RE2J `matches` is).
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, HeartbeatError> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        err(
            GroupError::InvalidRegularExpression,
            format!("SubscribedTopicRegex `{pattern}` is not a valid regular expression: {e}"),
        )
    })
}

pub(super) fn count(a: &Assignment) -> usize {
    a.values().map(|s| s.len()).sum()
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(bs) => ps.difference(bs).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

pub(super) fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        if let Some(bs) = b.get(t) {
            let both: BTreeSet<i32> = ps.intersection(bs).copied().collect();
            if !both.is_empty() {
                out.insert(*t, both);
            }
        }
    }
    out
}

fn union_into(a: &mut Assignment, b: &Assignment) {
    for (t, ps) in b {
        a.entry(*t).or_default().extend(ps.iter().copied());
    }
}

fn normalize(a: &Assignment) -> Assignment {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (*t, ps.clone()))
        .collect()
}

impl ConsumerGroup {
    /// A new group with no members. `epoch` continues a previous (classic) generation.
    pub fn new(epoch: i32) -> ConsumerGroup {
        ConsumerGroup {
            group_epoch: epoch.max(0),
            assignment_epoch: epoch.max(0),
            members: BTreeMap::new(),
            target: HashMap::new(),
            assignor: ASSIGNORS[0].to_string(),
            subscription_metadata: Vec::new(),
        }
    }

    /// Kafka's consumer-group state names (ConsumerGroupDescribe, ListGroups).
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Topic names the group subscribes to (for DeleteTopics-style checks and describe).
    pub fn subscribed_topics(&self, topics: &[TopicInfo]) -> Vec<TopicInfo> {
        let regexes: HashMap<&str, Option<regex::Regex>> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.as_deref())
            .map(|r| (r, compile_regex(r).ok()))
            .collect();
        topics
            .iter()
            .filter(|t| {
                self.members.values().any(|m| {
                    let re = m
                        .subscribed_topic_regex
                        .as_deref()
                        .and_then(|r| regexes.get(r).and_then(|x| x.as_ref()));
                    m.subscribes_to(&t.name, re)
                })
            })
            .cloned()
            .collect()
    }

    fn bump(&mut self) {
        self.group_epoch += 1;
    }

    fn remove_member(&mut self, id: &str) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.bump();
        }
    }

    /// Handles one ConsumerGroupHeartbeat.
    pub fn heartbeat(
        &mut self,
        p: HeartbeatParams,
        topics: &[TopicInfo],
        now: Instant,
    ) -> Result<HeartbeatResult, HeartbeatError> {
        if let Some(a) = p.server_assignor.as_deref() {
            if !ASSIGNORS.contains(&a) {
                return Err(err(
                    GroupError::UnsupportedAssignor,
                    format!(
                        "ServerAssignor {a} is not supported. Supported assignors: uniform, range."
                    ),
                ));
            }
        }
        if let Some(r) = p.subscribed_topic_regex.as_deref() {
            compile_regex(r)?;
        }
        let mut changed = false;
        let mut member_id = p.member_id.clone();
        match p.member_epoch {
            -1 | -2 => return self.leave(&p, now),
            0 => (changed, member_id) = self.join(&p, now)?,
            epoch if epoch > 0 => self.validate_epoch(&p, epoch)?,
            other => {
                return Err(err(
                    GroupError::InvalidRequest,
                    format!("MemberEpoch {other} is invalid."),
                ))
            }
        }
        let Some(m) = self.members.get_mut(&member_id) else {
            return Err(err(GroupError::UnknownMemberId, "unknown member"));
        };
        m.last_seen = now;
        m.left_static = false;
        if let Some(r) = &p.rack_id {
            m.rack_id = Some(r.clone());
        }
        if let Some(names) = &p.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            if names != m.subscribed_topic_names {
                m.subscribed_topic_names = names;
                changed = true;
            }
        }
        if let Some(r) = &p.subscribed_topic_regex {
            let r = Some(r.clone()).filter(|r| !r.is_empty());
            if r != m.subscribed_topic_regex {
                m.subscribed_topic_regex = r;
                changed = true;
            }
        }
        if let Some(a) = &p.server_assignor {
            if Some(a) != m.server_assignor.as_ref() {
                m.server_assignor = Some(a.clone());
                changed = true;
            }
        }
        if p.rebalance_timeout_ms > 0 {
            m.rebalance_timeout = Duration::from_millis(p.rebalance_timeout_ms as u64);
        }
        // Topics created, deleted or grown under a subscription change the group too.
        let metadata = self.subscribed_topics(topics);
        if metadata != self.subscription_metadata {
            self.subscription_metadata = metadata;
            changed = true;
        }
        if changed {
            // One heartbeat moves the group by one epoch, whatever changed.
            self.bump();
        }
        if self.assignment_epoch < self.group_epoch {
            self.compute_target();
        }
        let before = self
            .members
            .get(&member_id)
            .map(|m| (m.epoch, m.assigned.clone()));
        self.reconcile(&member_id, p.owned.as_ref(), now);
        let Some(m) = self.members.get(&member_id) else {
            return Err(err(GroupError::UnknownMemberId, "unknown member"));
        };
        let moved = before.as_ref() != Some(&(m.epoch, m.assigned.clone()));
        let owned_differs = p.owned.as_ref().is_some_and(|o| normalize(o) != m.assigned);
        let send = p.member_epoch == 0 || moved || owned_differs;
        Ok(HeartbeatResult {
            member_id,
            member_epoch: m.epoch,
            assignment: send.then(|| m.assigned.clone()),
        })
    }

    /// The member a request is about (v0 joins get their id assigned in `join`).
    fn resolved_id(&self, p: &HeartbeatParams) -> String {
        if !p.member_id.is_empty() {
            return p.member_id.clone();
        }
        p.instance_id
            .as_ref()
            .and_then(|i| {
                self.members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(i) && !m.left_static)
            })
            .map(|m| m.id.clone())
            .unwrap_or_default()
    }

    fn leave(
        &mut self,
        p: &HeartbeatParams,
        now: Instant,
    ) -> Result<HeartbeatResult, HeartbeatError> {
        let id = if p.member_id.is_empty() {
            self.resolved_id(p)
        } else {
            p.member_id.clone()
        };
        let Some(m) = self.members.get_mut(&id) else {
            return Err(err(
                GroupError::UnknownMemberId,
                format!("Member {id} is not a member of the group."),
            ));
        };
        if p.member_epoch == -2 && m.instance_id.is_some() {
            // A static member restarting: keep its partitions for whoever takes the instance
            // id next; the session timeout removes it if nobody does.
            m.left_static = true;
            m.last_seen = now;
        } else {
            self.remove_member(&id);
        }
        Ok(HeartbeatResult {
            member_id: id,
            member_epoch: p.member_epoch,
            assignment: None,
        })
    }

    /// Registers a joining member: its id, and true if the group gained a member (a new epoch).
    fn join(
        &mut self,
        p: &HeartbeatParams,
        now: Instant,
    ) -> Result<(bool, String), HeartbeatError> {
        if p.member_id.is_empty() && !p.server_generates_member_id {
            return Err(err(GroupError::InvalidRequest, "MemberId can't be empty."));
        }
        if p.subscribed_topic_names.is_none() && p.subscribed_topic_regex.is_none() {
            return Err(err(
                GroupError::InvalidRequest,
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
            ));
        }
        if p.rebalance_timeout_ms < 0 {
            return Err(err(
                GroupError::InvalidRequest,
                "RebalanceTimeoutMs must be provided in first request.",
            ));
        }
        if p.owned.as_ref().is_some_and(|o| count(o) > 0) {
            return Err(err(
                GroupError::InvalidRequest,
                "TopicPartitions must be empty when (re-)joining.",
            ));
        }
        let id = if p.member_id.is_empty() {
            Uuid::new_v4().simple().to_string()
        } else {
            p.member_id.clone()
        };
        let mut fresh = ConsumerMember {
            id: id.clone(),
            instance_id: p.instance_id.clone(),
            rack_id: p.rack_id.clone(),
            client_id: p.client_id.clone(),
            client_host: p.client_host.clone(),
            epoch: 0,
            previous_epoch: -1,
            state: MemberState::Stable,
            rebalance_timeout: Duration::from_millis(p.rebalance_timeout_ms.max(0) as u64),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            last_seen: now,
            revoke_deadline: None,
            left_static: false,
        };
        if let Some(instance) = &p.instance_id {
            let holder = self
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance) && m.id != id)
                .map(|m| (m.id.clone(), m.left_static));
            if let Some((old_id, released)) = holder {
                if !released {
                    return Err(err(
                        GroupError::UnreleasedInstanceId,
                        format!(
                            "Static member {old_id} with instance id {instance} is not released."
                        ),
                    ));
                }
                // The successor takes the departed static member's place, partitions and epoch,
                // so nobody else rebalances.
                if let Some(old) = self.members.remove(&old_id) {
                    fresh.epoch = old.epoch;
                    fresh.previous_epoch = old.previous_epoch;
                    fresh.state = old.state;
                    fresh.assigned = old.assigned;
                    fresh.pending_revocation = old.pending_revocation;
                    fresh.subscribed_topic_names = old.subscribed_topic_names;
                    fresh.subscribed_topic_regex = old.subscribed_topic_regex;
                    fresh.server_assignor = old.server_assignor;
                    fresh.revoke_deadline = old.revoke_deadline;
                }
                if let Some(t) = self.target.remove(&old_id) {
                    self.target.insert(id.clone(), t);
                }
                self.members.insert(id.clone(), fresh);
                return Ok((false, id));
            }
        }
        if self.members.remove(&id).is_some() {
            // A known member rejoining (after being fenced): it gave up everything it owned.
            self.members.insert(id.clone(), fresh);
            return Ok((false, id));
        }
        self.members.insert(id.clone(), fresh);
        Ok((true, id))
    }

    /// Kafka's `throwIfMemberEpochIsInvalid`.
    fn validate_epoch(&self, p: &HeartbeatParams, epoch: i32) -> Result<(), HeartbeatError> {
        let Some(m) = self.members.get(&p.member_id) else {
            return Err(err(
                GroupError::UnknownMemberId,
                format!("Member {} is not a member of the group.", p.member_id),
            ));
        };
        if let (Some(i), Some(mine)) = (&p.instance_id, &m.instance_id) {
            if i != mine {
                return Err(err(GroupError::FencedInstanceId, "instance id mismatch"));
            }
        }
        let fenced = || {
            err(
                GroupError::FencedMemberEpoch,
                format!(
                    "The consumer group member has a greater member epoch ({epoch}) than the one \
                     known by the group coordinator ({}) or a smaller one that cannot be accepted.",
                    m.epoch
                ),
            )
        };
        if epoch > m.epoch {
            return Err(fenced());
        }
        if epoch < m.epoch {
            // The member may not have seen our last answer: accept its previous epoch if what
            // it owns is still its own.
            let owned_ok = p
                .owned
                .as_ref()
                .is_some_and(|o| minus(&normalize(o), &m.assigned).is_empty());
            if epoch != m.previous_epoch || !owned_ok {
                return Err(fenced());
            }
        }
        Ok(())
    }

    /// Moves one member towards its target: revoke first, then assign what is free.
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now: Instant) {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        // Partitions held (assigned or not yet revoked) by the other members.
        let mut held_by_others = Assignment::new();
        for (mid, m) in &self.members {
            if mid != id {
                union_into(&mut held_by_others, &m.assigned);
                union_into(&mut held_by_others, &m.pending_revocation);
            }
        }
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if m.state == MemberState::UnrevokedPartitions {
            let released =
                owned.is_some_and(|o| intersect(&normalize(o), &m.pending_revocation).is_empty());
            if !released {
                return;
            }
            m.pending_revocation.clear();
            m.revoke_deadline = None;
            m.state = MemberState::Stable;
        }
        if m.epoch == assignment_epoch && m.state == MemberState::Stable && m.assigned == target {
            return;
        }
        let revoke = minus(&m.assigned, &target);
        if !revoke.is_empty() {
            m.assigned = intersect(&m.assigned, &target);
            m.pending_revocation = revoke;
            m.state = MemberState::UnrevokedPartitions;
            m.revoke_deadline = Some(now + m.rebalance_timeout.max(Duration::from_secs(1)));
            return;
        }
        let wanted = minus(&target, &m.assigned);
        let free = minus(&wanted, &held_by_others);
        union_into(&mut m.assigned, &free);
        if m.epoch != assignment_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = assignment_epoch;
        }
        m.state = if count(&free) == count(&wanted) {
            MemberState::Stable
        } else {
            MemberState::UnreleasedPartitions
        };
    }

    /// Expires silent members and members that did not revoke within their rebalance
    /// timeout. Returns true if anyone was removed.
    pub fn tick(&mut self, session_timeout: Duration, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                now.duration_since(m.last_seen) > session_timeout
                    || m.revoke_deadline.is_some_and(|d| now >= d)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.remove_member(id);
        }
        gone
    }

    /// The assignor the group uses: the one most members ask for, else the default.
    fn pick_assignor(&self) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (a, n) in votes {
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((a, n));
            }
        }
        best.map_or_else(|| ASSIGNORS[0].to_string(), |(a, _)| a.to_string())
    }

    /// Computes the target assignment for the group epoch.
    fn compute_target(&mut self) {
        let assignor = self.pick_assignor();
        let regexes: HashMap<String, Option<regex::Regex>> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.clone())
            .map(|r| {
                let c = compile_regex(&r).ok();
                (r, c)
            })
            .collect();
        // Which members subscribe to each topic (members that left statically still count:
        // their successor inherits their target).
        let mut subscribers: Vec<(TopicInfo, Vec<String>)> = Vec::new();
        for t in &self.subscription_metadata {
            let subs: Vec<String> = self
                .members
                .values()
                .filter(|m| {
                    let re = m
                        .subscribed_topic_regex
                        .as_ref()
                        .and_then(|r| regexes.get(r).and_then(|x| x.as_ref()));
                    m.subscribes_to(&t.name, re)
                })
                .map(|m| m.id.clone())
                .collect();
            subscribers.push((t.clone(), subs));
        }
        let ids: Vec<String> = self.members.keys().cloned().collect();
        self.target = assignor::assign(&assignor, &ids, &subscribers, &self.target);
        self.assignor = assignor;
        self.assignment_epoch = self.group_epoch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, n: i32) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions: n,
        }
    }

    fn join(id: &str) -> HeartbeatParams {
        HeartbeatParams {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(Assignment::new()),
            ..Default::default()
        }
    }

    fn hb(id: &str, epoch: i32, owned: &Assignment) -> HeartbeatParams {
        HeartbeatParams {
            member_id: id.into(),
            member_epoch: epoch,
            owned: Some(owned.clone()),
            ..Default::default()
        }
    }

    #[test]
    fn revoke_before_assign() {
        let topics = vec![topic("t", 6)];
        let now = Instant::now();
        let mut g = ConsumerGroup::new(0);
        let a = g.heartbeat(join("a"), &topics, now).unwrap();
        assert_eq!(a.member_epoch, 1);
        let a_owned = a.assignment.unwrap();
        assert_eq!(count(&a_owned), 6);
        // b joins: it gets nothing until a released its share.
        let b = g.heartbeat(join("b"), &topics, now).unwrap();
        assert_eq!(b.member_epoch, 2);
        assert_eq!(count(b.assignment.as_ref().unwrap()), 0);
        let a2 = g.heartbeat(hb("a", 1, &a_owned), &topics, now).unwrap();
        assert_eq!(a2.member_epoch, 1, "a keeps its epoch until it revoked");
        let a_kept = a2.assignment.unwrap();
        assert_eq!(count(&a_kept), 3);
        let b2 = g
            .heartbeat(hb("b", 2, &Assignment::new()), &topics, now)
            .unwrap();
        assert!(b2.assignment.is_none(), "still held by a");
        let a3 = g.heartbeat(hb("a", 1, &a_kept), &topics, now).unwrap();
        assert_eq!(a3.member_epoch, 2);
        let b3 = g
            .heartbeat(hb("b", 2, &Assignment::new()), &topics, now)
            .unwrap();
        let b_owned = b3.assignment.unwrap();
        assert_eq!(count(&b_owned), 3);
        assert!(intersect(&b_owned, &a_kept).is_empty());
        assert_eq!(g.state_name(), "Stable");
        // Epoch errors.
        let e = g.heartbeat(hb("b", 5, &b_owned), &topics, now).unwrap_err();
        assert_eq!(e.error, GroupError::FencedMemberEpoch);
        let e = g
            .heartbeat(hb("zz", 5, &b_owned), &topics, now)
            .unwrap_err();
        assert_eq!(e.error, GroupError::UnknownMemberId);
        let mut bad = join("c");
        bad.server_assignor = Some("sticky".into());
        assert_eq!(
            g.heartbeat(bad, &topics, now).unwrap_err().error,
            GroupError::UnsupportedAssignor
        );
        // a leaves: b takes everything.
        let left = g.heartbeat(hb("a", -1, &a_kept), &topics, now).unwrap();
        assert_eq!(left.member_epoch, -1);
        let b4 = g.heartbeat(hb("b", 2, &b_owned), &topics, now).unwrap();
        assert_eq!(count(b4.assignment.as_ref().unwrap()), 6);
    }

    #[test]
    fn regex_is_anchored() {
        let r = compile_regex("orders-.*").unwrap();
        assert!(r.is_match("orders-1"));
        assert!(!r.is_match("x-orders-1"));
        assert_eq!(
            compile_regex("(").unwrap_err().error,
            GroupError::InvalidRegularExpression
        );
    }
}
