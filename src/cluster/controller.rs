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

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::MetadataQuorum;
use crate::common::NodeId;
use crate::metadata::{MetadataCommand, MetadataRecord};

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

/// Fences and unfences brokers while this node leads the quorum, until shutdown.
pub async fn run_fencing(
    quorum: Arc<dyn MetadataQuorum>,
    me: NodeId,
    session_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut leading_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        let status = quorum.status();
        if status.leader != Some(me) {
            leading_since = None;
            continue;
        }
        let since = *leading_since.get_or_insert_with(Instant::now);
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
        if records.is_empty() {
            continue;
        }
        for record in &records {
            if let MetadataRecord::BrokerFenced { id, fenced } = record {
                tracing::info!(broker = %id, fenced, "broker liveness changed");
            }
        }
        if let Err(e) = quorum
            .propose(MetadataCommand::unconditional(records))
            .await
        {
            tracing::warn!("cannot commit broker fencing: {e}");
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
}
