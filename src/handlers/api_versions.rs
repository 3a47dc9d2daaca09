//! ApiVersions (key 18): the advertised table, and the v0-shaped answer to versions we do not
//! speak, which lets every client step down instead of giving up.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::BrokerContext;
use crate::protocol::{encode_response, versions};

/// A feature flag as KRaft reports it: the range this broker supports and the level in force.
struct Feature {
    name: &'static str,
    min: i16,
    max: i16,
    /// The finalized level; 0 means "off", which Kafka leaves out of the finalized list.
    finalized: i16,
}

/// The feature levels Gregor implements, as `kafka-features describe` and the clients read them.
/// - `metadata.version` 25 is 4.0-IV3, the level of the Kafka release whose API ranges Gregor
///   serves; 7 (3.3-IV3) is the lowest level KRaft ever supported.
/// - `group.version` 1 is the KIP-848 consumer group protocol, which is served.
/// - `transaction.version` stays at 0: level 2 would switch 4.x producers to KIP-890 part 2
///   (EndTxn v5, implicit partition registration), which Gregor does not serve yet.
/// - `kraft.version` 0 is a static quorum (a single node).
const FEATURES: [Feature; 4] = [
    Feature {
        name: "metadata.version",
        min: 7,
        max: 25,
        finalized: 25,
    },
    Feature {
        name: "group.version",
        min: 0,
        max: 1,
        finalized: 1,
    },
    Feature {
        name: "kraft.version",
        min: 0,
        max: 0,
        finalized: 0,
    },
    Feature {
        name: "transaction.version",
        min: 0,
        max: 0,
        finalized: 0,
    },
];

/// The epoch of the finalized features: they never change while a broker runs, and any
/// non-negative value tells clients the list is valid.
const FINALIZED_FEATURES_EPOCH: i64 = 1;

pub fn handle(
    _ctx: &Arc<BrokerContext>,
    _request: ApiVersionsRequest,
    version: i16,
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
    // v3 leaves out features whose minimum is 0 (older clients could not tell 0 from absent).
    let supported_features = FEATURES
        .iter()
        .filter(|f| version >= 4 || f.min > 0)
        .map(|f| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version(f.min)
                .with_max_version(f.max)
        })
        .collect();
    let finalized_features = FEATURES
        .iter()
        .filter(|f| f.finalized > 0)
        .map(|f| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version_level(f.finalized)
                .with_max_version_level(f.finalized)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_api_keys(api_keys)
        .with_supported_features(supported_features)
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(finalized_features)
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
