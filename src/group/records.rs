//! The record layouts of the internal `__consumer_offsets` topic, as Kafka writes them (so a
//! Kafka tool reading the topic understands it), plus a small magic-2 batch encoder: offset
//! commit key v1 / value v3, group metadata key v2 / value v3, KIP-848 ConsumerGroupMetadata
//! key 3 / value v0, and tombstones (null values).

use bytes::{BufMut, Bytes};

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub use crate::records::internal::DecodeError;
use crate::records::internal::{put_bytes, put_nullable_str, put_str, Reader};

/// One committed offset, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// One member inside a group metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's metadata, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// A decoded record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// KIP-848 ConsumerGroupMetadataKey (record type 3).
    ConsumerGroup {
        group: String,
    },
}

/// Offset commit key, version 1: [group, topic, partition].
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + group.len() + topic.len());
    out.put_i16(1);
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.put_i32(partition);
    out
}

/// Offset commit value, version 3: [offset, leader epoch, metadata, commit timestamp].
pub fn offset_value(v: &OffsetValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + v.metadata.len());
    out.put_i16(3);
    out.put_i64(v.offset);
    out.put_i32(v.leader_epoch);
    put_str(&mut out, &v.metadata);
    out.put_i64(v.commit_timestamp);
    out
}

/// Group metadata key, version 2: the group id as a string.
pub fn group_key(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.put_i16(2);
    put_str(&mut out, group);
    out
}

/// KIP-848 ConsumerGroupMetadataKey: record type 3, then the group id as a string (not flexible).
pub fn consumer_group_key(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.put_i16(3);
    put_str(&mut out, group);
    out
}

/// KIP-848 ConsumerGroupMetadataValue, version 0 (flexible): the group epoch as an int32, no
/// tagged fields.
pub fn consumer_group_value(epoch: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(7);
    out.put_i16(0);
    out.put_i32(epoch);
    out.push(0); // empty tagged-field section
    out
}

/// Decodes a ConsumerGroupMetadataValue v0: the group epoch (tagged fields are ignored).
pub fn decode_consumer_group_value(buf: &[u8]) -> Result<i32, DecodeError> {
    let mut r = Reader::new(buf);
    match r.i16()? {
        0 => Ok(r.i32()?),
        version => Err(DecodeError::Version {
            what: "consumer group value",
            version,
        }),
    }
}

/// Group metadata value, version 3 (the last non-flexible one, which has group_instance_id).
pub fn group_value(v: &GroupValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.put_i16(3);
    put_str(&mut out, &v.protocol_type);
    out.put_i32(v.generation);
    put_nullable_str(&mut out, v.protocol.as_deref());
    put_nullable_str(&mut out, v.leader.as_deref());
    out.put_i64(v.state_timestamp);
    out.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.put_i32(m.rebalance_timeout_ms);
        out.put_i32(m.session_timeout_ms);
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

/// Decodes a record key (offset commit keys v0/v1, group metadata key v2, KIP-848
/// ConsumerGroupMetadata key 3).
pub fn decode_key(buf: &[u8]) -> Result<Key, DecodeError> {
    let mut r = Reader::new(buf);
    match r.i16()? {
        0 | 1 => Ok(Key::Offset {
            group: r.str()?,
            topic: r.str()?,
            partition: r.i32()?,
        }),
        2 => Ok(Key::Group { group: r.str()? }),
        3 => Ok(Key::ConsumerGroup { group: r.str()? }),
        version => Err(DecodeError::Version {
            what: "key",
            version,
        }),
    }
}

/// Decodes an offset commit value, versions 0 to 3.
pub fn decode_offset_value(buf: &[u8]) -> Result<OffsetValue, DecodeError> {
    let mut r = Reader::new(buf);
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.str()?;
    let commit_timestamp = match version {
        0..=3 => r.i64()?,
        _ => {
            return Err(DecodeError::Version {
                what: "offset value",
                version,
            })
        }
    };
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

/// Decodes a group metadata value, versions 0 to 3.
pub fn decode_group_value(buf: &[u8]) -> Result<GroupValue, DecodeError> {
    let mut r = Reader::new(buf);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(DecodeError::Version {
            what: "group value",
            version,
        });
    }
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.nullable_str()?;
    let leader = r.nullable_str()?;
    let state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?.max(0);
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = r.str()?;
        let instance_id = if version >= 3 {
            r.nullable_str()?
        } else {
            None
        };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        members.push(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

/// Builds one uncompressed, non-idempotent magic-2 batch (base offset 0: the log stamps the
/// real one) holding `records` as (key, value-or-tombstone), all with timestamp `now_ms`.
pub fn build_batch(records: &[(Vec<u8>, Option<Vec<u8>>)], now_ms: i64) -> Bytes {
    let recs: Vec<crate::records::build::KeyValue<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
        .collect();
    crate::records::build::uncompressed_batch(&recs, now_ms, crate::records::build::Writer::BROKER)
}

/// Java's `String.hashCode` over UTF-16 code units, which Kafka uses to place a group.
pub fn java_string_hashcode(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of `group`: Kafka's `Utils.abs(hashCode) % partitions`
/// (where `abs(i32::MIN)` is 0).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_string_hashcode(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{records, validate_produce_batch};

    /// (id, `String.hashCode`, `Utils.abs(hashCode) % 50`, `% 3`), every number printed by a Java 17
    /// program (`s.hashCode()`, and Kafka's `Utils.abs` = `n == Integer.MIN_VALUE ? 0 :
    /// Math.abs(n)`), not by this crate's formula. "polygenelubricants" hashes to
    /// `Integer.MIN_VALUE` (where a plain `Math.abs` would stay negative), several others hash
    /// negative, "Aa"/"BB" collide, and two use non-ASCII (one outside the BMP: a surrogate pair).
    const JAVA_PLACEMENT: &[(&str, i32, i32, i32)] = &[
        ("", 0, 0, 0),
        ("a", 97, 47, 1),
        ("hello", 99_162_322, 22, 1),
        ("my-group", -1_906_497_762, 12, 0),
        ("my-txn", -1_061_187_895, 45, 1),
        ("polygenelubricants", i32::MIN, 0, 0),
        ("group-1", 293_427_299, 49, 2),
        ("console-consumer-12345", 158_455_506, 6, 0),
        ("txn-producer-0", 149_494_776, 26, 0),
        ("Aa", 2112, 12, 0),
        ("BB", 2112, 12, 0),
        ("\u{e9}\u{e9}\u{e9}-grp", -1_072_791_327, 27, 0),
        ("\u{1F600}-group", -1_198_440_043, 43, 1),
    ];

    #[test]
    fn hashcode_and_partition_match_java() {
        for &(id, hash, p50, p3) in JAVA_PLACEMENT {
            assert_eq!(java_string_hashcode(id), hash, "hashCode of {id:?}");
            assert_eq!(partition_for(id, 50), p50, "partition of {id:?} among 50");
            assert_eq!(partition_for(id, 3), p3, "partition of {id:?} among 3");
            assert_eq!(partition_for(id, 1), 0, "partition of {id:?} among 1");
        }
    }

    #[test]
    fn keys_and_values_round_trip_through_a_batch() {
        let ov = OffsetValue {
            offset: 42,
            leader_epoch: 0,
            metadata: "m".into(),
            commit_timestamp: 7,
        };
        let gv = GroupValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("a".into()),
            state_timestamp: 9,
            members: vec![MemberValue {
                member_id: "a".into(),
                instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout_ms: 1,
                session_timeout_ms: 2,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let batch = build_batch(
            &[
                (offset_key("g", "t", 1), Some(offset_value(&ov))),
                (group_key("g"), Some(group_value(&gv))),
                (group_key("h"), None),
            ],
            5,
        );
        validate_produce_batch(&batch, 1 << 20).unwrap();
        let recs = records(&batch, 1 << 20).unwrap();
        let all: Vec<_> = recs.iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(
            decode_key(all[0].key.unwrap()).unwrap(),
            Key::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 1
            }
        );
        assert_eq!(decode_offset_value(all[0].value.unwrap()).unwrap(), ov);
        assert_eq!(decode_group_value(all[1].value.unwrap()).unwrap(), gv);
        assert_eq!(all[2].value, None);
        assert!(decode_key(&[0, 9]).is_err());
        assert_eq!(
            decode_key(&consumer_group_key("cg")).unwrap(),
            Key::ConsumerGroup { group: "cg".into() }
        );
        assert_eq!(
            decode_consumer_group_value(&consumer_group_value(42)).unwrap(),
            42
        );
        assert!(decode_group_value(&[0, 3, 0]).is_err());
    }
}
