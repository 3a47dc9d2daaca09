//! ListConfigResources (key 74; v0 was ListClientMetricsResources, v1 KIP-1142): the names of
//! the resources that configs can be described for, by type — topics, brokers (and their
//! loggers), groups that have configs, client-metrics subscriptions (Gregor has none).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

use super::describe_configs::{
    RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_GROUP, RESOURCE_TOPIC,
};
use super::str_bytes;
use crate::broker::BrokerContext;
use crate::metadata::ConfigScope;

/// ConfigResource type of a client-metrics subscription (KIP-714).
const RESOURCE_CLIENT_METRICS: i8 = 16;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: ListConfigResourcesRequest,
    version: i16,
) -> ListConfigResourcesResponse {
    // v0 lists client-metrics resources only; v1 every type Kafka 4.x lists.
    let supported: &[i8] = if version == 0 {
        &[RESOURCE_CLIENT_METRICS]
    } else {
        &[
            RESOURCE_TOPIC,
            RESOURCE_BROKER,
            RESOURCE_BROKER_LOGGER,
            RESOURCE_CLIENT_METRICS,
            RESOURCE_GROUP,
        ]
    };
    let wanted: Vec<i8> = if request.resource_types.is_empty() {
        supported.to_vec()
    } else {
        request.resource_types.clone()
    };
    if wanted.iter().any(|t| !supported.contains(t)) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code());
    }
    let mut resources = Vec::new();
    let mut add = |kind: i8, name: String| {
        resources.push(
            ConfigResource::default()
                .with_resource_type(kind)
                .with_resource_name(str_bytes(name)),
        )
    };
    for kind in wanted {
        match kind {
            RESOURCE_TOPIC => {
                for t in ctx.metadata.topics() {
                    add(kind, t.name.clone());
                }
            }
            RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => add(kind, ctx.node_id().to_string()),
            RESOURCE_GROUP => {
                for group in ctx.metadata.config_names(ConfigScope::Group) {
                    add(kind, group);
                }
            }
            // No client-metrics subscriptions exist in Gregor.
            _ => {}
        }
    }
    ListConfigResourcesResponse::default().with_config_resources(resources)
}
