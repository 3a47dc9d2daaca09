//! The small interface the rest of the broker has to the metadata quorum: propose a command,
//! watch the image the committed commands build, and ask who leads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::common::NodeId;
use crate::metadata::image::Precondition;
use crate::metadata::{MetadataCommand, MetadataImage};

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A command the quorum has committed and this node has applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Its position in the metadata log.
    pub index: u64,
    /// `Some` if a precondition failed when it applied: then it changed nothing.
    pub rejected: Option<Precondition>,
}

/// Why a proposal did not commit.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// No leader could be reached in time (a minority of voters is up, or an election is on).
    #[error("the metadata quorum has no reachable leader: {0}")]
    NoLeader(String),
    /// The quorum stopped (shutdown or a storage failure).
    #[error("the metadata quorum stopped: {0}")]
    Stopped(String),
    /// The metadata log or snapshot could not be read or written.
    #[error("metadata log: {0}")]
    Storage(String),
}

/// One voter as the leader sees it (DescribeQuorum).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoterStatus {
    pub id: NodeId,
    /// The last log index known to be replicated on it (-1: unknown).
    pub log_end_offset: i64,
    /// How long ago it last answered the leader (`None`: not known here, or never).
    pub last_contact: Option<std::time::Duration>,
}

/// The quorum as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumStatus {
    /// The leader (the active controller), if one is known.
    pub leader: Option<NodeId>,
    /// The current Raft term (Kafka's leader epoch of the metadata log).
    pub term: u64,
    /// The highest committed index (Kafka's high watermark of the metadata log).
    pub committed: Option<u64>,
    /// The index this node has applied to its image.
    pub applied: Option<u64>,
    /// The voters, with what the leader knows of their logs (only the leader knows).
    pub voters: Vec<VoterStatus>,
    /// Nodes that follow the log without voting.
    pub observers: Vec<VoterStatus>,
}

/// The metadata quorum. See the module docs.
pub trait MetadataQuorum: Send + Sync {
    /// Commits `command` through the leader (wherever it is) and returns once this node's
    /// image includes it.
    fn propose(&self, command: MetadataCommand) -> BoxFuture<'_, Result<Committed, QuorumError>>;

    /// Commits `command` without waiting for this node to apply it (a node the leader has not
    /// added as an observer yet does not receive the log).
    fn propose_detached(
        &self,
        command: MetadataCommand,
    ) -> BoxFuture<'_, Result<Committed, QuorumError>>;

    /// On the leader: makes node `id`, reachable at `addr`, follow the metadata log without
    /// voting (a broker-only node).
    fn add_observer(&self, id: NodeId, addr: String) -> BoxFuture<'_, Result<(), QuorumError>>;

    /// The image built from every command this node has applied.
    fn image(&self) -> Arc<MetadataImage>;

    /// A receiver that changes whenever this node applies commands (its value: the index
    /// applied).
    fn applied(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Who leads, and the state of the log.
    fn status(&self) -> QuorumStatus;

    /// Stops the quorum member (its log is durable; it resumes on the next start).
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}
