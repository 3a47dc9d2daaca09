//! One client connection: frames in, responses out, strictly in request order.
//!
//! The reader half decodes and dispatches each request as it arrives (so requests on one
//! connection are *started* in order — appends from one producer land in the order sent), and
//! queues each outcome. The writer half awaits the queued outcomes one by one and writes them, so
//! a slow response (a long-polling fetch, a produce waiting for fsync) delays later responses but
//! never reorders them: clients match responses to the oldest request in flight.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};

use crate::broker::BrokerContext;
use crate::protocol::body::{Chunk, ResponseBody};
use crate::protocol::{self, frame, Outcome};

enum Queued {
    Ready(Bytes),
    Later(tokio::task::JoinHandle<Option<Bytes>>),
    ReadyBody(ResponseBody),
    LaterBody(tokio::task::JoinHandle<Option<ResponseBody>>),
    Close,
}

/// A queued outcome with the share of `queued.max.request.bytes` its request holds, given back
/// once the response is written (the request's bytes are gone by then).
struct Pending {
    outcome: Queued,
    _reserved: Option<OwnedSemaphorePermit>,
}

/// Serves one connection until the client closes it, a protocol error closes it, or shutdown.
pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<BrokerContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (read_half, write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    // Bounded: when this many responses are pending, reading pauses (back-pressure).
    let (queue, pending) = mpsc::channel::<Pending>(ctx.config().connection_max_inflight_requests);
    let writer = tokio::spawn(write_responses(write_half, pending, peer));
    let max = ctx.config().socket_request_max_bytes;
    loop {
        let size = tokio::select! {
            s = frame::read_frame_size(&mut reader, max) => s,
            _ = shutdown.changed() => break,
        };
        let size = match size {
            Ok(Some(size)) => size,
            Ok(None) => break,
            Err(e) => {
                tracing::info!(%peer, "closing connection: {e}");
                break;
            }
        };
        // Room for the body in the broker-wide budget before it is read: past the budget this
        // connection waits, as Kafka's network threads stop reading.
        let reserved = match &ctx.request_bytes {
            Some(budget) => {
                let permits = u32::try_from(size).unwrap_or(u32::MAX);
                tokio::select! {
                    p = budget.clone().acquire_many_owned(permits) => match p {
                        Ok(p) => Some(p),
                        Err(_) => break,
                    },
                    _ = shutdown.changed() => break,
                }
            }
            None => None,
        };
        let next = tokio::select! {
            f = frame::read_frame_body(&mut reader, size) => f,
            _ = shutdown.changed() => break,
        };
        let frame = match next {
            Ok(frame) => frame,
            Err(e) => {
                tracing::info!(%peer, "closing connection: {e}");
                break;
            }
        };
        let outcome = match protocol::handle_frame(&ctx, frame, peer) {
            // Finished before the next request is read (see `Outcome::Ordered`); the runtime
            // worker serves other connections meanwhile.
            Outcome::Ordered(task) => match task.await {
                Ok(outcome) => outcome,
                Err(e) => Outcome::Close(format!("request task failed: {e}")),
            },
            outcome => outcome,
        };
        let queued = match outcome {
            Outcome::Ordered(_) => {
                tracing::error!(%peer, "closing connection: a nested ordered outcome");
                break;
            }
            Outcome::Ready(bytes) => Queued::Ready(bytes),
            Outcome::Later(task) => Queued::Later(task),
            Outcome::ReadyBody(body) => Queued::ReadyBody(body),
            Outcome::LaterBody(task) => Queued::LaterBody(task),
            Outcome::Silent => continue,
            Outcome::Close(reason) => {
                tracing::info!(%peer, "closing connection: {reason}");
                let _ = queue
                    .send(Pending {
                        outcome: Queued::Close,
                        _reserved: None,
                    })
                    .await;
                break;
            }
        };
        let queued = Pending {
            outcome: queued,
            _reserved: reserved,
        };
        if queue.send(queued).await.is_err() {
            break; // the writer stopped: the client went away
        }
    }
    drop(queue);
    let _ = writer.await;
}

async fn write_responses(
    write_half: OwnedWriteHalf,
    mut pending: mpsc::Receiver<Pending>,
    peer: SocketAddr,
) {
    let mut out = BufWriter::with_capacity(64 * 1024, write_half);
    // `item` (and the request bytes it reserved) lives until its response is written.
    while let Some(item) = pending.recv().await {
        let body = match item.outcome {
            Queued::Ready(bytes) => ResponseBody::from(bytes),
            Queued::ReadyBody(body) => body,
            Queued::Later(task) => match task.await {
                Ok(Some(bytes)) => ResponseBody::from(bytes),
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(%peer, "request task failed: {e}");
                    break;
                }
            },
            Queued::LaterBody(task) => match task.await {
                Ok(Some(body)) => body,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(%peer, "request task failed: {e}");
                    break;
                }
            },
            Queued::Close => break,
        };
        if let Err(e) = write_body(&mut out, body).await {
            tracing::info!(%peer, "closing connection: write failed: {e}");
            return;
        }
        // Flush only when nothing else is ready, so pipelined responses share a syscall.
        if pending.is_empty() && out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.flush().await;
    let _ = out.shutdown().await;
}

/// Writes one response frame: byte chunks through the buffer, file regions with `sendfile(2)`
/// after flushing what is buffered so the bytes stay in order.
async fn write_body(
    out: &mut BufWriter<OwnedWriteHalf>,
    body: ResponseBody,
) -> std::io::Result<()> {
    for chunk in body.chunks() {
        match chunk {
            Chunk::Bytes(b) => out.write_all(b).await?,
            Chunk::File {
                file,
                position,
                len,
            } => {
                out.flush().await?;
                let stream: &TcpStream = out.get_ref().as_ref();
                super::sendfile::send_file(stream, file, *position, *len).await?;
            }
        }
    }
    Ok(())
}
