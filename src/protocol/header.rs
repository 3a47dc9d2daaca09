//! Request header parsing, done defensively before the crate sees the bytes.
//!
//! `kafka_protocol::decode_request_header_from_buffer` panics on frames shorter than four bytes,
//! so the fixed prefix (api key, version, correlation id) is read here by hand.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

/// The fixed first eight bytes of every request header.
#[derive(Clone, Copy, Debug)]
pub struct Prefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Reads the fixed prefix without consuming `frame`; `None` if the frame is too short.
pub fn peek_prefix(frame: &[u8]) -> Option<Prefix> {
    if frame.len() < 8 {
        return None;
    }
    Some(Prefix {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Decodes the full header for a known API and version, leaving `frame` at the body.
pub fn decode_header(
    frame: &mut Bytes,
    key: ApiKey,
    version: i16,
) -> anyhow::Result<RequestHeader> {
    let header_version = key.request_header_version(version);
    let header = RequestHeader::decode(frame, header_version)?;
    Ok(header)
}

/// True if nothing is left after the body was decoded.
pub fn fully_consumed(frame: &Bytes) -> bool {
    !frame.has_remaining()
}
