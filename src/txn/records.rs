//! The record layouts of the internal `__transaction_state` topic, as Kafka writes them (so a
//! Kafka tool reading the topic understands it): key = (version int16 = 0, transactional_id
//! string), value version 0 (not flexible) = producer_id int64, producer_epoch int16,
//! transaction_timeout_ms int32, transaction_status int8, transaction_partitions nullable
//! \[topic string, partition_ids \[int32\]\], last_update_timestamp_ms int64,
//! start_timestamp_ms int64 (Kafka's TransactionLogKey.json / TransactionLogValue.json).
//!
//! Decoding never panics: truncated or unknown input is a [`DecodeError`], and the replay skips
//! such records with a warning.

use bytes::BufMut;

pub use crate::group::records::{java_string_hashcode, partition_for};
pub use crate::records::internal::DecodeError;
use crate::records::internal::{put_str, Reader};

/// The internal topic holding transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";

/// Kafka's TransactionState, with its on-disk codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnStatus {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnStatus {
    /// The code stored in the value's `transaction_status`.
    pub fn code(self) -> i8 {
        match self {
            TxnStatus::Empty => 0,
            TxnStatus::Ongoing => 1,
            TxnStatus::PrepareCommit => 2,
            TxnStatus::PrepareAbort => 3,
            TxnStatus::CompleteCommit => 4,
            TxnStatus::CompleteAbort => 5,
            TxnStatus::Dead => 6,
            TxnStatus::PrepareEpochFence => 7,
        }
    }

    /// The state for a stored code.
    pub fn from_code(code: i8) -> Option<TxnStatus> {
        Some(match code {
            0 => TxnStatus::Empty,
            1 => TxnStatus::Ongoing,
            2 => TxnStatus::PrepareCommit,
            3 => TxnStatus::PrepareAbort,
            4 => TxnStatus::CompleteCommit,
            5 => TxnStatus::CompleteAbort,
            6 => TxnStatus::Dead,
            7 => TxnStatus::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's name for the state (DescribeTransactions, logs).
    pub fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
            TxnStatus::Dead => "Dead",
            TxnStatus::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// One transactional id's state, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    /// Partitions in the transaction, by topic, in a stable order. Kafka writes null for a
    /// transaction without partitions; an empty list is read back the same way.
    pub partitions: Vec<(String, Vec<i32>)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

/// TransactionLogKey v0: [version = 0, transactional_id].
pub fn key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.put_i16(0);
    put_str(&mut out, transactional_id);
    out
}

/// TransactionLogValue v0.
pub fn value(v: &TxnValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.put_i16(0);
    out.put_i64(v.producer_id);
    out.put_i16(v.producer_epoch);
    out.put_i32(v.timeout_ms);
    out.put_i8(v.status.code());
    if v.partitions.is_empty() {
        out.put_i32(-1);
    } else {
        out.put_i32(i32::try_from(v.partitions.len()).unwrap_or(i32::MAX));
        for (topic, ids) in &v.partitions {
            put_str(&mut out, topic);
            out.put_i32(i32::try_from(ids.len()).unwrap_or(i32::MAX));
            for id in ids {
                out.put_i32(*id);
            }
        }
    }
    out.put_i64(v.last_update_ms);
    out.put_i64(v.start_ms);
    out
}

/// Decodes a TransactionLogKey (version 0): the transactional id.
pub fn decode_key(buf: &[u8]) -> Result<String, DecodeError> {
    let mut r = Reader::new(buf);
    match r.i16()? {
        0 => r.str(),
        version => Err(DecodeError::Version {
            what: "transaction log key",
            version,
        }),
    }
}

/// Decodes a TransactionLogValue version 0. Version 1 (flexible, written by Kafka for
/// transactions v2 clients) is refused with [`DecodeError::Version`].
pub fn decode_value(buf: &[u8]) -> Result<TxnValue, DecodeError> {
    let mut r = Reader::new(buf);
    let version = r.i16()?;
    if version != 0 {
        return Err(DecodeError::Version {
            what: "transaction log value",
            version,
        });
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let code = r.i8()?;
    let status = TxnStatus::from_code(code).ok_or(DecodeError::Version {
        what: "transaction status",
        version: i16::from(code),
    })?;
    let mut partitions = Vec::new();
    // Each entry holds at least a 2-byte topic length and a 4-byte count.
    if let Some(n) = r.count(6)? {
        for _ in 0..n {
            let topic = r.str()?;
            let ids = match r.count(4)? {
                Some(m) => (0..m).map(|_| r.i32()).collect::<Result<Vec<_>, _>>()?,
                None => Vec::new(),
            };
            partitions.push((topic, ids));
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    Ok(TxnValue {
        producer_id,
        producer_epoch,
        timeout_ms,
        status,
        partitions,
        last_update_ms,
        start_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TxnValue {
        TxnValue {
            producer_id: 1234,
            producer_epoch: 7,
            timeout_ms: 60_000,
            status: TxnStatus::PrepareCommit,
            partitions: vec![("a".into(), vec![0, 2]), ("bb".into(), vec![5])],
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn key_layout_and_round_trip() {
        let k = key("tx-1");
        assert_eq!(k, [0, 0, 0, 4, b't', b'x', b'-', b'1']);
        assert_eq!(decode_key(&k).unwrap(), "tx-1");
        assert!(matches!(
            decode_key(&[0, 1, 0, 0]),
            Err(DecodeError::Version { .. })
        ));
    }

    #[test]
    fn value_layout_matches_kafka_v0() {
        let v = TxnValue {
            partitions: vec![("t".into(), vec![3])],
            ..sample()
        };
        let b = value(&v);
        let mut expected = vec![0, 0]; // version
        expected.extend_from_slice(&1234i64.to_be_bytes()); // producer id
        expected.extend_from_slice(&7i16.to_be_bytes()); // epoch
        expected.extend_from_slice(&60_000i32.to_be_bytes()); // timeout
        expected.push(2); // PrepareCommit
        expected.extend_from_slice(&1i32.to_be_bytes()); // one topic
        expected.extend_from_slice(&[0, 1, b't']);
        expected.extend_from_slice(&1i32.to_be_bytes()); // one partition
        expected.extend_from_slice(&3i32.to_be_bytes());
        expected.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
        expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        assert_eq!(b, expected);
    }

    #[test]
    fn values_round_trip_for_every_status() {
        for code in 0..=7 {
            let status = TxnStatus::from_code(code).unwrap();
            assert_eq!(status.code(), code);
            let v = TxnValue { status, ..sample() };
            assert_eq!(decode_value(&value(&v)).unwrap(), v);
        }
        assert_eq!(TxnStatus::from_code(8), None);
        // No partitions: written as a null array, read back empty.
        let empty = TxnValue {
            partitions: vec![],
            status: TxnStatus::Empty,
            ..sample()
        };
        let b = value(&empty);
        assert_eq!(&b[17..21], &(-1i32).to_be_bytes());
        assert_eq!(decode_value(&b).unwrap(), empty);
    }

    #[test]
    fn truncated_or_hostile_input_is_an_error_not_a_panic() {
        let b = value(&sample());
        for len in 0..b.len() {
            assert!(decode_value(&b[..len]).is_err(), "prefix of {len} bytes");
        }
        let k = key("some-id");
        for len in 0..k.len() {
            assert!(decode_key(&k[..len]).is_err(), "key prefix of {len} bytes");
        }
        // A huge partition count must not allocate or loop.
        let mut hostile = b[..17].to_vec();
        hostile.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_value(&hostile), Err(DecodeError::Truncated));
        // Unknown status code and the flexible version 1.
        let mut bad_status = b.clone();
        bad_status[16] = 42;
        assert!(decode_value(&bad_status).is_err());
        let mut v1 = b;
        v1[1] = 1;
        assert!(matches!(
            decode_value(&v1),
            Err(DecodeError::Version { .. })
        ));
    }

    #[test]
    fn partition_matches_kafka_java() {
        // `Utils.abs(transactionalId.hashCode()) % n`, printed by a Java 17 program (Kafka's
        // `Utils.abs` maps Integer.MIN_VALUE to 0), not computed with this crate's formula.
        assert_eq!(java_string_hashcode("my-txn"), -1_061_187_895);
        assert_eq!(partition_for("my-txn", 50), 45);
        assert_eq!(partition_for("my-txn", 3), 1);
        assert_eq!(partition_for("txn-producer-0", 50), 26);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("polygenelubricants", 3), 0);
    }
}
