//! DescribeAcls, CreateAcls and DeleteAcls (keys 29–31, v1–3) as a Kafka broker without an
//! authorizer answers them: SECURITY_DISABLED, "No Authorizer is configured.", for the request
//! as a whole (describe) or for each creation and each filter. Tools and MirrorMaker 2 know this
//! answer and stop asking; an unknown API would be an error in their logs instead. The ACL
//! authorizer (the security work) replaces these answers.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::BrokerContext;

/// Kafka's message for SECURITY_DISABLED.
const NO_AUTHORIZER: &str = "No Authorizer is configured.";

fn message() -> Option<StrBytes> {
    Some(StrBytes::from_static_str(NO_AUTHORIZER))
}

pub fn handle_describe(
    _ctx: &Arc<BrokerContext>,
    _request: DescribeAclsRequest,
    _version: i16,
) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(ResponseError::SecurityDisabled.code())
        .with_error_message(message())
}

pub fn handle_create(
    _ctx: &Arc<BrokerContext>,
    request: CreateAclsRequest,
    _version: i16,
) -> CreateAclsResponse {
    let results = request
        .creations
        .iter()
        .map(|_| {
            AclCreationResult::default()
                .with_error_code(ResponseError::SecurityDisabled.code())
                .with_error_message(message())
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub fn handle_delete(
    _ctx: &Arc<BrokerContext>,
    request: DeleteAclsRequest,
    _version: i16,
) -> DeleteAclsResponse {
    let results = request
        .filters
        .iter()
        .map(|_| {
            DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::SecurityDisabled.code())
                .with_error_message(message())
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
