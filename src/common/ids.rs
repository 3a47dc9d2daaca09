//! Identifiers and their text form: the topic id, and Kafka's way of printing a UUID.
//!
//! Kafka prints UUIDs (topic ids, cluster ids) as URL-safe base64 without padding: 22
//! characters. This is the only encoder and decoder of that form in the crate; the
//! `partition.metadata` file, the metadata store and the protocol handlers all use it.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A topic's id: one UUID for the topic's whole life, carried by Fetch/Produce v13+, Metadata,
/// DeleteTopics and `partition.metadata`. The nil UUID means "no id" on the wire.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TopicId(pub Uuid);

impl TopicId {
    /// The nil id, which requests use to mean "by name".
    pub const NIL: TopicId = TopicId(Uuid::nil());

    /// A fresh random id (version 4 UUID).
    pub fn random() -> TopicId {
        TopicId(Uuid::new_v4())
    }

    /// Builds an id from its 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> TopicId {
        TopicId(Uuid::from_bytes(bytes))
    }

    /// True for the nil id.
    pub fn is_nil(&self) -> bool {
        self.0.is_nil()
    }

    /// The UUID, as the protocol messages carry it.
    pub fn uuid(self) -> Uuid {
        self.0
    }

    /// Parses Kafka's text form; `None` if malformed.
    pub fn parse(s: &str) -> Option<TopicId> {
        uuid_from_kafka_string(s).map(TopicId)
    }
}

impl From<Uuid> for TopicId {
    fn from(id: Uuid) -> TopicId {
        TopicId(id)
    }
}

impl From<TopicId> for Uuid {
    fn from(id: TopicId) -> Uuid {
        id.0
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&uuid_to_kafka_string(self.0))
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Prints a UUID as Kafka does: URL-safe base64 without padding.
pub fn uuid_to_kafka_string(id: Uuid) -> String {
    let mut out = String::with_capacity(22);
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for &b in id.as_bytes() {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(char::from(ALPHABET[((bits >> nbits) & 63) as usize]));
        }
    }
    if nbits > 0 {
        out.push(char::from(ALPHABET[((bits << (6 - nbits)) & 63) as usize]));
    }
    out
}

/// Parses [`uuid_to_kafka_string`]'s form (padding and the standard alphabet's `+`/`/` are
/// accepted too, as Java's decoder does); `None` if malformed.
pub fn uuid_from_kafka_string(s: &str) -> Option<Uuid> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'-' | b'+' => Some(62),
            b'_' | b'/' => Some(63),
            _ => None,
        }
    }
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() != 22 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut len = 0;
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for &c in s {
        bits = (bits << 6) | val(c)?;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            *out.get_mut(len)? = (bits >> nbits) as u8;
            len += 1;
        }
    }
    // 22 characters carry 132 bits: 16 bytes and 4 bits that must be zero.
    (len == 16 && bits & ((1 << nbits) - 1) == 0).then(|| Uuid::from_bytes(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_text_form_round_trips() {
        let id = TopicId::from_bytes([
            0xfb, 0xff, 0x00, 0x01, 0x7e, 0x3f, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80,
            0x90, 0xa0,
        ]);
        let s = id.to_string();
        assert_eq!(s.len(), 22);
        assert!(s.starts_with("-_8A"));
        assert_eq!(TopicId::parse(&s), Some(id));
        assert_eq!(TopicId::NIL.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(TopicId::parse("short"), None);
        assert_eq!(TopicId::parse("AAAAAAAAAAAAAAAAAAAAA!"), None);
    }

    #[test]
    fn matches_a_topic_id_printed_by_kafka() {
        // Kafka's Uuid.toString() of the UUID 1f2e3d4c-5b6a-7988-97a6-b5c4d3e2f100, computed
        // with java.util.Base64.getUrlEncoder().withoutPadding() over the 16 bytes.
        let id = Uuid::parse_str("1f2e3d4c-5b6a-7988-97a6-b5c4d3e2f100").unwrap();
        assert_eq!(uuid_to_kafka_string(id), "Hy49TFtqeYiXprXE0-LxAA");
        assert_eq!(uuid_from_kafka_string("Hy49TFtqeYiXprXE0-LxAA"), Some(id));
    }
}
