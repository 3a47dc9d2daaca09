//! Newtypes for the integers that cross module boundaries: offsets, leader epochs, partition
//! indexes, node ids, producer ids and epochs.
//!
//! On the wire and on disk they are all plain `i64`/`i32`/`i16`, which made it possible to pass
//! an epoch where an offset was meant, or a node id where a partition was. Inside the broker they
//! travel as these types; the protocol handlers convert at the edge (`.get()` / `T(x)`), where
//! the generated message structs hold raw integers.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            /// The raw value, as the wire and the disk carry it.
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl From<$name> for $inner {
            fn from(v: $name) -> $inner {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_newtype!(
    /// A position in a partition's log (the offset of a record, a log end, a high watermark).
    Offset(i64)
);
id_newtype!(
    /// The epoch of a partition's leader; a record batch carries the epoch it was written in.
    LeaderEpoch(i32)
);
id_newtype!(
    /// A partition's index within its topic.
    PartitionIndex(i32)
);
id_newtype!(
    /// A broker's or controller's `node.id`.
    NodeId(i32)
);
id_newtype!(
    /// A producer id handed out by InitProducerId.
    ProducerId(i64)
);
id_newtype!(
    /// A producer id's epoch, bumped to fence an older instance of the same producer.
    ProducerEpoch(i16)
);

impl Offset {
    /// `self + delta`, or `None` past `i64::MAX`: an offset read from the wire or the disk that
    /// would overflow is invalid data, never a wrap.
    pub fn checked_add(self, delta: i64) -> Option<Offset> {
        self.0.checked_add(delta).map(Offset)
    }
}

impl From<i64> for Offset {
    fn from(raw: i64) -> Offset {
        Offset(raw)
    }
}

impl Offset {
    /// The offset after this one.
    pub fn next(self) -> Offset {
        Offset(self.0.saturating_add(1))
    }
}

/// An offset moved by a record count. For offsets the broker computed itself (log positions);
/// a value read from the wire or the disk goes through [`Offset::checked_add`] instead.
impl std::ops::Add<i64> for Offset {
    type Output = Offset;
    fn add(self, count: i64) -> Offset {
        Offset(self.0 + count)
    }
}

/// An offset moved back by a record count (see `Add`).
impl std::ops::Sub<i64> for Offset {
    type Output = Offset;
    fn sub(self, count: i64) -> Offset {
        Offset(self.0 - count)
    }
}

/// The number of offsets between two positions.
impl std::ops::Sub for Offset {
    type Output = i64;
    fn sub(self, other: Offset) -> i64 {
        self.0 - other.0
    }
}

/// Comparing with a bare integer keeps tests and boundary checks readable
/// (`assert_eq!(log.log_end_offset(), 5)`) without unwrapping the offset at every site.
impl PartialEq<i64> for Offset {
    fn eq(&self, other: &i64) -> bool {
        self.0 == *other
    }
}

impl PartialOrd<i64> for Offset {
    fn partial_cmp(&self, other: &i64) -> Option<std::cmp::Ordering> {
        self.0.partial_cmp(other)
    }
}

impl PartialEq<Offset> for i64 {
    fn eq(&self, other: &Offset) -> bool {
        *self == other.0
    }
}

impl PartialOrd<Offset> for i64 {
    fn partial_cmp(&self, other: &Offset) -> Option<std::cmp::Ordering> {
        self.partial_cmp(&other.0)
    }
}

impl PartialEq<i32> for PartitionIndex {
    fn eq(&self, other: &i32) -> bool {
        self.0 == *other
    }
}

impl PartialOrd<i32> for PartitionIndex {
    fn partial_cmp(&self, other: &i32) -> Option<std::cmp::Ordering> {
        self.0.partial_cmp(other)
    }
}

impl LeaderEpoch {
    /// "No epoch known" (-1 on the wire), as in a request that does not fence on the epoch.
    pub const UNKNOWN: LeaderEpoch = LeaderEpoch(-1);

    /// The epoch of the next leadership.
    pub fn next(self) -> LeaderEpoch {
        LeaderEpoch(self.0 + 1)
    }
}

impl NodeId {
    /// "No node" (-1 on the wire): no leader, no coordinator.
    pub const NONE: NodeId = NodeId(-1);
}

impl ProducerId {
    /// "No producer id" (-1): a batch from a producer that is neither idempotent nor
    /// transactional.
    pub const NONE: ProducerId = ProducerId(-1);
}

impl ProducerEpoch {
    /// "No epoch" (-1 on the wire).
    pub const NONE: ProducerEpoch = ProducerEpoch(-1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_do_not_wrap() {
        assert_eq!(Offset(5).checked_add(3), Some(Offset(8)));
        assert_eq!(Offset(i64::MAX - 1).checked_add(2), None);
    }

    #[test]
    fn serialize_as_the_bare_integer() {
        assert_eq!(serde_json::to_string(&NodeId(3)).unwrap(), "3");
        assert_eq!(serde_json::from_str::<Offset>("42").unwrap(), Offset(42));
    }
}
