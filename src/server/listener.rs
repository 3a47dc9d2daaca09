//! The accept loop: one task per connection, bounded by `max.connections`, stopped by shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::connection;
use crate::broker::BrokerContext;

/// Accepts connections until `shutdown` turns true, then waits for open connections to finish
/// the request they are on.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<BrokerContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    // A permit per open connection: when all are taken, accepting pauses (the kernel backlog
    // holds newcomers) instead of spawning without bound.
    let permits = Arc::new(Semaphore::new(ctx.config().max_connections));
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                let _ = stream.set_nodelay(true);
                let ctx = ctx.clone();
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    connection::run(stream, peer, ctx, shutdown).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Typically EMFILE: back off rather than spin, and keep serving open connections.
                tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    // Connections see the same shutdown signal; give them a bounded time to drain.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s at shutdown; closing them");
    }
}
