//! Producer-id allocation that never hands out the same id twice, across restarts and across
//! the brokers of a cluster.
//!
//! Ids are reserved in blocks through the metadata quorum (KRaft's `ProducerIdsRecord`): a
//! broker whose block is used up commits the next block's end with a compare-and-set on the
//! cluster-wide reservation, so no two brokers ever get the same block. After a crash the
//! broker takes a fresh block, skipping at most the rest of its old one rather than risking
//! reuse.

use std::sync::Mutex;

/// Ids reserved per metadata write.
pub const BLOCK_SIZE: i64 = 1000;

/// Hands out producer ids from this broker's current block.
#[derive(Default)]
pub struct ProducerIdAllocator {
    state: Mutex<(i64, i64)>, // (next id, end of this broker's block)
}

impl ProducerIdAllocator {
    /// The next id; `reserve` is called (under the lock) to obtain a new block `[start, end)`
    /// when the current one is used up.
    pub fn next<E>(&self, reserve: impl FnOnce() -> Result<(i64, i64), E>) -> Result<i64, E> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 >= state.1 {
            *state = reserve()?;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}
