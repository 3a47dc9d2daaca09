//! The broker's wall clock and its one source of cheap randomness.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock in epoch milliseconds (LogAppendTime, retention, session deadlines, commit
/// timestamps). A clock before 1970 reads as 0 and one past i64's range saturates, so callers
/// never see an error from a misset clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A random number (std's randomly keyed SipHash over the clock): unique directory names and
/// per-segment roll jitter need no more, and it spares a dependency on a random-number crate.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
