//! ApiVersions (key 18): the advertised table, and the v0-shaped answer to versions we do not
//! speak, which lets every client step down instead of giving up.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use crate::broker::BrokerContext;
use crate::protocol::{encode_response, versions};

pub fn handle(
    _ctx: &Arc<BrokerContext>,
    _request: ApiVersionsRequest,
    _version: i16,
) -> ApiVersionsResponse {
    let api_keys = versions::SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(api_keys)
}

/// The response to an ApiVersions version we do not speak: always encoded as v0 (the one shape
/// every client can read), UNSUPPORTED_VERSION, listing our ApiVersions range so Java and sarama
/// retry at our maximum and librdkafka steps down.
pub fn unsupported_version_frame(correlation_id: i32) -> Bytes {
    let (min, max) = versions::range(ApiKey::ApiVersions).unwrap_or((0, 0));
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(min)
            .with_max_version(max)]);
    // Encoding a fixed, valid v0 response cannot fail; if it somehow did, an empty frame body
    // would still carry the correlation id-less size 0, so fall back to a hand-built frame.
    encode_response(correlation_id, 0, &response).unwrap_or_else(|_| {
        let mut v = Vec::with_capacity(20);
        v.extend_from_slice(&16i32.to_be_bytes());
        v.extend_from_slice(&correlation_id.to_be_bytes());
        v.extend_from_slice(&35i16.to_be_bytes());
        v.extend_from_slice(&1i32.to_be_bytes());
        v.extend_from_slice(&18i16.to_be_bytes());
        v.extend_from_slice(&min.to_be_bytes());
        v.extend_from_slice(&max.to_be_bytes());
        Bytes::from(v)
    })
}
