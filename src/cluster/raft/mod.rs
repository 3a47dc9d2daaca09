//! [`MetadataQuorum`] on openraft (pinned in Cargo.toml): the metadata log in
//! [`log_store`], the image as the state machine in [`state_machine`], and the messages between
//! controllers in [`network`].
//!
//! Every voter listed in `controller.quorum.voters` calls `initialize` with the same voter set
//! when its log is empty (openraft accepts that from several nodes at once), so a cluster forms
//! without one node being special, and a lone node is simply a one-voter cluster.

pub mod log_store;
pub mod network;
pub mod runtime;
mod split_vote;
pub mod state_machine;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
// tokio's clock: the same as std's in the broker, the simulated one in the simulation test.
use tokio::time::Instant;

use super::quorum::{BoxFuture, Committed, MetadataQuorum, QuorumError, QuorumStatus, VoterStatus};
use crate::common::NodeId;
use crate::log::io::FsIo;
use crate::metadata::image::Precondition;
use crate::metadata::{MetadataCommand, MetadataImage};
use state_machine::Published;

/// openraft's node ids (Kafka's node ids are non-negative `i32`s).
pub type NodeIdRaft = u64;

/// What applying one entry answered: `Some` if the command's precondition failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub rejected: Option<Precondition>,
}

openraft::declare_raft_types!(
    /// The types the metadata quorum runs openraft with.
    pub TypeConfig:
        D = MetadataCommand,
        R = Applied,
        NodeId = NodeIdRaft,
        Node = BasicNode,
        // tokio; election timeouts from a generator a simulation can seed.
        AsyncRuntime = runtime::Runtime,
);

/// A metadata log entry.
pub type Entry = openraft::Entry<TypeConfig>;

/// How long a proposal keeps trying to reach a leader before giving up.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a quorum member needs to start.
#[derive(Debug)]
pub struct QuorumOptions {
    pub node_id: NodeId,
    /// Every voter: node id and the `host:port` of its controller listener. A lone node lists
    /// only itself.
    pub voters: BTreeMap<NodeId, String>,
    /// `__cluster_metadata-0` under the first log directory.
    pub dir: PathBuf,
    /// `controller.quorum.election.timeout.ms`: a follower that hears no leader for this long
    /// (plus a random part of as much again) starts an election.
    pub election_timeout_ms: u64,
    /// The bound controller listener, if this node has one.
    pub listener: Option<TcpListener>,
}

/// Why the quorum could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("metadata log in {dir}: {source}")]
    Storage {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("openraft: {0}")]
    Raft(String),
}

/// A running member of the metadata quorum.
pub struct RaftQuorum {
    raft: Raft<TypeConfig>,
    /// The voters' controller endpoints, to forward proposals to when no leader is known.
    voters: BTreeMap<NodeId, String>,
    contacts: Arc<network::Contacts>,
    transport: Arc<dyn network::Transport>,
    published: Arc<Published>,
    server: Option<JoinHandle<()>>,
    /// Starts an election off openraft's tick grid when one has not produced a leader.
    split_vote_breaker: JoinHandle<()>,
}

impl Drop for RaftQuorum {
    fn drop(&mut self) {
        // The task holds a handle on the raft: it must not outlive the quorum.
        self.split_vote_breaker.abort();
    }
}

fn raft_id(id: NodeId) -> NodeIdRaft {
    u64::try_from(id.get()).unwrap_or(0)
}

fn node_id(id: NodeIdRaft) -> NodeId {
    NodeId(i32::try_from(id).unwrap_or(-1))
}

impl RaftQuorum {
    /// Opens the log and state machine in `options.dir`, starts openraft and the controller
    /// listener, and initializes the voter set if the log is new.
    pub async fn start(
        mut options: QuorumOptions,
        io: Arc<dyn FsIo>,
    ) -> Result<Arc<RaftQuorum>, StartError> {
        let listener = options
            .listener
            .take()
            .map(|l| Box::new(l) as Box<dyn network::Acceptor>);
        RaftQuorum::start_on(options, io, Arc::new(network::Tcp), listener).await
    }

    /// [`RaftQuorum::start`] over another transport (the simulation test's network):
    /// `options.listener` is ignored, `listener` serves instead.
    pub async fn start_on(
        options: QuorumOptions,
        io: Arc<dyn FsIo>,
        transport: Arc<dyn network::Transport>,
        listener: Option<Box<dyn network::Acceptor>>,
    ) -> Result<Arc<RaftQuorum>, StartError> {
        let storage = |source| StartError::Storage {
            dir: options.dir.clone(),
            source,
        };
        let (log, machine, published) = {
            let (dir, io) = (options.dir.clone(), Arc::clone(&io));
            tokio::task::spawn_blocking(move || {
                let log = log_store::LogStore::open(&dir, Arc::clone(&io))?;
                let (machine, published) = state_machine::StateMachine::open(&dir, io)?;
                Ok::<_, std::io::Error>((log, machine, published))
            })
            .await
            .map_err(|e| storage(std::io::Error::other(e)))?
            .map_err(storage)?
        };
        let new_log = log.is_new();
        let timeout = options.election_timeout_ms.max(50);
        let config = openraft::Config {
            cluster_name: "gregor-metadata".to_string(),
            election_timeout_min: timeout,
            election_timeout_max: timeout * 2,
            // Also the timeout of each append RPC (openraft uses the heartbeat interval for it).
            heartbeat_interval: (timeout / 4).max(10),
            // Snapshot the image every thousand commands and keep a hundred entries after
            // it, so a briefly absent voter catches up from the log, not from a snapshot.
            snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 100,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let contacts = Arc::new(network::Contacts::default());
        let raft = Raft::new(
            raft_id(options.node_id),
            Arc::new(config),
            network::Network {
                contacts: Arc::clone(&contacts),
                transport: Arc::clone(&transport),
            },
            log,
            machine,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let server = listener.map(|listener| tokio::spawn(network::serve(listener, raft.clone())));
        let members: BTreeMap<NodeIdRaft, BasicNode> = options
            .voters
            .iter()
            .map(|(id, addr)| (raft_id(*id), BasicNode::new(addr)))
            .collect();
        // A broker-only node is not a voter: it follows the log once the leader adds it.
        // Only a new log is initialized (openraft refuses, and logs an error, otherwise).
        let initialized = if new_log && options.voters.contains_key(&options.node_id) {
            raft.initialize(members).await.map(|()| true)
        } else {
            Ok(false)
        };
        match initialized {
            Ok(true) => {
                tracing::info!(voters = ?options.voters, "initialized a new metadata quorum")
            }
            Ok(false) => {}
            // The log is not new: the voter set is in it.
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(StartError::Raft(e.to_string())),
        }
        let split_vote_breaker = tokio::spawn(split_vote::run(
            raft.clone(),
            split_vote::ElectionTimeouts {
                min: Duration::from_millis(timeout),
                max: Duration::from_millis(timeout * 2),
            },
        ));
        Ok(Arc::new(RaftQuorum {
            voters: options.voters.clone(),
            raft,
            contacts,
            transport,
            published,
            server,
            split_vote_breaker,
        }))
    }

    /// Waits until this node has applied `index` (after a command committed elsewhere).
    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), QuorumError> {
        let mut applied = self.published.applied.subscribe();
        let waited = tokio::time::timeout_at(deadline, applied.wait_for(|a| *a >= index)).await;
        match waited.map(|r| r.map(|_| ())) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(QuorumError::Stopped("state machine gone".into())),
            Err(_) => Err(QuorumError::NoLeader(format!(
                "index {index} was committed but not applied here in time"
            ))),
        }
    }

    /// Commits `command` through the leader. With `wait_here`, returns only once this node
    /// has applied it too.
    async fn propose_until(
        &self,
        command: MetadataCommand,
        deadline: Instant,
        wait_here: bool,
    ) -> Result<Committed, QuorumError> {
        let mut last_error = String::from("no leader elected yet");
        loop {
            if Instant::now() >= deadline {
                return Err(QuorumError::NoLeader(last_error));
            }
            // A leader cut off from its majority accepts the write but cannot commit it: bound
            // the wait, so the caller gets an answer (the write may still commit later).
            let write = self.raft.client_write(command.clone());
            let Ok(written) = tokio::time::timeout_at(deadline, write).await else {
                return Err(QuorumError::NoLeader(
                    "the leader could not commit in time (no majority reachable)".into(),
                ));
            };
            match written {
                Ok(response) => {
                    return Ok(Committed {
                        index: response.log_id.index,
                        rejected: response.data.rejected,
                    })
                }
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                    // The leader if known; otherwise every voter in turn (a node that does not
                    // follow the log yet knows no leader): a voter that does not lead refuses.
                    let targets: Vec<String> = match forward.leader_node {
                        Some(leader) => vec![leader.addr],
                        None => self.voters.values().cloned().collect(),
                    };
                    for addr in targets {
                        match network::forward_proposal(self.transport.as_ref(), &addr, &command)
                            .await
                        {
                            Ok((index, applied)) => {
                                if wait_here {
                                    self.wait_applied(index, deadline).await?;
                                }
                                return Ok(Committed {
                                    index,
                                    rejected: applied.rejected,
                                });
                            }
                            Err(e) => last_error = format!("controller at {addr}: {e}"),
                        }
                    }
                }
                Err(RaftError::APIError(e)) => last_error = e.to_string(),
                Err(RaftError::Fatal(e)) => return Err(QuorumError::Stopped(e.to_string())),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl MetadataQuorum for RaftQuorum {
    fn propose(&self, command: MetadataCommand) -> BoxFuture<'_, Result<Committed, QuorumError>> {
        Box::pin(self.propose_until(command, Instant::now() + PROPOSE_TIMEOUT, true))
    }

    fn propose_detached(
        &self,
        command: MetadataCommand,
    ) -> BoxFuture<'_, Result<Committed, QuorumError>> {
        Box::pin(self.propose_until(command, Instant::now() + PROPOSE_TIMEOUT, false))
    }

    fn add_observer(&self, id: NodeId, addr: String) -> BoxFuture<'_, Result<(), QuorumError>> {
        Box::pin(async move {
            self.raft
                .add_learner(raft_id(id), BasicNode::new(&addr), false)
                .await
                .map(|_| ())
                .map_err(|e| QuorumError::NoLeader(e.to_string()))
        })
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.published.image.load_full()
    }

    fn applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.applied.subscribe()
    }

    fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let progress = metrics.replication.clone().unwrap_or_default();
        let members = metrics.membership_config.membership();
        let me = metrics.id;
        let leading = metrics.current_leader == Some(me);
        let status_of = |id: NodeIdRaft| VoterStatus {
            id: node_id(id),
            log_end_offset: if id == me {
                metrics.last_log_index.map_or(-1, |i| i as i64)
            } else {
                progress
                    .get(&id)
                    .and_then(|l| l.as_ref())
                    .map_or(-1, |l| l.index as i64)
            },
            last_contact: if id == me {
                Some(Duration::ZERO)
            } else if leading {
                self.contacts.last(id).map(|at| at.elapsed())
            } else {
                None
            },
        };
        let voters: Vec<NodeIdRaft> = members.voter_ids().collect();
        QuorumStatus {
            leader: metrics.current_leader.map(node_id),
            term: metrics.current_term,
            committed: metrics.last_applied.map(|l| l.index),
            applied: metrics.last_applied.map(|l| l.index),
            voters: voters.iter().map(|id| status_of(*id)).collect(),
            observers: members
                .learner_ids()
                .filter(|id| !voters.contains(id))
                .map(status_of)
                .collect(),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(server) = &self.server {
                server.abort();
            }
            self.split_vote_breaker.abort();
            if let Err(e) = self.raft.shutdown().await {
                tracing::warn!("metadata quorum did not stop cleanly: {e}");
            }
        })
    }
}
