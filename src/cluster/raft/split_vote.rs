//! Breaks split votes that openraft alone would repeat for ever.
//!
//! openraft 0.9 draws each node's election timeout once, when the node starts, and checks it
//! only on its ticker (every 1.5 heartbeat intervals). Voters whose timeouts round up to the
//! same number of ticks and whose tickers run in step (they started together) each start an
//! election in the same tick, every time: each votes for itself and none ever wins. The quorum
//! simulation found such a seed (3 voters, 30 s of simulated time, not one leader).
//!
//! Raft's answer is a fresh random timeout for every election; KRaft's is a random backoff
//! after a failed one. This task gives openraft the latter: when the voter has had no leader
//! for longer than the longest election timeout, it waits a random part of the shortest one
//! and, if there is still no leader, asks openraft to start an election now. The election itself,
//! votes and terms included, stays openraft's; only its start time is moved off the tick grid.

use std::time::Duration;

use openraft::{Raft, RaftMetrics, ServerState};
use rand::Rng;

use super::runtime::ElectionRng;
use super::{NodeIdRaft, TypeConfig};

/// The election timeouts the quorum was configured with.
#[derive(Clone, Copy, Debug)]
pub struct ElectionTimeouts {
    pub min: Duration,
    pub max: Duration,
}

/// True if `metrics` describe a voter that knows no leader (a candidate, or a follower whose
/// leader's term ended).
fn leaderless_voter(metrics: &RaftMetrics<NodeIdRaft, openraft::BasicNode>) -> bool {
    let voter = metrics
        .membership_config
        .membership()
        .voter_ids()
        .any(|id| id == metrics.id);
    let alone = metrics.membership_config.membership().voter_ids().count() <= 1;
    voter
        && !alone
        && metrics.current_leader.is_none()
        && metrics.state != ServerState::Leader
        && metrics.state != ServerState::Shutdown
}

/// Runs until the quorum stops: nudges an election, at a random moment, whenever this voter has
/// been without a leader for longer than `timeouts.max`.
pub async fn run(raft: Raft<TypeConfig>, timeouts: ElectionTimeouts) {
    let mut metrics = raft.metrics();
    loop {
        // Wait for a leaderless spell to begin.
        if metrics.wait_for(leaderless_voter).await.is_err() {
            return;
        }
        // Give openraft's own election its whole chance first.
        let patience = tokio::time::sleep(timeouts.max);
        tokio::pin!(patience);
        let resolved = tokio::select! {
            _ = &mut patience => false,
            changed = metrics.wait_for(|m| !leaderless_voter(m)) => {
                if changed.is_err() {
                    return;
                }
                true
            }
        };
        if resolved {
            continue;
        }
        let jitter_ms = ElectionRng.gen_range(0..timeouts.min.as_millis().max(1) as u64);
        tokio::time::sleep(Duration::from_millis(jitter_ms)).await;
        if !leaderless_voter(&metrics.borrow()) {
            continue;
        }
        tracing::debug!(
            term = metrics.borrow().current_term,
            "no leader after a full election timeout: starting an election off the tick"
        );
        if raft.trigger().elect().await.is_err() {
            return;
        }
    }
}
