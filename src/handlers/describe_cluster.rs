//! DescribeCluster (key 60): the live brokers of the cluster, from the metadata image, and
//! the active controller.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{authorized_operations, str_bytes};
use crate::broker::BrokerContext;

/// endpoint_type 1 = brokers (the only kind a client may ask this broker about).
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: DescribeClusterRequest,
    _version: i16,
) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_TYPE_BROKERS)
        .with_cluster_id(str_bytes(ctx.metadata.cluster_id()));
    if request.endpoint_type != ENDPOINT_TYPE_BROKERS {
        return response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes("only broker endpoints are served")));
    }
    let operations = if request.include_cluster_authorized_operations {
        authorized_operations::CLUSTER
    } else {
        authorized_operations::NOT_REQUESTED
    };
    response
        .with_cluster_authorized_operations(operations)
        .with_controller_id(BrokerId(ctx.controller_id().get()))
        .with_brokers(
            ctx.metadata
                .image()
                .live_brokers()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id.get()))
                        .with_host(str_bytes(b.host.clone()))
                        .with_port(i32::from(b.port))
                        .with_rack(b.rack.clone().map(str_bytes))
                })
                .collect(),
        )
}
