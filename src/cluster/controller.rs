//! The active controller's duties that need a clock: fencing brokers that went silent and
//! unfencing them when they are back (KRaft's broker heartbeat manager), and making newly
//! registered broker-only nodes observers of the metadata log.
//!
//! Every node runs [`run_fencing`]; only the node that leads the quorum acts. In combined mode
//! (every node a voter) the leader's Raft heartbeats reach every node several times per
//! election timeout, so the time since a node last answered one is that broker's heartbeat
//! age: past `broker.session.timeout.ms` the broker is fenced (its partitions show no leader
//! and clients stop being sent to it), and once it answers again it is unfenced — unless it
//! fenced itself in a controlled shutdown, which only its next registration undoes.
//!
//! The leader also keeps partitions led (KRaft's `PartitionChangeBuilder`): a fenced broker
//! leaves every ISR it is in, and a partition whose leader is fenced gets a new leader from
//! its remaining in-sync replicas, with the leader epoch bumped; with none left it stays
//! offline (its last in-sync replica keeps the leadership and leads again when it returns)
//! unless `unclean.leader.election.enable` lets an out-of-sync replica take over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::MetadataQuorum;
use crate::common::NodeId;
use crate::metadata::{
    ConfigScope, MetadataCommand, MetadataImage, MetadataRecord, PartitionPlacement, Precondition,
};

const UNCLEAN_ELECTION: &str = "unclean.leader.election.enable";

/// The leadership and ISR changes the image calls for now: fenced brokers out of every ISR,
/// a new leader from the ISR (in replica order, so the preferred replica first) where the
/// leader is fenced, and an unclean one where the topic allows it and no in-sync replica is
/// live. Each change is a compare-and-set on the partition epoch. Pure, for the tests.
pub fn partition_changes(image: &MetadataImage, unclean_default: bool) -> Vec<MetadataCommand> {
    let broker_default = image
        .configs(ConfigScope::Broker, "")
        .get(UNCLEAN_ELECTION)
        .map(|v| v == "true");
    let mut commands = Vec::new();
    for topic in image.topics() {
        let unclean = topic
            .configs
            .get(UNCLEAN_ELECTION)
            .map(|v| v == "true")
            .or(broker_default)
            .unwrap_or(unclean_default);
        for (index, placement) in topic.placements.iter().enumerate() {
            let Some(next) = next_placement(image, placement, unclean) else {
                continue;
            };
            let partition = i32::try_from(index).unwrap_or(i32::MAX);
            commands.push(MetadataCommand::partition_change(
                &topic.name,
                partition,
                placement.partition_epoch,
                next,
            ));
        }
    }
    commands
}

/// Kafka's automatic preferred-leader balancing (`auto.leader.rebalance.enable`): for each
/// broker that is the preferred replica (the first) of more partitions it does not lead than
/// `imbalance_percent` of those it is preferred for, the partitions where it is live and in
/// sync move back to it, with the leader epoch bumped. Pure, for the tests.
pub fn preferred_leader_changes(
    image: &MetadataImage,
    imbalance_percent: u32,
) -> Vec<MetadataCommand> {
    use std::collections::BTreeMap;
    let mut preferred: BTreeMap<NodeId, (usize, usize)> = BTreeMap::new();
    for topic in image.topics() {
        for placement in &topic.placements {
            if let Some(first) = placement.replicas.first() {
                let entry = preferred.entry(*first).or_default();
                entry.0 += 1;
                if placement.leader != *first {
                    entry.1 += 1;
                }
            }
        }
    }
    let imbalanced = |broker: &NodeId| {
        preferred.get(broker).is_some_and(|(total, not_led)| {
            *not_led * 100 > *total * usize::try_from(imbalance_percent).unwrap_or(usize::MAX)
        })
    };
    let mut commands = Vec::new();
    for topic in image.topics() {
        for (index, placement) in topic.placements.iter().enumerate() {
            let Some(first) = placement.replicas.first().copied() else {
                continue;
            };
            let movable = placement.leader != first
                && image.is_live(first)
                && placement.isr().contains(&first)
                && imbalanced(&first);
            if !movable {
                continue;
            }
            let partition = i32::try_from(index).unwrap_or(i32::MAX);
            commands.push(MetadataCommand::partition_change(
                &topic.name,
                partition,
                placement.partition_epoch,
                PartitionPlacement {
                    replicas: placement.replicas.clone(),
                    leader: first,
                    leader_epoch: placement.leader_epoch.next(),
                    isr: placement.isr(),
                    partition_epoch: placement.partition_epoch + 1,
                    ..placement.clone()
                },
            ));
        }
    }
    commands
}

/// The placement `placement` should become, or `None` if it is as it should be.
fn next_placement(
    image: &MetadataImage,
    placement: &PartitionPlacement,
    unclean: bool,
) -> Option<PartitionPlacement> {
    fenced_out(image, placement, unclean).or_else(|| reassignment_done(image, placement))
}

/// A reassignment whose target replicas are all in sync completes (KIP-455): the replicas
/// being removed leave the replica list and the ISR, and if the leader is one of them the
/// first in-sync target replica takes over under a new leader epoch.
fn reassignment_done(
    image: &MetadataImage,
    placement: &PartitionPlacement,
) -> Option<PartitionPlacement> {
    if !placement.is_reassigning() {
        return None;
    }
    let target = placement.target_replicas();
    let isr = placement.isr();
    if !target.iter().all(|r| isr.contains(r)) {
        return None;
    }
    let new_isr: Vec<NodeId> = isr.iter().copied().filter(|r| target.contains(r)).collect();
    let leader = if target.contains(&placement.leader) {
        placement.leader
    } else {
        target
            .iter()
            .copied()
            .find(|r| image.is_live(*r))
            .unwrap_or(target[0])
    };
    Some(PartitionPlacement {
        replicas: target,
        leader,
        leader_epoch: if leader == placement.leader {
            placement.leader_epoch
        } else {
            placement.leader_epoch.next()
        },
        isr: new_isr,
        partition_epoch: placement.partition_epoch + 1,
        adding: Vec::new(),
        removing: Vec::new(),
    })
}

/// Fenced brokers out of the ISR, and a new leader where the leader is fenced.
fn fenced_out(
    image: &MetadataImage,
    placement: &PartitionPlacement,
    unclean: bool,
) -> Option<PartitionPlacement> {
    let isr = placement.isr();
    let live_isr: Vec<NodeId> = isr.iter().copied().filter(|r| image.is_live(*r)).collect();
    let leader_live = image.is_live(placement.leader);
    if leader_live && live_isr.len() == isr.len() {
        return None;
    }
    let (leader, new_isr) = if leader_live {
        (placement.leader, live_isr)
    } else if let Some(next) = placement
        .replicas
        .iter()
        .copied()
        .find(|r| live_isr.contains(r))
    {
        (next, live_isr)
    } else if let Some(next) = placement
        .replicas
        .iter()
        .copied()
        .find(|r| unclean && image.is_live(*r))
    {
        tracing::warn!(leader = %next, "unclean leader election: acknowledged records may be lost");
        (next, vec![next])
    } else {
        // No replica may lead: the last in-sync one keeps the partition and leads it again
        // when it returns (its ISR is left as it was, as Kafka leaves the last ISR member).
        return None;
    };
    let leader_epoch = if leader == placement.leader {
        placement.leader_epoch
    } else {
        placement.leader_epoch.next()
    };
    Some(PartitionPlacement {
        replicas: placement.replicas.clone(),
        leader,
        leader_epoch,
        isr: new_isr,
        partition_epoch: placement.partition_epoch + 1,
        ..placement.clone()
    })
}

/// How often the leader looks at the brokers' liveness.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The fencing records to commit now, given the liveness the leader sees: brokers silent for
/// `session_timeout` are fenced, answering ones unfenced. `grace` is true while this node has
/// led for less than a session timeout (it has not yet heard from everyone, so it fences
/// nobody). Pure, for the tests.
pub fn fencing_changes(
    brokers: &[(NodeId, bool, bool)],
    last_contact: impl Fn(NodeId) -> Option<Duration>,
    session_timeout: Duration,
    grace: bool,
) -> Vec<MetadataRecord> {
    brokers
        .iter()
        .filter_map(|(id, fenced, shutting_down)| {
            let alive = last_contact(*id).is_some_and(|ago| ago < session_timeout);
            if alive && *fenced && !*shutting_down {
                Some(MetadataRecord::BrokerFenced {
                    id: *id,
                    fenced: false,
                })
            } else if !alive && !*fenced && !grace {
                Some(MetadataRecord::BrokerFenced {
                    id: *id,
                    fenced: true,
                })
            } else {
                None
            }
        })
        .collect()
}

/// The active controller's settings.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    pub me: NodeId,
    /// `broker.session.timeout.ms`.
    pub session_timeout: Duration,
    /// The broker default of `unclean.leader.election.enable`.
    pub unclean_default: bool,
    /// `auto.leader.rebalance.enable`, `leader.imbalance.check.interval.seconds`,
    /// `leader.imbalance.per.broker.percentage`.
    pub auto_leader_rebalance: bool,
    pub imbalance_check_interval: Duration,
    pub imbalance_percent: u32,
}

/// Fences and unfences brokers, and keeps partitions led, while this node leads the quorum,
/// until shutdown.
pub async fn run_fencing(
    quorum: Arc<dyn MetadataQuorum>,
    settings: ControllerSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let me = settings.me;
    let session_timeout = settings.session_timeout;
    let mut leading_since: Option<Instant> = None;
    let mut last_balance = Instant::now();
    loop {
        let asleep_at = Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        // A sleep that ends far later than asked means this process was paused (SIGSTOP, a
        // stalled VM): every contact time it holds is stale, and so may its leadership be.
        // Start over as a new leader, with a full session of grace before fencing anyone.
        // (Only the sleep is timed: a proposal that waits for a new quorum leader is no pause.)
        let slept = asleep_at.elapsed();
        if slept > CHECK_INTERVAL + session_timeout / 2 {
            tracing::warn!(
                slept_ms = slept.as_millis() as u64,
                "controller loop was paused; not fencing on the liveness seen before"
            );
            leading_since = None;
        }
        let status = quorum.status();
        if status.leader != Some(me) {
            leading_since = None;
            continue;
        }
        let since = *leading_since.get_or_insert_with(Instant::now);
        // Every decision below is this term's: dropped if it reaches the log in another.
        let in_term = |mut command: MetadataCommand| {
            command
                .preconditions
                .push(Precondition::ControllerTerm(status.term));
            command
        };
        let image = quorum.image();
        // Broker-only nodes that registered but do not follow the log yet.
        for broker in image.brokers() {
            let known = status
                .voters
                .iter()
                .chain(&status.observers)
                .any(|v| v.id == broker.id);
            if let (false, Some(endpoint)) = (known, &broker.metadata_endpoint) {
                tracing::info!(broker = %broker.id, endpoint, "adding a broker-only node as an observer of the metadata log");
                if let Err(e) = quorum.add_observer(broker.id, endpoint.clone()).await {
                    tracing::warn!(broker = %broker.id, "cannot add observer: {e}");
                }
            }
        }
        let brokers: Vec<(NodeId, bool, bool)> = image
            .brokers()
            .map(|b| (b.id, b.fenced, b.shutting_down))
            .collect();
        let contact = |id: NodeId| {
            status
                .voters
                .iter()
                .chain(&status.observers)
                .find(|v| v.id == id)
                .and_then(|v| v.last_contact)
        };
        let records = fencing_changes(
            &brokers,
            contact,
            session_timeout,
            since.elapsed() < session_timeout,
        );
        // Leaders and ISRs follow the fencing committed so far (this round's fencing is acted
        // on next round, once it is in the image).
        let mut changes = partition_changes(&image, settings.unclean_default);
        if changes.is_empty()
            && settings.auto_leader_rebalance
            && last_balance.elapsed() >= settings.imbalance_check_interval
        {
            last_balance = Instant::now();
            changes = preferred_leader_changes(&image, settings.imbalance_percent);
        }
        for command in changes {
            if let Some(MetadataRecord::PartitionChange {
                name,
                partition,
                placement,
            }) = command.records.first()
            {
                tracing::info!(topic = %name, partition, leader = %placement.leader, leader_epoch = placement.leader_epoch.get(), isr = ?placement.isr, "partition leadership changed");
            }
            if let Err(e) = quorum.propose(in_term(command)).await {
                tracing::warn!("cannot commit a partition change: {e}");
            }
        }
        if records.is_empty() {
            continue;
        }
        for record in &records {
            if let MetadataRecord::BrokerFenced { id, fenced } = record {
                tracing::info!(broker = %id, fenced, "broker liveness changed");
            }
        }
        match quorum
            .propose(in_term(MetadataCommand::unconditional(records)))
            .await
        {
            Ok(committed) if committed.rejected.is_some() => {
                tracing::warn!("broker fencing dropped: this node no longer leads the quorum")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot commit broker fencing: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_brokers_are_fenced_and_answering_ones_unfenced() {
        let timeout = Duration::from_secs(9);
        let contact = |id: NodeId| match id.get() {
            1 => Some(Duration::ZERO),
            2 => Some(Duration::from_secs(10)),
            5 => Some(Duration::ZERO),
            3 => Some(Duration::from_secs(1)),
            _ => None,
        };
        let brokers = [
            (NodeId(1), false, false),
            (NodeId(2), false, false),
            (NodeId(3), true, false),
            (NodeId(4), false, false),
            // Answering, but fenced by its own controlled shutdown: stays fenced.
            (NodeId(5), true, true),
        ];
        let changes = fencing_changes(&brokers, contact, timeout, false);
        assert_eq!(
            changes,
            vec![
                MetadataRecord::BrokerFenced {
                    id: NodeId(2),
                    fenced: true
                },
                MetadataRecord::BrokerFenced {
                    id: NodeId(3),
                    fenced: false
                },
                MetadataRecord::BrokerFenced {
                    id: NodeId(4),
                    fenced: true
                },
            ]
        );
        let during_grace = fencing_changes(&brokers, contact, timeout, true);
        assert_eq!(
            during_grace,
            vec![MetadataRecord::BrokerFenced {
                id: NodeId(3),
                fenced: false
            }],
            "a new leader fences nobody before it could have heard from everyone"
        );
    }

    fn image(live: &[i32], fenced: &[i32], placement: PartitionPlacement) -> MetadataImage {
        use crate::metadata::{BrokerRegistration, TopicMeta};
        let mut image = MetadataImage::default();
        for (id, is_fenced) in live
            .iter()
            .map(|id| (*id, false))
            .chain(fenced.iter().map(|id| (*id, true)))
        {
            image.apply(&MetadataRecord::RegisterBroker(BrokerRegistration {
                id: NodeId(id),
                incarnation: uuid::Uuid::nil(),
                host: "h".into(),
                port: 1,
                rack: None,
                fenced: is_fenced,
                shutting_down: false,
                metadata_endpoint: None,
            }));
        }
        image.apply(&MetadataRecord::Topic(TopicMeta {
            name: "t".into(),
            id: crate::common::TopicId::random(),
            partitions: 1,
            configs: Default::default(),
            placements: vec![placement],
        }));
        image
    }

    fn placement(replicas: &[i32], leader: i32, isr: &[i32]) -> PartitionPlacement {
        PartitionPlacement {
            replicas: replicas.iter().map(|r| NodeId(*r)).collect(),
            leader: NodeId(leader),
            leader_epoch: crate::common::LeaderEpoch(4),
            isr: isr.iter().map(|r| NodeId(*r)).collect(),
            partition_epoch: 7,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    #[test]
    fn a_reassignment_completes_once_every_target_replica_is_in_sync() {
        let mut p = placement(&[4, 1, 2], 1, &[1, 2]);
        p.adding = vec![NodeId(4)];
        p.removing = vec![NodeId(2)];
        let img = image(&[1, 2, 4], &[], p.clone());
        assert!(
            partition_changes(&img, false).is_empty(),
            "4 not caught up yet"
        );
        p.isr = vec![NodeId(1), NodeId(2), NodeId(4)];
        let img = image(&[1, 2, 4], &[], p);
        let next = changed(&partition_changes(&img, false)).expect("done");
        assert_eq!(next.replicas, vec![NodeId(4), NodeId(1)]);
        assert_eq!(next.isr, vec![NodeId(1), NodeId(4)]);
        assert_eq!((next.leader, next.leader_epoch.get()), (NodeId(1), 4));
        assert!(!next.is_reassigning());
    }

    fn changed(commands: &[MetadataCommand]) -> Option<PartitionPlacement> {
        match commands {
            [] => None,
            [c] => match c.records.as_slice() {
                [MetadataRecord::PartitionChange { placement, .. }] => Some(placement.clone()),
                other => panic!("{other:?}"),
            },
            more => panic!("{more:?}"),
        }
    }

    #[test]
    fn a_fenced_leader_is_replaced_from_the_isr_and_fenced_followers_leave_it() {
        let img = image(&[2, 3], &[1], placement(&[1, 2, 3], 1, &[1, 2, 3]));
        let next = changed(&partition_changes(&img, false)).expect("a change");
        assert_eq!(
            next.leader,
            NodeId(2),
            "first in-sync replica in replica order"
        );
        assert_eq!(next.leader_epoch.get(), 5);
        assert_eq!(next.isr, vec![NodeId(2), NodeId(3)]);
        assert_eq!(next.partition_epoch, 8);

        let img = image(&[1, 2], &[3], placement(&[1, 2, 3], 1, &[1, 2, 3]));
        let next = changed(&partition_changes(&img, false)).expect("a change");
        assert_eq!(next.leader, NodeId(1));
        assert_eq!(next.leader_epoch.get(), 4, "same leader, same epoch");
        assert_eq!(next.isr, vec![NodeId(1), NodeId(2)]);

        let img = image(&[1, 2, 3], &[], placement(&[1, 2, 3], 1, &[1, 2, 3]));
        assert!(partition_changes(&img, false).is_empty(), "nothing to do");
    }

    #[test]
    fn without_a_live_in_sync_replica_only_an_unclean_election_moves_leadership() {
        // Replica 3 is live but out of sync; the only in-sync replica is fenced.
        let img = image(&[3], &[1], placement(&[1, 2, 3], 1, &[1]));
        assert!(partition_changes(&img, false).is_empty(), "stays offline");
        let next = changed(&partition_changes(&img, true)).expect("unclean");
        assert_eq!(
            (next.leader, next.isr.clone()),
            (NodeId(3), vec![NodeId(3)])
        );
        assert_eq!(next.leader_epoch.get(), 5);
    }

    #[test]
    fn leadership_goes_back_to_the_preferred_replica_when_it_is_in_sync() {
        let img = image(&[1, 2, 3], &[], placement(&[1, 2, 3], 2, &[2, 3, 1]));
        let next = changed(&preferred_leader_changes(&img, 10)).expect("a change");
        assert_eq!((next.leader, next.leader_epoch.get()), (NodeId(1), 5));
        let img = image(&[1, 2, 3], &[], placement(&[1, 2, 3], 2, &[2, 3]));
        assert!(
            preferred_leader_changes(&img, 10).is_empty(),
            "not in sync yet"
        );
    }
}
