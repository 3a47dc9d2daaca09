//! Committed offsets of one group: the membership checks of OffsetCommit, TxnOffsetCommit and
//! OffsetFetch, commits applied in log order, transactional offsets pending until their marker,
//! and offset expiry (KIP-211).

use std::time::Instant;

use crate::group::error::GroupError;

use super::{Group, GroupState};

/// A committed offset and where its record sits in `__consumer_offsets` (to apply commits
/// that finish out of order in log order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    pub log_position: i64,
}

impl Group {
    /// Checks an OffsetCommit's membership claims, in Kafka's order.
    pub fn validate_commit(
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
        if generation < 0 && self.state == GroupState::Empty {
            // A standalone (manual-assignment or admin) commit.
            return Ok(());
        }
        if let Some(c) = &mut self.kip848 {
            // KIP-848: generation_id_or_member_epoch carries the member epoch.
            let Some(m) = c.members.get_mut(member_id) else {
                return Err(GroupError::UnknownMemberId);
            };
            if generation != m.epoch {
                return Err(GroupError::StaleMemberEpoch);
            }
            m.last_seen = now;
            return Ok(());
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        let current = self.generation;
        let Some(m) = self.member_mut(member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        if generation != current {
            return Err(GroupError::IllegalGeneration);
        }
        // A commit proves the member is alive, as a heartbeat does.
        m.last_seen = now;
        Ok(())
    }

    /// Checks a TxnOffsetCommit's membership claims, in Kafka's order: an empty member id and
    /// a negative generation skip the checks (a producer committing for a group it is not in).
    pub fn validate_txn_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::GroupDead);
        }
        if self.fenced(member_id, instance_id) {
            return Err(GroupError::FencedInstanceId);
        }
        if let Some(c) = &self.kip848 {
            if member_id.is_empty() {
                return Ok(());
            }
            let Some(m) = c.members.get(member_id) else {
                return Err(GroupError::UnknownMemberId);
            };
            if generation >= 0 && generation != m.epoch {
                return Err(GroupError::IllegalGeneration);
            }
            return Ok(());
        }
        if !member_id.is_empty() && self.member(member_id).is_none() {
            return Err(GroupError::UnknownMemberId);
        }
        if generation >= 0 && generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// Records a transactional offset of `producer_id`, pending until its transaction ends.
    pub fn add_pending_txn_offset(
        &mut self,
        producer_id: i64,
        topic: &str,
        partition: i32,
        c: Committed,
    ) {
        self.pending_txn_offsets
            .entry(producer_id)
            .or_default()
            .insert((topic.to_string(), partition), c);
    }

    /// Ends `producer_id`'s transaction for this group: its pending offsets become committed
    /// (in log order, as for plain commits) or are dropped. Returns how many were applied.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool) -> usize {
        let Some(pending) = self.pending_txn_offsets.remove(&producer_id) else {
            return 0;
        };
        if !commit {
            return 0;
        }
        let n = pending.len();
        for ((topic, partition), c) in pending {
            self.apply_commit(&topic, partition, c);
        }
        n
    }

    /// True if some transaction has an uncommitted offset for the partition (OffsetFetch with
    /// require_stable answers UNSTABLE_OFFSET_COMMIT for it).
    pub fn has_pending_txn_offset(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.pending_txn_offsets
            .values()
            .any(|m| m.contains_key(&key))
    }

    /// Applies a durable commit unless a later one for the same partition already landed.
    pub fn apply_commit(&mut self, topic: &str, partition: i32, c: Committed) {
        let key = (topic.to_string(), partition);
        match self.offsets.get(&key) {
            Some(old) if old.log_position > c.log_position => {}
            _ => {
                self.offsets.insert(key, c);
            }
        }
    }

    /// Offsets due for deletion at `now_ms` under `offsets.retention.minutes` (KIP-211): in an
    /// Empty consumer group, all of them once the group has been Empty for the retention
    /// period; in a group that never had members (standalone commits), each once it is that old.
    /// Offsets of groups with members never expire.
    pub fn expired_offsets(&self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        if self.state != GroupState::Empty {
            return Vec::new();
        }
        self.offsets
            .iter()
            .filter(|(_, c)| {
                let base = if self.protocol_type.is_some() {
                    self.state_timestamp
                } else {
                    c.commit_timestamp
                };
                base.saturating_add(retention_ms) <= now_ms
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Validates an OffsetFetch's member claims (v9+) against a KIP-848 group; classic groups
    /// and admin fetches (no member id) always pass.
    pub fn validate_fetch(
        &self,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        let (Some(c), Some(id)) = (&self.kip848, member_id) else {
            return Ok(());
        };
        if id.is_empty() && member_epoch < 0 {
            return Ok(());
        }
        let Some(m) = c.members.get(id) else {
            return Err(GroupError::UnknownMemberId);
        };
        if member_epoch != m.epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cfg, done, params};
    use super::*;

    #[test]
    fn offsets_expire_only_in_empty_groups_after_retention() {
        let mut g = Group::new("g");
        let commit = |ts| Committed {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: ts,
            log_position: 0,
        };
        // Standalone commits: each offset ages from its own commit.
        g.apply_commit("t", 0, commit(1_000));
        g.apply_commit("t", 1, commit(5_000));
        assert_eq!(g.expired_offsets(6_000, 4_000), vec![("t".to_string(), 0)]);
        // A consumer group: everything ages from the moment it became Empty.
        let now = Instant::now();
        let j = done(g.join(params("", &["range"]), &cfg(), now));
        assert!(
            g.expired_offsets(i64::MAX / 2, 1).is_empty(),
            "members keep offsets"
        );
        g.leave(&j.member_id, None, &cfg(), now).unwrap();
        assert_eq!(g.state, GroupState::Empty);
        let empty_since = g.state_timestamp;
        assert!(g.expired_offsets(empty_since + 10, 100).is_empty());
        assert_eq!(g.expired_offsets(empty_since + 100, 100).len(), 2);
        assert!(!g.is_forgettable(i64::MAX), "offsets remain");
        g.offsets.clear();
        assert!(g.is_forgettable(empty_since + 1));
        assert!(!g.is_forgettable(empty_since));
    }

    fn committed_at(offset: i64, log_position: i64) -> Committed {
        Committed {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
            log_position,
        }
    }

    #[test]
    fn transactional_offsets_apply_on_commit_and_vanish_on_abort() {
        let mut g = Group::new("g");
        g.add_pending_txn_offset(7, "t", 0, committed_at(10, 5));
        g.add_pending_txn_offset(8, "t", 1, committed_at(20, 6));
        assert!(g.has_pending_txn_offset("t", 0) && g.has_pending_txn_offset("t", 1));
        assert!(g.offsets.is_empty(), "nothing committed before the marker");
        assert!(
            !g.is_forgettable(i64::MAX),
            "pending offsets keep the group"
        );
        assert_eq!(g.complete_txn(7, true), 1);
        assert_eq!(g.offsets[&("t".to_string(), 0)].offset, 10);
        assert_eq!(g.complete_txn(8, false), 0);
        assert!(!g.offsets.contains_key(&("t".to_string(), 1)));
        assert!(!g.has_pending_txn_offset("t", 1));
        assert_eq!(g.complete_txn(7, true), 0, "a second marker finds nothing");
        // A later plain commit wins over an older transactional one (log order).
        g.apply_commit("t", 2, committed_at(99, 50));
        g.add_pending_txn_offset(9, "t", 2, committed_at(1, 40));
        g.complete_txn(9, true);
        assert_eq!(g.offsets[&("t".to_string(), 2)].offset, 99);
    }

    #[test]
    fn txn_commit_membership_checks_follow_kafka() {
        let mut g = Group::new("g");
        assert_eq!(g.validate_txn_commit("", None, -1), Ok(()));
        assert_eq!(
            g.validate_txn_commit("nobody", None, -1),
            Err(GroupError::UnknownMemberId)
        );
        assert_eq!(
            g.validate_txn_commit("", None, 3),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(g.validate_txn_commit("", None, 0), Ok(()));
        g.static_members.insert("i".into(), "m1".into());
        assert_eq!(
            g.validate_txn_commit("m2", Some("i"), -1),
            Err(GroupError::FencedInstanceId)
        );
        g.mark_dead();
        assert_eq!(
            g.validate_txn_commit("", None, -1),
            Err(GroupError::GroupDead)
        );
    }
}
