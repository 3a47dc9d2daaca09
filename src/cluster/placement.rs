//! Where new partitions go: replica assignment across the live brokers, as Kafka does it.
//!
//! Brokers are ordered so that racks alternate (Kafka's rack-aware list: one broker of each
//! rack in turn), a random start spreads the first replicas (the preferred leaders) over that
//! list round-robin, and the further replicas follow at a shift that changes every full round,
//! so replicas of consecutive partitions do not pile onto the same pairs of brokers.

use std::collections::BTreeMap;

use crate::common::NodeId;
use crate::metadata::image::{BrokerRegistration, PartitionPlacement};

/// Why replicas could not be assigned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("replication factor {wanted} is larger than the {available} live brokers")]
    NotEnoughBrokers { wanted: usize, available: usize },
}

/// Brokers ordered so that consecutive ones are on different racks where possible.
fn rack_alternating(brokers: &[&BrokerRegistration]) -> Vec<NodeId> {
    let mut by_rack: BTreeMap<&str, Vec<NodeId>> = BTreeMap::new();
    for broker in brokers {
        by_rack
            .entry(broker.rack.as_deref().unwrap_or(""))
            .or_default()
            .push(broker.id);
    }
    for ids in by_rack.values_mut() {
        ids.sort();
    }
    let mut ordered = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while ordered.len() < brokers.len() {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(round) {
                ordered.push(*id);
            }
        }
        round += 1;
    }
    ordered
}

/// Placements for partitions `first..first + count` with `replication_factor` replicas each,
/// over `brokers` (the live ones). `seed` picks the starting broker (random in production,
/// fixed in tests).
pub fn assign(
    brokers: &[&BrokerRegistration],
    first: usize,
    count: usize,
    replication_factor: usize,
    seed: u64,
) -> Result<Vec<PartitionPlacement>, PlacementError> {
    let ordered = rack_alternating(brokers);
    let n = ordered.len();
    if replication_factor == 0 || replication_factor > n {
        return Err(PlacementError::NotEnoughBrokers {
            wanted: replication_factor,
            available: n,
        });
    }
    let rack_of = |id: NodeId| {
        brokers
            .iter()
            .find(|b| b.id == id)
            .and_then(|b| b.rack.as_deref())
    };
    let racks = {
        let mut all: Vec<Option<&str>> = ordered.iter().map(|id| rack_of(*id)).collect();
        all.sort();
        all.dedup();
        all.len()
    };
    let start = (seed % n as u64) as usize;
    let shift_base = (seed / n as u64 % n as u64) as usize;
    Ok((first..first + count)
        .map(|p| {
            let leader = (start + p) % n;
            let shift = if n > 1 {
                1 + (shift_base + p / n) % (n - 1)
            } else {
                0
            };
            let mut replicas = vec![ordered[leader]];
            // First pass: only brokers on racks that hold no replica yet (while such racks
            // remain); second pass: any broker not chosen yet.
            for rack_aware in [true, false] {
                for k in 0..n {
                    if replicas.len() == replication_factor {
                        break;
                    }
                    let candidate = ordered[(leader + shift + k) % n];
                    if replicas.contains(&candidate) {
                        continue;
                    }
                    let used: Vec<Option<&str>> = replicas.iter().map(|r| rack_of(*r)).collect();
                    if rack_aware && used.len() < racks && used.contains(&rack_of(candidate)) {
                        continue;
                    }
                    replicas.push(candidate);
                }
            }
            PartitionPlacement::new(replicas)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32, rack: Option<&str>) -> BrokerRegistration {
        BrokerRegistration {
            id: NodeId(id),
            incarnation: uuid::Uuid::nil(),
            host: "localhost".into(),
            port: 9092,
            rack: rack.map(str::to_string),
            fenced: false,
            shutting_down: false,
            metadata_endpoint: None,
        }
    }

    #[test]
    fn leaders_spread_evenly_and_replicas_are_distinct() {
        let brokers: Vec<BrokerRegistration> = (1..=3).map(|i| broker(i, None)).collect();
        let refs: Vec<&BrokerRegistration> = brokers.iter().collect();
        for seed in 0..20 {
            let placements = assign(&refs, 0, 6, 3, seed).unwrap();
            let mut leaders = BTreeMap::new();
            for p in &placements {
                *leaders.entry(p.leader).or_insert(0) += 1;
                let mut r = p.replicas.clone();
                r.sort();
                r.dedup();
                assert_eq!(r.len(), 3, "{p:?}");
            }
            assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        }
    }

    #[test]
    fn replicas_of_a_partition_land_on_different_racks() {
        let brokers = [
            broker(1, Some("a")),
            broker(2, Some("a")),
            broker(3, Some("b")),
            broker(4, Some("b")),
        ];
        let refs: Vec<&BrokerRegistration> = brokers.iter().collect();
        let rack = |id: NodeId| brokers.iter().find(|b| b.id == id).unwrap().rack.clone();
        for seed in 0..8 {
            for p in assign(&refs, 0, 8, 2, seed).unwrap() {
                assert_ne!(rack(p.replicas[0]), rack(p.replicas[1]), "{p:?}");
            }
        }
    }

    #[test]
    fn too_few_brokers_is_refused() {
        let brokers = [broker(1, None)];
        let refs: Vec<&BrokerRegistration> = brokers.iter().collect();
        assert_eq!(
            assign(&refs, 0, 1, 2, 0),
            Err(PlacementError::NotEnoughBrokers {
                wanted: 2,
                available: 1
            })
        );
    }
}
