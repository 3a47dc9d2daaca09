//! Producer-id allocation that never hands out the same id twice, even across restarts.
//!
//! Ids are reserved in blocks: before the first id of a block is handed out, the block's end is
//! persisted (with fsync). After a crash the broker resumes from the persisted end, skipping at
//! most one block of unused ids rather than risking reuse.

use std::sync::Mutex;

/// Ids reserved per metadata write.
pub const BLOCK_SIZE: i64 = 1000;

/// Hands out producer ids; `persist_limit` is called (under the lock) to make a new block durable.
pub struct ProducerIdAllocator {
    state: Mutex<(i64, i64)>, // (next id, first id not yet reserved)
}

impl ProducerIdAllocator {
    /// Starts after everything reserved so far (`reserved_until` was the persisted block end).
    pub fn new(reserved_until: i64) -> Self {
        Self {
            state: Mutex::new((reserved_until, reserved_until)),
        }
    }

    /// The next id, reserving a new block first when needed.
    pub fn next<E>(&self, persist_limit: impl FnOnce(i64) -> Result<(), E>) -> Result<i64, E> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 >= state.1 {
            let new_limit = state.1 + BLOCK_SIZE;
            persist_limit(new_limit)?;
            state.1 = new_limit;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }

    /// True if `id` was handed out by this broker (now or in an earlier run).
    pub fn was_issued(&self, id: i64) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        id >= 0 && id < state.0.max(state.1)
    }
}
