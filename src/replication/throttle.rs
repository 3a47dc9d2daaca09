//! Replication throttles (`kafka-reassign-partitions --throttle`): the broker-level rates
//! `leader.replication.throttled.rate` (bytes a second this broker serves to followers) and
//! `follower.replication.throttled.rate` (bytes a second it fetches as a follower), applied
//! only to the replicas the topic configs `leader.replication.throttled.replicas` /
//! `follower.replication.throttled.replicas` list (`partition:broker` pairs, or `*`). Over the
//! rate, throttled partitions get no data this round (leader) or are left out of the next
//! fetch (follower), as Kafka's ReplicationQuotaManager does; others are never slowed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::NodeId;
use crate::metadata::TopicMeta;

/// Which side of replication a throttle applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Leader,
    Follower,
}

impl Side {
    fn topic_config(self) -> &'static str {
        match self {
            Side::Leader => "leader.replication.throttled.replicas",
            Side::Follower => "follower.replication.throttled.replicas",
        }
    }
}

/// True if `topic`'s `partition` on broker `me` is listed for throttling on `side`.
pub fn is_throttled(topic: &TopicMeta, partition: i32, me: NodeId, side: Side) -> bool {
    let Some(list) = topic.configs.get(side.topic_config()) else {
        return false;
    };
    list.split(',').map(str::trim).any(|entry| {
        entry == "*"
            || entry.split_once(':').is_some_and(|(p, b)| {
                p.trim().parse::<i32>().ok() == Some(partition)
                    && b.trim().parse::<i32>().ok() == Some(me.get())
            })
    })
}

/// A bytes-per-second budget over one-second windows.
#[derive(Debug)]
pub struct Rate {
    state: Mutex<RateState>,
}

#[derive(Debug)]
struct RateState {
    limit: u64,
    window_start: Instant,
    used: u64,
}

const WINDOW: Duration = Duration::from_secs(1);

impl Default for Rate {
    fn default() -> Self {
        Rate {
            state: Mutex::new(RateState {
                limit: u64::MAX,
                window_start: Instant::now(),
                used: 0,
            }),
        }
    }
}

impl Rate {
    fn lock(&self) -> std::sync::MutexGuard<'_, RateState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the limit (bytes a second; `u64::MAX` is none).
    pub fn set_limit(&self, limit: u64) {
        self.lock().limit = limit;
    }

    /// True if the budget of the current window is spent.
    pub fn exceeded(&self) -> bool {
        let mut g = self.lock();
        if g.limit == u64::MAX {
            return false;
        }
        if g.window_start.elapsed() >= WINDOW {
            g.window_start = Instant::now();
            g.used = 0;
        }
        g.used >= g.limit
    }

    /// Counts `bytes` against the current window.
    pub fn record(&self, bytes: u64) {
        let mut g = self.lock();
        if g.limit == u64::MAX {
            return;
        }
        if g.window_start.elapsed() >= WINDOW {
            g.window_start = Instant::now();
            g.used = 0;
        }
        g.used = g.used.saturating_add(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn listed_replicas_are_throttled_on_their_side_only() {
        let mut configs = BTreeMap::new();
        configs.insert(
            "leader.replication.throttled.replicas".to_string(),
            "0:1, 1:2".to_string(),
        );
        configs.insert(
            "follower.replication.throttled.replicas".to_string(),
            "*".to_string(),
        );
        let topic = TopicMeta {
            name: "t".into(),
            id: crate::common::TopicId::random(),
            partitions: 2,
            configs,
            placements: Vec::new(),
        };
        assert!(is_throttled(&topic, 0, NodeId(1), Side::Leader));
        assert!(!is_throttled(&topic, 0, NodeId(2), Side::Leader));
        assert!(is_throttled(&topic, 1, NodeId(2), Side::Leader));
        assert!(is_throttled(&topic, 1, NodeId(7), Side::Follower));
    }

    #[test]
    fn a_rate_is_spent_within_a_window() {
        let rate = Rate::default();
        rate.record(1 << 30);
        assert!(!rate.exceeded(), "no limit by default");
        rate.set_limit(100);
        rate.record(60);
        assert!(!rate.exceeded());
        rate.record(60);
        assert!(rate.exceeded());
    }
}
