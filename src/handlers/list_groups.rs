//! ListGroups (key 16): every group with its protocol type; v4+ also its state (and filters by
//! state, case-insensitively as Kafka does), v5+ its type ("classic" or "consumer", KIP-848) and
//! filters by type.

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::group::GroupState;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let mut all = ctx.groups.all();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let groups = all
        .into_iter()
        .filter_map(|(id, group)| {
            let g = ctx.groups.lock_current(ctx, &id, &group);
            if g.state == GroupState::Dead {
                return None;
            }
            let kind = if g.kip848.is_some() {
                "consumer"
            } else {
                "classic"
            };
            if version >= 5 && !types.is_empty() && !types.iter().any(|t| t == kind) {
                return None;
            }
            let state = match &g.kip848 {
                Some(c) => c.state_name(),
                None => g.state.name(),
            };
            if version >= 4 && !states.is_empty() && !states.contains(&state.to_lowercase()) {
                return None;
            }
            let mut out = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(g.protocol_type.clone().unwrap_or_default()));
            if version >= 4 {
                out = out.with_group_state(str_bytes(state));
            }
            if version >= 5 {
                out = out.with_group_type(str_bytes(kind));
            }
            Some(out)
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
