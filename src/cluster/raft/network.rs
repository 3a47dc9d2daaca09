//! Raft messages between controllers, and proposals forwarded to the leader, over the
//! controller listener (framing in `cluster::rpc`). One connection per peer, opened on first
//! use and reopened after an error; each call is one request and one response.
//!
//! The byte streams come from a [`Transport`] (connect) and an [`Acceptor`] (accept): TCP in
//! the broker ([`Tcp`], [`TcpListener`]), a simulated network in the deterministic simulation
//! test, so the same message code runs under both.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
// tokio's clock, not std's: the same instant in the broker, the simulated one in a simulation.
use tokio::time::Instant;

use super::{Applied, NodeIdRaft, TypeConfig};
use crate::cluster::quorum::BoxFuture;
use crate::cluster::rpc::{read_message, write_message, FrameError};
use crate::metadata::MetadataCommand;

/// A connection to or from a peer.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send + Sync {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Conn for T {}

/// A boxed [`Conn`]: the connection type does not leak into openraft's types.
pub type BoxConn = Box<dyn Conn>;

/// Opens connections to `host:port` addresses.
pub trait Transport: Send + Sync + std::fmt::Debug {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<BoxConn>>;
}

/// Accepts connections on a bound controller listener.
pub trait Acceptor: Send {
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(BoxConn, SocketAddr)>>;
}

/// The broker's transport: TCP, with Nagle off (each message is one small write, and a
/// heartbeat must not wait for an acknowledgement).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tcp;

impl Transport for Tcp {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<BoxConn>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as BoxConn)
        })
    }
}

impl Acceptor for TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(BoxConn, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = TcpListener::accept(self).await?;
            let _ = stream.set_nodelay(true);
            Ok((Box::new(stream) as BoxConn, peer))
        })
    }
}

/// A request on the controller listener.
#[derive(Serialize, Deserialize)]
enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeIdRaft>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A command from a node that is not the leader, to commit through this one.
    Propose(MetadataCommand),
}

/// The answer to a [`Request`], in the same variant.
#[derive(Serialize, Deserialize)]
enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeIdRaft>, RaftError<NodeIdRaft>>),
    Vote(Result<VoteResponse<NodeIdRaft>, RaftError<NodeIdRaft>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeIdRaft>, RaftError<NodeIdRaft, InstallSnapshotError>>,
    ),
    /// The committed index and what applying it answered, or why it did not commit here.
    Propose(Result<(u64, Applied), String>),
}

/// How long a forwarded proposal may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// When each peer last answered a Raft message from this node. The leader sends every
/// follower a heartbeat several times per election timeout, so on the leader this is the
/// liveness of every node: in combined mode the Raft heartbeat is the broker heartbeat.
#[derive(Debug, Default)]
pub struct Contacts(Mutex<BTreeMap<NodeIdRaft, Instant>>);

impl Contacts {
    fn record(&self, peer: NodeIdRaft) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer, Instant::now());
    }

    /// When `peer` last answered, if it ever did.
    pub fn last(&self, peer: NodeIdRaft) -> Option<Instant> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .copied()
    }
}

/// Opens connections to peers for openraft.
pub struct Network {
    pub contacts: Arc<Contacts>,
    pub transport: Arc<dyn Transport>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeIdRaft, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            stream: None,
            contacts: Arc::clone(&self.contacts),
            transport: Arc::clone(&self.transport),
        }
    }
}

/// The connection to one peer.
pub struct Peer {
    target: NodeIdRaft,
    addr: String,
    stream: Option<BoxConn>,
    contacts: Arc<Contacts>,
    transport: Arc<dyn Transport>,
}

/// One request/response exchange on `stream`.
async fn exchange(stream: &mut BoxConn, request: &Request) -> Result<Response, FrameError> {
    write_message(stream, request).await?;
    read_message(stream)
        .await?
        .ok_or_else(|| FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()))
}

impl Peer {
    async fn call<E: std::error::Error>(
        &mut self,
        request: Request,
        option: &RPCOption,
    ) -> Result<Response, RPCError<NodeIdRaft, BasicNode, E>> {
        let ttl = option.hard_ttl();
        let stream = match self.stream.take() {
            Some(s) => s,
            None => match tokio::time::timeout(ttl, self.transport.connect(&self.addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
                Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            },
        };
        let mut stream = stream;
        match tokio::time::timeout(ttl, exchange(&mut stream, &request)).await {
            Ok(Ok(response)) => {
                self.stream = Some(stream);
                self.contacts.record(self.target);
                Ok(response)
            }
            Ok(Err(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<NodeIdRaft, BasicNode, E> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<NodeIdRaft, BasicNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(
        "peer answered with another message kind",
    )))
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        AppendEntriesResponse<NodeIdRaft>,
        RPCError<NodeIdRaft, BasicNode, RaftError<NodeIdRaft>>,
    > {
        match self.call(Request::AppendEntries(rpc), &option).await? {
            Response::AppendEntries(r) => r.map_err(|e| self.remote(e)),
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeIdRaft>,
        RPCError<NodeIdRaft, BasicNode, RaftError<NodeIdRaft, InstallSnapshotError>>,
    > {
        match self.call(Request::InstallSnapshot(rpc), &option).await? {
            Response::InstallSnapshot(r) => r.map_err(|e| self.remote(e)),
            _ => Err(unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeIdRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeIdRaft>, RPCError<NodeIdRaft, BasicNode, RaftError<NodeIdRaft>>>
    {
        match self.call(Request::Vote(rpc), &option).await? {
            Response::Vote(r) => r.map_err(|e| self.remote(e)),
            _ => Err(unexpected()),
        }
    }
}

/// Sends `command` to the leader at `addr` and returns the index it committed at.
pub async fn forward_proposal(
    transport: &dyn Transport,
    addr: &str,
    command: &MetadataCommand,
) -> Result<(u64, Applied), String> {
    let work = async {
        let mut stream = transport.connect(addr).await.map_err(|e| e.to_string())?;
        match exchange(&mut stream, &Request::Propose(command.clone()))
            .await
            .map_err(|e| e.to_string())?
        {
            Response::Propose(r) => r,
            _ => Err("leader answered with another message kind".to_string()),
        }
    };
    tokio::time::timeout(FORWARD_TIMEOUT, work)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Serves the controller listener until the task is aborted.
pub async fn serve(mut listener: Box<dyn Acceptor>, raft: Raft<TypeConfig>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("controller listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(stream, raft.clone(), peer));
    }
}

async fn serve_connection(mut stream: BoxConn, raft: Raft<TypeConfig>, peer: SocketAddr) {
    loop {
        let request: Request = match read_message(&mut stream).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%peer, "closing controller connection: {e}");
                return;
            }
        };
        let response = match request {
            Request::AppendEntries(rpc) => Response::AppendEntries(raft.append_entries(rpc).await),
            Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
            Request::InstallSnapshot(rpc) => {
                Response::InstallSnapshot(raft.install_snapshot(rpc).await)
            }
            Request::Propose(command) => Response::Propose(
                raft.client_write(command)
                    .await
                    .map(|r| (r.log_id.index, r.data))
                    .map_err(|e| e.to_string()),
            ),
        };
        // A stopped Raft (this node shut down while the process lives on, as in-process
        // tests do) answers every request with a fatal error: close the connection so the
        // peer reconnects, and reaches whatever listens on this address next.
        let stopped = matches!(
            &response,
            Response::AppendEntries(Err(RaftError::Fatal(_)))
                | Response::Vote(Err(RaftError::Fatal(_)))
                | Response::InstallSnapshot(Err(RaftError::Fatal(_)))
        );
        if let Err(e) = write_message(&mut stream, &response).await {
            tracing::debug!(%peer, "controller connection: {e}");
            return;
        }
        if stopped {
            return;
        }
    }
}
